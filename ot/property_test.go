package ot

import (
	"reflect"
	"testing"
)

// other returns the opposite side.
func (s Side) other() Side { return 1 - s }

// checkConvergence reports whether a and b, concurrent ops on doc,
// transformed against each other with a on side, lead to the same document.
func checkConvergence(t *testing.T, doc string, a, b Op, side Side) {
	t.Helper()
	ta, err := Transform(a, b, side)
	if err != nil {
		t.Fatalf("Transform(%v, %v, %v): %v", a, b, side, err)
	}
	tb, err := Transform(b, a, side.other())
	if err != nil {
		t.Fatalf("Transform(%v, %v, %v): %v", b, a, side.other(), err)
	}
	viaA, err := Apply(mustApply(doc, a), tb)
	if err != nil {
		t.Fatalf("doc %q, a %v, b %v, side %v: applying %v after a: %v", doc, a, b, side, tb, err)
	}
	viaB, err := Apply(mustApply(doc, b), ta)
	if err != nil {
		t.Fatalf("doc %q, a %v, b %v, side %v: applying %v after b: %v", doc, a, b, side, ta, err)
	}
	if viaA != viaB {
		t.Fatalf("doc %q, a %v, b %v, side %v: a then %v gives %q, b then %v gives %q", doc, a, b, side, tb, viaA, ta, viaB)
	}
}

func TestConvergence(t *testing.T) {
	for seed := range uint64(2000) {
		r := newRand(seed)
		doc := randDoc(r)
		a, b := randPair(r, runeCount(doc))
		for _, side := range []Side{Left, Right} {
			checkConvergence(t, doc, a, b, side)
		}
	}
}

// TestTransformIdentity checks that transforming against a no-op changes
// nothing but the form, and that a no-op stays one.
func TestTransformIdentity(t *testing.T) {
	for seed := range uint64(500) {
		r := newRand(seed)
		a := randOp(r, runeCount(randDoc(r)))
		na, _ := Normalize(a)
		side := randSide(r)
		if got, err := Transform(a, nil, side); err != nil || !reflect.DeepEqual(got, na) {
			t.Fatalf("Transform(%v, [], %v) = %v, %v; want %v", a, side, got, err, na)
		}
		if got, err := Transform(nil, a, side); err != nil || len(got) != 0 {
			t.Fatalf("Transform([], %v, %v) = %v, %v; want []", a, side, got, err)
		}
	}
}

// TestComposeApply checks apply(apply(d, a), b) == apply(d, compose(a, b)),
// and that composing three ops either way round has the same effect.
func TestComposeApply(t *testing.T) {
	for seed := range uint64(2000) {
		r := newRand(seed)
		doc := randDoc(r)
		a := randOp(r, runeCount(doc))
		d1 := mustApply(doc, a)
		b := randOp(r, runeCount(d1))
		d2 := mustApply(d1, b)
		c := randOp(r, runeCount(d2))
		d3 := mustApply(d2, c)

		ab, err := Compose(a, b)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := Apply(doc, ab); err != nil || got != d2 {
			t.Fatalf("doc %q, a %v, b %v: compose %v gives %q, %v; want %q", doc, a, b, ab, got, err, d2)
		}
		bc, _ := Compose(b, c)
		left, _ := Compose(ab, c)
		right, _ := Compose(a, bc)
		for _, op := range []Op{left, right} {
			if got, err := Apply(doc, op); err != nil || got != d3 {
				t.Fatalf("doc %q, a %v, b %v, c %v: composed %v gives %q, %v; want %q", doc, a, b, c, op, got, err, d3)
			}
		}
	}
}

func TestNormalizeIdempotent(t *testing.T) {
	for seed := range uint64(2000) {
		r := newRand(seed)
		doc := randDoc(r)
		a := randOp(r, runeCount(doc))
		n1, err := Normalize(a)
		if err != nil {
			t.Fatal(err)
		}
		n2, _ := Normalize(n1)
		if !reflect.DeepEqual(n1, n2) {
			t.Fatalf("Normalize(%v) = %v, but Normalize of that = %v", a, n1, n2)
		}
		if got, want := mustApply(doc, n1), mustApply(doc, a); got != want {
			t.Fatalf("doc %q: %v gives %q, its normal form %v gives %q", doc, a, want, n1, got)
		}
		for i, c := range n1 {
			if c.fields() != 1 {
				t.Fatalf("Normalize(%v) = %v: component %d is not exactly one of skip, delete, insert", a, n1, i)
			}
		}
	}
}

// TestTransformPositionMatchesInsert checks cursors against the text: a
// marker character standing for the cursor ends up where TransformPosition
// says, unless the op deletes or inserts right at it.
func TestTransformPositionMatchesInsert(t *testing.T) {
	checked := 0
	for seed := range uint64(1000) {
		r := newRand(seed)
		doc := randDoc(r)
		n := runeCount(doc)
		a := randOp(r, n)
		pos := r.IntN(n + 1)
		// Only deletes, and inserts strictly before pos, move the cursor
		// predictably with the marker; keep ops where no component touches
		// the cursor.
		marked := []rune(doc)
		marked = append(marked[:pos], append([]rune{'|'}, marked[pos:]...)...)
		ma := shiftOpAround(a, pos)
		if ma == nil {
			continue
		}
		after := []rune(mustApply(string(marked), ma))
		want := -1
		for i, c := range after {
			if c == '|' {
				want = i
			}
		}
		if want < 0 {
			continue
		}
		checked++
		if got := TransformPosition(pos, a); got != want {
			t.Fatalf("doc %q, op %v, cursor %d: TransformPosition = %d, marker at %d", doc, a, pos, got, want)
		}
	}
	if checked < 500 {
		t.Fatalf("only %d of 1000 cases checked", checked)
	}
}

// shiftOpAround returns a rewritten for a document with a marker inserted
// at pos, skipping the marker, or nil if a deletes across pos or inserts
// exactly at it.
func shiftOpAround(a Op, pos int) Op {
	var out Op
	at := 0
	inserted := false
	for _, c := range a {
		n := c.Skip + c.Delete
		if !inserted && at == pos && c.Insert != "" {
			return nil
		}
		if !inserted && at+n > pos {
			if c.Delete > 0 {
				return nil
			}
			out = append(out, Skip(pos-at+1), Skip(at+n-pos))
			inserted = true
			at += n
			continue
		}
		out = append(out, c)
		at += n
	}
	return out
}
