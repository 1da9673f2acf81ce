package ot

import (
	"fmt"
	"math"
)

// Side says which of two concurrent ops wins a tie, when both insert at the
// same position: the left op's text ends up first.
type Side uint8

const (
	// Left means the op being transformed wins ties.
	Left Side = iota
	// Right means the other op wins ties. A server transforming an incoming
	// op against ops it has already stored uses Right.
	Right
)

// String returns "left" or "right".
func (s Side) String() string {
	switch s {
	case Left:
		return "left"
	case Right:
		return "right"
	}
	return fmt.Sprintf("Side(%d)", uint8(s))
}

// Transform returns op rewritten to apply after other, where op and other
// were made concurrently on the same document. For any document d on which
// both apply,
//
//	Apply(Apply(d, other), Transform(op, other, side))
//	== Apply(Apply(d, op), Transform(other, op, side'))
//
// where side' is the opposite side. Text inserted by op inside text that
// other deletes survives; text both delete is deleted once.
//
// Where both insert at the same position, side says whose text goes first:
// op's for Left, other's for Right. As in ot-text-unicode, op's insert only
// ties if it is op's next component there: if op first deletes the text at
// that position and then inserts, its text goes after other's on either
// side.
//
// The result is normalised; it is what ot-text-unicode's transform returns
// for the normal forms of op and other.
func Transform(op, other Op, side Side) (Op, error) {
	if side != Left && side != Right {
		return nil, fmt.Errorf("%w: side %v", ErrInvalidOp, side)
	}
	if err := op.Validate(); err != nil {
		return nil, err
	}
	if err := other.Validate(); err != nil {
		return nil, err
	}
	return transform(normalize(op), normalize(other), side), nil
}

// transform is Transform on normalised ops.
func transform(op, other Op, side Side) Op {
	var out builder
	r := reader{op: op}
	for _, c := range other {
		switch {
		case c.Skip > 0:
			// Keep op's components over the skipped text, and op's inserts
			// inside it.
			for n := c.Skip; n > 0; {
				x := r.take(n, wholeInserts)
				out.push(x)
				n -= x.Skip + x.Delete
			}
		case c.Insert != "":
			// On a tie, op's insert goes first only if it is op's very next
			// component (an insert after a delete at the same position goes
			// after other's insert).
			if side == Left && r.peek().Insert != "" {
				out.push(r.take(math.MaxInt, wholeInserts))
			}
			out.push(Skip(runeCount(c.Insert)))
		case c.Delete > 0:
			// The text is gone: drop op's skips and deletes over it, keep
			// op's inserts.
			for n := c.Delete; n > 0; {
				x := r.take(n, wholeInserts)
				if x.Insert != "" {
					out.push(x)
				}
				n -= x.Skip + x.Delete
			}
		}
	}
	for !r.done() {
		out.push(r.take(math.MaxInt, wholeInserts))
	}
	return out.op()
}

// Compose returns the single op that has the effect of applying a then b:
// for any document d on which a applies and b applies after it,
// Apply(d, Compose(a, b)) == Apply(Apply(d, a), b). The result is
// normalised; it is what ot-text-unicode's compose returns for the normal
// forms of a and b.
func Compose(a, b Op) (Op, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return compose(normalize(a), normalize(b)), nil
}

// compose is Compose on normalised ops.
func compose(a, b Op) Op {
	var out builder
	r := reader{op: a}
	for _, c := range b {
		switch {
		case c.Skip > 0:
			// Keep a's components over the text b skips; a's deletes there
			// take no room in b's input.
			for n := c.Skip; n > 0; {
				x := r.take(n, wholeDeletes)
				out.push(x)
				n -= x.Skip + runeCount(x.Insert)
			}
		case c.Insert != "":
			out.push(c)
		case c.Delete > 0:
			// b deletes what a skipped (a delete of the original) or what a
			// inserted (the insert cancels out); a's own deletes stay.
			for n := c.Delete; n > 0; {
				x := r.take(n, wholeDeletes)
				switch {
				case x.Skip > 0:
					out.push(Delete(x.Skip))
					n -= x.Skip
				case x.Insert != "":
					n -= runeCount(x.Insert)
				default:
					out.push(x)
				}
			}
		}
	}
	for !r.done() {
		out.push(r.take(math.MaxInt, wholeDeletes))
	}
	return out.op()
}

// TransformPosition returns where a cursor at pos (in code points) is after
// op is applied, as ot-text-unicode's transformPosition does: text inserted
// before the cursor moves it right, text inserted exactly at the cursor does
// not, and a deletion around the cursor moves it to the deletion's start.
// Transform both ends of a selection separately.
//
// The op is expected to be valid (see Op.Validate); components with negative
// counts are treated as empty.
func TransformPosition(pos int, op Op) int {
	at := 0 // position in the document as op has changed it so far
	for _, c := range op {
		if pos <= at {
			break
		}
		switch {
		case c.Skip > 0:
			at += c.Skip
		case c.Delete > 0:
			pos -= min(c.Delete, pos-at)
		case c.Insert != "":
			n := runeCount(c.Insert)
			at += n
			pos += n
		}
	}
	return pos
}

// whole says which kind of component a reader never splits.
type whole uint8

const (
	wholeInserts whole = iota
	wholeDeletes
)

// reader walks a normalised op, handing out pieces of its components.
type reader struct {
	op  Op
	i   int // index of the current component
	off int // consumed part of op[i]: code points of a skip or delete, bytes of an insert
}

// done reports whether all of the op has been taken.
func (r *reader) done() bool { return r.i == len(r.op) }

// peek returns the current component (whole, even if partly taken), or an
// empty one at the end.
func (r *reader) peek() Component {
	if r.done() {
		return Component{}
	}
	return r.op[r.i]
}

// take returns the next piece of the op, at most n code points long except
// that components of the kind w are returned whole. Past the end it returns
// a skip of n: the implicit skip to the end of the document.
func (r *reader) take(n int, w whole) Component {
	if r.done() {
		return Skip(n)
	}
	c := r.op[r.i]
	switch {
	case c.Skip > 0:
		rest := c.Skip - r.off
		if rest > n {
			r.off += n
			return Skip(n)
		}
		r.next()
		return Skip(rest)
	case c.Delete > 0:
		rest := c.Delete - r.off
		if rest > n && w != wholeDeletes {
			r.off += n
			return Delete(n)
		}
		r.next()
		return Delete(rest)
	default:
		rest := c.Insert[r.off:]
		if w != wholeInserts {
			if cut := byteOffset(rest, n); cut < len(rest) {
				r.off += cut
				return Insert(rest[:cut])
			}
		}
		r.next()
		return Insert(rest)
	}
}

// next moves to the start of the next component.
func (r *reader) next() {
	r.i++
	r.off = 0
}
