package ot

import (
	"errors"
	"reflect"
	"testing"
)

// op is shorthand for table tests: ints are skips, strings inserts, and
// del(n) deletes.
func op(parts ...any) Op {
	out := Op{}
	for _, p := range parts {
		switch p := p.(type) {
		case int:
			out = append(out, Skip(p))
		case string:
			out = append(out, Insert(p))
		case Component:
			out = append(out, p)
		default:
			panic(p)
		}
	}
	return out
}

func del(n int) Component { return Delete(n) }

func TestApply(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		op   Op
		want string
		err  error
	}{
		{"empty op", "abc", op(), "abc", nil},
		{"empty doc", "", op("hi"), "hi", nil},
		{"README example", "hi there", op(3, del(5), "🤖👻💃"), "hi 🤖👻💃", nil},
		{"astral counts as one", "💃123", op(1, del(1), "x"), "💃x23", nil},
		{"insert astral", "ab", op(1, "😀"), "a😀b", nil},
		{"delete astral", "a💃b", op(1, del(1)), "ab", nil},
		{"skip whole doc", "💃123", op(4), "💃123", nil},
		{"insert at end", "💃123", op(4, "!"), "💃123!", nil},
		{"delete then insert", "abc", op(del(1), "x"), "xbc", nil},
		{"insert then delete", "abc", op("x", del(1)), "xbc", nil},
		{"empty components", "abc", op(0, "", del(0), 1, Component{}, del(1)), "ac", nil},
		{"unnormalised", "abcdef", op(1, 1, del(1), del(1), "x", "y", 1), "abxyef", nil},
		{"delete all", "𝒳𝒳", op(del(2)), "", nil},
		{"skip past end", "💃123", op(5), "", ErrTooLong},
		{"skip past end after insert", "ab", op("xyz", 3), "", ErrTooLong},
		{"delete past end", "💃123", op(3, del(2)), "", ErrTooLong},
		{"delete on empty", "", op(del(1)), "", ErrTooLong},
		{"negative skip", "abc", op(-1), "", ErrInvalidOp},
		{"negative delete", "abc", op(del(-1)), "", ErrInvalidOp},
		{"two fields", "abc", Op{{Skip: 1, Insert: "x"}}, "", ErrInvalidOp},
		{"skip and delete", "abc", Op{{Skip: 1, Delete: 1}}, "", ErrInvalidOp},
		{"invalid UTF-8 insert", "abc", op("\xff"), "", ErrInvalidOp},
		{"lone surrogate insert", "abc", op("\xed\xa0\x80"), "", ErrInvalidOp},
		{"invalid UTF-8 doc", "a\xffb", op(1), "", ErrInvalidText},
		{"overflowing counts", "abc", op(maxTotal, maxTotal), "", ErrInvalidOp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Apply(tt.doc, tt.op)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("Apply(%q, %v) = %q, %v; want %q, %v", tt.doc, tt.op, got, err, tt.want, tt.err)
			}
			d, err := NewDoc(tt.doc)
			if err != nil {
				if !errors.Is(err, ErrInvalidText) || tt.err != ErrInvalidText {
					t.Fatalf("NewDoc(%q): %v", tt.doc, err)
				}
				return
			}
			err = d.Apply(tt.op)
			want := tt.want
			if tt.err != nil {
				want = tt.doc // unchanged
			}
			if !errors.Is(err, tt.err) || d.String() != want {
				t.Fatalf("Doc.Apply(%v) on %q: %q, %v; want %q, %v", tt.op, tt.doc, d.String(), err, want, tt.err)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		op   Op
		want Op
		err  error
	}{
		{"nil", nil, op(), nil},
		{"empty components", op(0, "", del(0), Component{}), op(), nil},
		{"trailing skip", op(5), op(), nil},
		{"merge", op(1, 2, "a", "b", del(1), del(2), 3), op(3, "ab", del(3)), nil},
		{"merge across empty", op(del(1), 0, del(1), "a", del(0), "💃"), op(del(2), "a💃"), nil},
		{"insert, delete, insert kept", op("a", del(1), "b"), op("a", del(1), "b"), nil},
		{"delete before insert kept", op(del(1), "a"), op(del(1), "a"), nil},
		{"insert before delete kept", op("a", del(1)), op("a", del(1)), nil},
		{"skip between kept", op("a", 1, "b", 2), op("a", 1, "b"), nil},
		{"negative", op(1, -2), nil, ErrInvalidOp},
		{"invalid UTF-8", op("a\xc3"), nil, ErrInvalidOp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.op)
			if !errors.Is(err, tt.err) || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Normalize(%v) = %v, %v; want %v, %v", tt.op, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestTransform(t *testing.T) {
	tests := []struct {
		name        string
		op, other   Op
		left, right Op // the results for each side
	}{
		{"both empty", op(), op(), op(), op()},
		{"against no-op", op(1, "x"), op(), op(1, "x"), op(1, "x")},
		{"no-op against insert", op(), op("x"), op(), op()},
		{"insert tie", op("a"), op("b"), op("a"), op(1, "a")},
		{"insert tie astral", op(1, "💃"), op(1, "😀😀"), op(1, "💃"), op(3, "💃")},
		{"insert before insert", op("a"), op(1, "b"), op("a"), op("a")},
		{"insert after insert", op(2, "a"), op("bc"), op(4, "a"), op(4, "a")},
		{"insert then delete, tie", op(1, "x", del(2)), op(1, "y"), op(1, "x", 1, del(2)), op(2, "x", del(2))},
		{"delete then insert, tie", op(del(1), "x"), op("y"), op(1, del(1), "x"), op(1, del(1), "x")},
		{"insert then delete at 0, tie", op("x", del(1)), op("y"), op("x", 1, del(1)), op(1, "x", del(1))},
		{"insert inside other's delete", op(2, "x"), op(del(4)), op("x"), op("x")},
		{"insert at other's delete start", op(1, "x"), op(1, del(2)), op(1, "x"), op(1, "x")},
		{"insert at other's delete end", op(3, "x"), op(1, del(2)), op(1, "x"), op(1, "x")},
		{"delete around other's insert", op(del(3)), op(1, "xy"), op(del(1), 2, del(2)), op(del(1), 2, del(2))},
		{"overlapping deletes", op(1, del(2)), op(del(2)), op(del(1)), op(del(1))},
		{"same delete", op(1, del(2)), op(1, del(2)), op(), op()},
		{"delete inside other's delete", op(1, del(1)), op(del(3)), op(), op()},
		{"delete after other's insert", op(2, del(1)), op(1, "😀"), op(3, del(1)), op(3, del(1))},
		{"astral delete against astral insert", op(1, del(1)), op(1, "💃"), op(2, del(1)), op(2, del(1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, side := range []Side{Left, Right} {
				want := tt.left
				if side == Right {
					want = tt.right
				}
				got, err := Transform(tt.op, tt.other, side)
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("Transform(%v, %v, %v) = %v, %v; want %v", tt.op, tt.other, side, got, err, want)
				}
			}
		})
	}
}

func TestTransformErrors(t *testing.T) {
	tests := []struct {
		name      string
		op, other Op
		side      Side
	}{
		{"bad side", op(1), op(1), Side(2)},
		{"bad op", op(-1), op(1), Left},
		{"bad other", op(1), op("\xff"), Right},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := Transform(tt.op, tt.other, tt.side); !errors.Is(err, ErrInvalidOp) {
				t.Fatalf("Transform(%v, %v, %v) = %v, %v; want ErrInvalidOp", tt.op, tt.other, tt.side, got, err)
			}
		})
	}
}

func TestCompose(t *testing.T) {
	tests := []struct {
		name string
		a, b Op
		want Op
		err  error
	}{
		{"empty", op(), op(), op(), nil},
		{"inserts", op("a"), op(1, "b"), op("ab"), nil},
		{"insert before delete", op(del(1)), op("x"), op("x", del(1)), nil},
		{"delete then delete", op(del(1)), op(del(1)), op(del(2)), nil},
		{"delete inserted", op("abc"), op(1, del(1)), op("ac"), nil},
		{"delete inserted astral", op(2, "💃"), op(2, del(1)), op(), nil},
		{"delete across insert", op(1, "xy"), op(del(4)), op(del(2)), nil},
		{"insert then delete cancels", op("x", del(1)), op(del(1)), op(del(1)), nil},
		{"b past a's end", op("x"), op(3, "y"), op("x", 2, "y"), nil},
		{"skip over delete", op(1, del(2)), op(2, "z"), op(1, del(2), 1, "z"), nil},
		{"astral", op(1, "😀"), op(1, del(1), "🤖"), op(1, "🤖"), nil},
		{"bad a", op(-1), op(), nil, ErrInvalidOp},
		{"bad b", op(), Op{{Delete: 1, Insert: "x"}}, nil, ErrInvalidOp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Compose(tt.a, tt.b)
			if !errors.Is(err, tt.err) || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Compose(%v, %v) = %v, %v; want %v, %v", tt.a, tt.b, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestTransformPosition(t *testing.T) {
	tests := []struct {
		name string
		pos  int
		op   Op
		want int
	}{
		{"insert at cursor stays", 0, op("ab"), 0},
		{"insert before cursor", 1, op("ab"), 3},
		{"insert astral before cursor", 3, op(2, "💃"), 4},
		{"insert astral at cursor", 2, op(2, "💃"), 2},
		{"insert after cursor", 1, op(2, "x"), 1},
		{"delete before cursor", 5, op(1, del(2)), 3},
		{"delete around cursor", 3, op(1, del(5)), 1},
		{"delete after cursor", 1, op(1, del(5)), 1},
		{"delete then insert before cursor", 2, op(del(1), "x"), 2},
		{"beyond op", 10, op(1, "xy"), 12},
		{"negative", -1, op("x"), -1},
		{"empty components", 2, op(0, "", del(0), 1, "x"), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TransformPosition(tt.pos, tt.op); got != tt.want {
				t.Fatalf("TransformPosition(%d, %v) = %d; want %d", tt.pos, tt.op, got, tt.want)
			}
		})
	}
}

func TestCRC32(t *testing.T) {
	tests := []struct {
		text string
		want uint32
	}{
		{"", 0},
		{"SheetJS", 0x9DD03922},
		{"123456789", 0xCBF43926},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			if got := CRC32(tt.text); got != tt.want {
				t.Fatalf("CRC32(%q) = %#x; want %#x", tt.text, got, tt.want)
			}
			d, err := NewDoc(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if got := d.CRC32(); got != tt.want {
				t.Fatalf("Doc.CRC32() of %q = %#x; want %#x", tt.text, got, tt.want)
			}
		})
	}
}

func TestComponentString(t *testing.T) {
	tests := []struct {
		op   Op
		want string
	}{
		{op(3, "hi", del(2)), `[3, "hi", {d:2}]`},
		{op(), `[]`},
		{Op{{Skip: 1, Insert: "x"}}, `[{skip:1 delete:0 insert:"x"}]`},
	}
	for _, tt := range tests {
		if got := tt.op.String(); got != tt.want {
			t.Errorf("String() = %s; want %s", got, tt.want)
		}
	}
}

func TestZeroDoc(t *testing.T) {
	var d Doc
	if d.Len() != 0 || d.Size() != 0 || d.String() != "" || d.CRC32() != 0 {
		t.Fatalf("zero Doc: len %d size %d %q crc %#x", d.Len(), d.Size(), d.String(), d.CRC32())
	}
	if err := d.Apply(op("💃x")); err != nil {
		t.Fatal(err)
	}
	if d.Len() != 2 || d.Size() != 5 || d.String() != "💃x" || d.CRC32() != CRC32("💃x") {
		t.Fatalf("after insert: len %d size %d %q", d.Len(), d.Size(), d.String())
	}
}
