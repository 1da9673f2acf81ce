// Package ot is the algebra of collaborative plain-text editing by
// operational transformation: ops, their normal form, Apply, Transform,
// Compose, TransformPosition, the CRC-32 of a document, and Doc, a rope that
// applies ops to large documents in place.
//
// The semantics are those of the ShareJS "text-unicode" OT type (the npm
// package ot-text-unicode), so that ops transformed here agree exactly with
// browser clients that use it. A document is a sequence of Unicode code
// points held as UTF-8; every count in an op is in code points, never bytes
// or UTF-16 units ("💃123" is 4 long).
//
// The package owns only the pure algebra. It must not do I/O, keep history,
// know about versions, clients or sessions, or depend on protocol or wire
// types: converting to and from the wire, ordering ops and choosing which
// side wins a tie are the caller's job. It imports only the standard library.
package ot

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf8"
)

var (
	// ErrInvalidOp reports a malformed op: a negative count, a component
	// with more than one field set, an insert that is not valid UTF-8, or
	// counts too large to add up. Transform also returns it for a Side
	// other than Left and Right.
	ErrInvalidOp = errors.New("ot: invalid op")
	// ErrTooLong reports an op that skips or deletes past the end of the
	// document it is applied to.
	ErrTooLong = errors.New("ot: op is longer than the document")
	// ErrInvalidText reports a document that is not valid UTF-8.
	ErrInvalidText = errors.New("ot: document is not valid UTF-8")
)

// maxTotal bounds the sum of all counts of an op, so that lengths combined
// from two ops by Transform and Compose cannot overflow an int.
const maxTotal = math.MaxInt / 4

// Component is one step of an Op. At most one field is non-zero; the zero
// Component is empty and does nothing. It maps one to one onto a wire
// component that is a oneof {skip, delete, insert}:
//
//   - Skip n moves the cursor past the next n code points.
//   - Delete n removes the next n code points; the cursor stays.
//   - Insert s inserts s (valid UTF-8) at the cursor and moves past it.
//
// A component of a normalised op has exactly one field non-zero.
type Component struct {
	Skip   int
	Delete int
	Insert string
}

// Skip returns a component that skips n code points.
func Skip(n int) Component { return Component{Skip: n} }

// Delete returns a component that deletes n code points.
func Delete(n int) Component { return Component{Delete: n} }

// Insert returns a component that inserts s.
func Insert(s string) Component { return Component{Insert: s} }

// isEmpty reports whether c does nothing.
func (c Component) isEmpty() bool { return c.Skip == 0 && c.Delete == 0 && c.Insert == "" }

// fields returns how many of c's fields are non-zero.
func (c Component) fields() int {
	n := 0
	if c.Skip != 0 {
		n++
	}
	if c.Delete != 0 {
		n++
	}
	if c.Insert != "" {
		n++
	}
	return n
}

// String formats c as in ot-text-unicode's JSON form: 3, "text" or {d:3}.
func (c Component) String() string {
	switch {
	case c.fields() > 1:
		return fmt.Sprintf("{skip:%d delete:%d insert:%q}", c.Skip, c.Delete, c.Insert)
	case c.Insert != "":
		return strconv.Quote(c.Insert)
	case c.Delete != 0:
		return "{d:" + strconv.Itoa(c.Delete) + "}"
	}
	return strconv.Itoa(c.Skip)
}

// Op is an edit of a document: components applied in order with a cursor
// that starts at 0. Text after the last component is left unchanged (an op
// ends with an implicit skip to the end of the document).
//
// Any valid op is accepted as input. Transform and Compose return ops in
// normal form (see Normalize), and they are defined on the normal forms of
// their arguments.
type Op []Component

// String formats op as in ot-text-unicode's JSON form, e.g. [3, "hi", {d:2}].
func (op Op) String() string {
	parts := make([]string, len(op))
	for i, c := range op {
		parts[i] = c.String()
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Validate reports whether op is well formed: no negative counts, at most
// one field set per component, inserts in valid UTF-8, and counts adding up
// to less than math.MaxInt/4. Errors wrap ErrInvalidOp.
func (op Op) Validate() error {
	total := 0
	for i, c := range op {
		var n int
		switch {
		case c.Skip < 0 || c.Delete < 0:
			return fmt.Errorf("%w: component %d has a negative count", ErrInvalidOp, i)
		case c.fields() > 1:
			return fmt.Errorf("%w: component %d sets more than one of skip, delete and insert", ErrInvalidOp, i)
		case c.Insert != "":
			if !utf8.ValidString(c.Insert) {
				return fmt.Errorf("%w: component %d inserts invalid UTF-8", ErrInvalidOp, i)
			}
			n = len(c.Insert) // an upper bound of its length in code points
		default:
			n = c.Skip + c.Delete
		}
		if n > maxTotal-total {
			return fmt.Errorf("%w: counts add up to more than %d", ErrInvalidOp, maxTotal)
		}
		total += n
	}
	return nil
}

// Normalize returns op in normal form: without empty components, with
// adjacent components of the same kind merged, and without a trailing
// skip. It never reorders components, so an insert and a delete at the same
// position keep their order, exactly as ot-text-unicode's normalize does.
// The result is a new slice; op is not modified.
func Normalize(op Op) (Op, error) {
	if err := op.Validate(); err != nil {
		return nil, err
	}
	return normalize(op), nil
}

// normalize is Normalize for an op known to be valid.
func normalize(op Op) Op {
	var b builder
	for _, c := range op {
		b.push(c)
	}
	return b.op()
}

// builder accumulates components into an op in normal form.
type builder struct {
	out Op
	ins strings.Builder // text of a trailing insert, not yet in out
}

// push appends c, dropping it if empty and merging it into the last
// component if that is of the same kind.
func (b *builder) push(c Component) {
	switch {
	case c.Insert != "":
		b.ins.WriteString(c.Insert)
		return
	case c.isEmpty():
		return
	}
	b.flush()
	if n := len(b.out); n > 0 {
		last := &b.out[n-1]
		if c.Skip > 0 && last.Skip > 0 {
			last.Skip += c.Skip
			return
		}
		if c.Delete > 0 && last.Delete > 0 {
			last.Delete += c.Delete
			return
		}
	}
	b.out = append(b.out, c)
}

// flush moves a pending insert into out.
func (b *builder) flush() {
	if b.ins.Len() > 0 {
		b.out = append(b.out, Component{Insert: b.ins.String()})
		b.ins.Reset()
	}
}

// op returns the normalised op, without its trailing skip. A no-op is an
// empty, non-nil Op.
func (b *builder) op() Op {
	b.flush()
	if n := len(b.out); n > 0 && b.out[n-1].Skip > 0 {
		b.out = b.out[:n-1]
	}
	if b.out == nil {
		return Op{}
	}
	return b.out
}

// runeCount returns the length of s in code points.
func runeCount(s string) int {
	return utf8.RuneCountInString(s)
}

// skipRunes returns the byte offset in the valid UTF-8 text s after n code
// points, and how many of the n it lacked (0 if s has at least n).
func skipRunes[T string | []byte](s T, n int) (offset, lacking int) {
	// Eight bytes at a time: a byte starts a code point unless it is
	// 0b10xxxxxx.
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		starts := 8 - bits.OnesCount64(w&^(w<<1)&0x8080808080808080)
		if starts > n {
			break
		}
		n -= starts
	}
	for ; i < len(s); i++ {
		if s[i]&0xc0 != 0x80 {
			if n == 0 {
				return i, 0
			}
			n--
		}
	}
	return len(s), n
}

// byteOffset returns the byte offset in the valid UTF-8 text s after n code
// points, or len(s) if s is shorter than that.
func byteOffset[T string | []byte](s T, n int) int {
	offset, _ := skipRunes(s, n)
	return offset
}
