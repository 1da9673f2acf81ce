package ot

import (
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// randEdit returns a random valid op on a document of length docLen, with
// skips across the whole document and sometimes large inserts or deletes.
func randEdit(r *rand.Rand, docLen int) Op {
	var op Op
	left := docLen
	for steps := 1 + r.IntN(5); steps > 0; steps-- {
		switch r.IntN(8) {
		case 0, 1, 2:
			n := r.IntN(left/2 + 1)
			op = append(op, Skip(n))
			left -= n
		case 3, 4:
			n := r.IntN(min(left, 20) + 1)
			if r.IntN(10) == 0 {
				n = r.IntN(left + 1) // a large delete
			}
			op = append(op, Delete(n))
			left -= n
		case 5, 6:
			op = append(op, Insert(randText(r, 30)))
		case 7:
			op = append(op, Insert(randText(r, 600))) // splits leaves
		}
	}
	return op
}

// checkTree checks the rope's invariants: leaves at one depth, sizes within
// the limits, and lengths that add up.
func checkTree(t *testing.T, d *Doc) {
	t.Helper()
	leafDepth := -1
	var walk func(n *node, depth int, root bool) error
	walk = func(n *node, depth int, root bool) error {
		if n.leaf {
			switch {
			case leafDepth >= 0 && depth != leafDepth:
				return fmt.Errorf("leaves at depths %d and %d", leafDepth, depth)
			case !utf8.Valid(n.text):
				return fmt.Errorf("leaf %q is not valid UTF-8", n.text)
			case n.bytes != len(n.text) || n.runes != utf8.RuneCount(n.text):
				return fmt.Errorf("leaf %q has bytes %d runes %d", n.text, n.bytes, n.runes)
			case len(n.text) == 0 && !root:
				return errors.New("empty leaf below the root")
			case len(n.text) > d.lim.leaf+utf8.UTFMax:
				return fmt.Errorf("leaf of %d bytes, limit %d", len(n.text), d.lim.leaf)
			}
			leafDepth = depth
			return nil
		}
		if len(n.kids) == 0 || len(n.kids) > d.lim.kids || root && len(n.kids) < 2 {
			return fmt.Errorf("internal node with %d children (limit %d, root %v)", len(n.kids), d.lim.kids, root)
		}
		runes, bytes := 0, 0
		for _, k := range n.kids {
			if err := walk(k, depth+1, false); err != nil {
				return err
			}
			runes += k.runes
			bytes += k.bytes
		}
		if runes != n.runes || bytes != n.bytes {
			return fmt.Errorf("node has runes %d bytes %d, its children %d and %d", n.runes, n.bytes, runes, bytes)
		}
		return nil
	}
	if d.root != nil {
		if err := walk(d.root, 0, true); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDocMatchesApply applies random sequences of ops to a Doc and to a
// string, with node sizes from tiny (deep trees, many splits and merges) to
// the default, and compares text, lengths and checksums after each op.
func TestDocMatchesApply(t *testing.T) {
	for _, lim := range []limits{{leaf: 4, kids: 2}, {leaf: 8, kids: 4}, {leaf: 32, kids: 5}, defaultLimits} {
		t.Run(fmt.Sprintf("leaf%d-kids%d", lim.leaf, lim.kids), func(t *testing.T) {
			for seed := range uint64(40) {
				r := newRand(seed)
				text := randText(r, r.IntN(3000))
				d, err := newDoc(text, lim)
				if err != nil {
					t.Fatal(err)
				}
				checkTree(t, d)
				for step := range 60 {
					op := randEdit(r, runeCount(text))
					want := mustApply(text, op)
					if err := d.Apply(op); err != nil {
						t.Fatalf("seed %d step %d: Apply(%v): %v", seed, step, op, err)
					}
					checkTree(t, d)
					if got := d.String(); got != want {
						t.Fatalf("seed %d step %d: after %v doc is %q, want %q", seed, step, op, got, want)
					}
					if d.Len() != runeCount(want) || d.Size() != len(want) {
						t.Fatalf("seed %d step %d: Len %d Size %d, want %d %d", seed, step, d.Len(), d.Size(), runeCount(want), len(want))
					}
					// Checksum only some steps, so that stale sums must
					// survive several edits.
					if step%3 == 0 {
						if got, want := d.CRC32(), crc32.ChecksumIEEE([]byte(want)); got != want {
							t.Fatalf("seed %d step %d: CRC32 %#x, want %#x", seed, step, got, want)
						}
					}
					text = want
				}
			}
		})
	}
}

// TestDocApplyErrors checks that a failing Apply leaves the Doc unchanged.
func TestDocApplyErrors(t *testing.T) {
	text := strings.Repeat("ab💃", 2000)
	tests := []struct {
		name string
		op   Op
		err  error
	}{
		{"skip past end", op(6000, "x", 1), ErrTooLong},
		{"delete past end", op("x", 5999, del(2)), ErrTooLong},
		{"huge delete", op(del(maxTotal)), ErrTooLong},
		{"negative", op(1, "x", -1), ErrInvalidOp},
		{"invalid insert", op(1, "x", "\x80"), ErrInvalidOp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := newDoc(text, limits{leaf: 16, kids: 4})
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Apply(tt.op); !errors.Is(err, tt.err) {
				t.Fatalf("Apply(%v) = %v; want %v", tt.op, err, tt.err)
			}
			if d.String() != text || d.CRC32() != CRC32(text) {
				t.Fatal("a failed Apply changed the document")
			}
		})
	}
}

// TestDocDeleteAll empties a deep tree and fills it again.
func TestDocDeleteAll(t *testing.T) {
	text := strings.Repeat("x😀", 500)
	d, err := newDoc(text, limits{leaf: 8, kids: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		op   Op
		want string
	}{
		{op(del(1000)), ""},
		{op(text), text},
		{op(1, del(998), 1), "x😀"},
	} {
		if err := d.Apply(step.op); err != nil {
			t.Fatal(err)
		}
		checkTree(t, d)
		if d.String() != step.want || d.CRC32() != CRC32(step.want) {
			t.Fatalf("after %.40v: %.40q, want %.40q", step.op, d.String(), step.want)
		}
	}
}

func TestNewDocInvalid(t *testing.T) {
	if _, err := NewDoc("ok\xc3("); !errors.Is(err, ErrInvalidText) {
		t.Fatalf("NewDoc of invalid UTF-8: %v; want ErrInvalidText", err)
	}
}

// TestCRCCombine checks the polynomial arithmetic behind Doc.CRC32.
func TestCRCCombine(t *testing.T) {
	r := newRand(1)
	for range 500 {
		a, b := randText(r, 50), randText(r, 300)
		got := crcCombine(CRC32(a), CRC32(b), shiftFor(len(b)))
		if want := CRC32(a + b); got != want {
			t.Fatalf("combine(%q, %q) = %#x; want %#x", a, b, got, want)
		}
	}
	if got := shiftFor(0); got != one {
		t.Fatalf("shiftFor(0) = %#x; want 1 (%#x)", got, one)
	}
}

// TestSkipRunes compares the word-at-a-time scan with a plain one.
func TestSkipRunes(t *testing.T) {
	r := newRand(5)
	for range 2000 {
		s := randText(r, 40)
		runes := []rune(s)
		for n := 0; n <= len(runes)+2; n++ {
			wantOff, wantLack := len(s), max(0, n-len(runes))
			if n <= len(runes) {
				wantOff = len(string(runes[:n]))
			}
			off, lack := skipRunes(s, n)
			boff, black := skipRunes([]byte(s), n)
			if off != wantOff || lack != wantLack || boff != off || black != lack {
				t.Fatalf("skipRunes(%q, %d) = %d, %d ([]byte: %d, %d); want %d, %d", s, n, off, lack, boff, black, wantOff, wantLack)
			}
		}
	}
}

// TestMulModP compares the four-bit multiplication with one bit at a time.
func TestMulModP(t *testing.T) {
	bitwise := func(a, b uint32) uint32 {
		var p uint32
		for ; a != 0; a <<= 1 {
			if a&one != 0 {
				p ^= b
			}
			b = mulX(b)
		}
		return p
	}
	r := newRand(6)
	for range 10000 {
		a, b := r.Uint32(), r.Uint32()
		if got, want := mulModP(a, b), bitwise(a, b); got != want {
			t.Fatalf("mulModP(%#x, %#x) = %#x; want %#x", a, b, got, want)
		}
	}
}
