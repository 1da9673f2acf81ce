package ot

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// fuzzOp decodes data into an op, two bytes a component: a kind and a
// count. Raw ops keep whatever data says, including negative and huge
// counts, invalid UTF-8 and components with two fields set. Otherwise
// (fit) the op is made valid for a document of length docLen.
func fuzzOp(data []byte, docLen int, fit bool) Op {
	var op Op
	left := docLen
	for len(data) >= 2 {
		kind, n := data[0]%5, int(int8(data[1]))
		data = data[2:]
		if !fit && n == math.MaxInt8 {
			n = math.MaxInt / 3
		}
		if fit {
			n = max(n, -n) % (left + 1)
		}
		switch kind {
		case 0:
			op = append(op, Skip(n))
			left -= n
		case 1:
			op = append(op, Delete(n))
			left -= n
		case 2:
			k := min(max(n, -n)%8, len(data))
			text := string(data[:k])
			data = data[k:]
			if fit {
				text = strings.ToValidUTF8(text, "\uFFFD")
			}
			op = append(op, Insert(text))
		case 3:
			op = append(op, Component{})
		case 4:
			if !fit {
				op = append(op, Component{Skip: n, Insert: "x"})
			}
		}
	}
	return op
}

// FuzzTransform feeds arbitrary ops to every function, which must fail
// cleanly or agree with each other, and checks convergence, composition
// and the rope on the same ops made valid.
func FuzzTransform(f *testing.F) {
	f.Fuzz(func(t *testing.T, doc string, a, b []byte, left bool) {
		side := Right
		if left {
			side = Left
		}

		// Anything goes: errors, never panics, and the rope agrees.
		ra, rb := fuzzOp(a, runeCount(doc), false), fuzzOp(b, runeCount(doc), false)
		_, errA := Normalize(ra)
		_, errB := Normalize(rb)
		if _, err := Transform(ra, rb, side); (err == nil) != (errA == nil && errB == nil) {
			t.Fatalf("Transform(%v, %v) error %v, but Normalize errors %v, %v", ra, rb, err, errA, errB)
		}
		if _, err := Compose(ra, rb); (err == nil) != (errA == nil && errB == nil) {
			t.Fatalf("Compose(%v, %v) error %v, but Normalize errors %v, %v", ra, rb, err, errA, errB)
		}
		TransformPosition(len(doc), ra)
		want, err := Apply(doc, ra)
		if d, derr := newDoc(doc, limits{leaf: 8, kids: 4}); derr == nil {
			switch aerr := d.Apply(ra); {
			case (aerr == nil) != (err == nil):
				t.Fatalf("Apply(%q, %v) error %v, Doc.Apply error %v", doc, ra, err, aerr)
			case err == nil && d.String() != want:
				t.Fatalf("Apply(%q, %v) = %q, Doc.Apply gives %q", doc, ra, want, d.String())
			case err != nil && d.String() != doc:
				t.Fatalf("failed Doc.Apply(%v) changed %q to %q", ra, doc, d.String())
			}
		} else if !errors.Is(err, ErrInvalidText) {
			t.Fatalf("NewDoc(%q) fails with %v but Apply with %v", doc, derr, err)
		}

		// Valid ops converge and compose.
		doc = strings.ToValidUTF8(doc, "\uFFFD")
		n := runeCount(doc)
		va, vb := fuzzOp(a, n, true), fuzzOp(b, n, true)
		checkConvergence(t, doc, va, vb, side)
		afterA := mustApply(doc, va)
		vc := fuzzOp(b, runeCount(afterA), true)
		ac, err := Compose(va, vc)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := mustApply(doc, ac), mustApply(afterA, vc); got != want {
			t.Fatalf("doc %q, a %v, c %v: compose %v gives %q, want %q", doc, va, vc, ac, got, want)
		}
	})
}
