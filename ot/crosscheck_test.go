package ot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/conman-dev/conman/internal/nodetest"
)

// refOp is an op in ot-text-unicode's JSON form: a number is a skip, a
// string an insert, {"d": n} (or {"d": "text"}) a delete.
type refOp []any

// toRef converts op to ot-text-unicode's form, keeping empty components
// (as 0, "" or {d: 0}) so that the reference normalises them too.
func toRef(op Op) refOp {
	out := refOp{}
	for _, c := range op {
		switch {
		case c.Insert != "":
			out = append(out, c.Insert)
		case c.Delete != 0:
			out = append(out, map[string]int{"d": c.Delete})
		default:
			out = append(out, c.Skip)
		}
	}
	return out
}

// fromRef converts an op in ot-text-unicode's form, as decoded from JSON.
func fromRef(ref refOp) (Op, error) {
	op := Op{}
	for _, v := range ref {
		switch v := v.(type) {
		case float64:
			op = append(op, Skip(int(v)))
		case string:
			op = append(op, Insert(v))
		case map[string]any:
			switch d := v["d"].(type) {
			case float64:
				op = append(op, Delete(int(d)))
			case string:
				op = append(op, Delete(runeCount(d)))
			default:
				return nil, fmt.Errorf("bad delete %v", v)
			}
		default:
			return nil, fmt.Errorf("bad component %v", v)
		}
	}
	return op, nil
}

type crossCase struct {
	Doc     string `json:"doc"`
	A       refOp  `json:"a"`
	B       refOp  `json:"b"`
	C       refOp  `json:"c"`
	Side    string `json:"side"`
	Cursors []int  `json:"cursors"`

	a, b, c Op
	side    Side
}

type crossResult struct {
	Error        string  `json:"error"`
	A            refOp   `json:"a"`
	B            refOp   `json:"b"`
	C            refOp   `json:"c"`
	ApplyA       string  `json:"applyA"`
	ApplyB       string  `json:"applyB"`
	TA           refOp   `json:"ta"`
	TB           refOp   `json:"tb"`
	ConvergedA   string  `json:"convergedA"`
	ConvergedB   string  `json:"convergedB"`
	Compose      refOp   `json:"compose"`
	ApplyAC      string  `json:"applyAC"`
	ApplyCompose string  `json:"applyCompose"`
	Cursors      []int   `json:"cursors"`
	CRC          *uint32 `json:"crc"`
}

// crossCases returns n random cases from a fixed seed.
func crossCases(n int) []crossCase {
	r := newRand(20240601)
	cases := make([]crossCase, n)
	for i := range cases {
		k := &cases[i]
		k.Doc = randDoc(r)
		docLen := runeCount(k.Doc)
		k.a, k.b = randPair(r, docLen)
		k.side = randSide(r)
		k.c = randOp(r, runeCount(mustApply(k.Doc, k.a)))
		k.A, k.B, k.C, k.Side = toRef(k.a), toRef(k.b), toRef(k.c), k.side.String()
		for range 4 {
			k.Cursors = append(k.Cursors, r.IntN(docLen+3))
		}
	}
	return cases
}

// TestCrossCheck runs thousands of random cases through ot-text-unicode in
// one Node process and requires the same normal forms, transforms,
// compositions, documents, cursor positions and checksums.
func TestCrossCheck(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := nodetest.Command(ctx, t, "ot/crosscheck.js")

	cases := crossCases(6000)
	input, err := json.Marshal(map[string]any{"cases": cases})
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(input), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("crosscheck.js: %v\nstderr:\n%s", err, stderr.String())
	}
	var out struct{ Results []crossResult }
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("crosscheck.js output: %v", err)
	}
	if len(out.Results) != len(cases) {
		t.Fatalf("crosscheck.js returned %d results for %d cases", len(out.Results), len(cases))
	}

	failures := 0
	for i := range cases {
		for _, msg := range checkCross(&cases[i], &out.Results[i]) {
			if failures++; failures <= 20 {
				k := &cases[i]
				t.Errorf("case %d: doc %q, a %v, b %v, side %v, c %v: %s", i, k.Doc, k.a, k.b, k.side, k.c, msg)
			}
		}
	}
	if failures > 0 {
		t.Fatalf("%d mismatches in %d cases", failures, len(cases))
	}
}

// checkCross compares our results for k with the reference's ref.
func checkCross(k *crossCase, ref *crossResult) []string {
	if ref.Error != "" {
		return []string{"reference failed: " + ref.Error}
	}
	var msgs []string
	sameOp := func(what string, got Op, err error, want refOp) {
		w, werr := fromRef(want)
		switch {
		case err != nil:
			msgs = append(msgs, fmt.Sprintf("%s: %v", what, err))
		case werr != nil:
			msgs = append(msgs, fmt.Sprintf("%s: reference: %v", what, werr))
		case !reflect.DeepEqual(got, w):
			msgs = append(msgs, fmt.Sprintf("%s = %v, reference %v", what, got, w))
		}
	}
	sameText := func(what, got string, err error, want string) {
		if err != nil {
			msgs = append(msgs, fmt.Sprintf("%s: %v", what, err))
		} else if got != want {
			msgs = append(msgs, fmt.Sprintf("%s = %q, reference %q", what, got, want))
		}
	}

	na, err := Normalize(k.a)
	sameOp("normalize(a)", na, err, ref.A)
	nb, err := Normalize(k.b)
	sameOp("normalize(b)", nb, err, ref.B)
	nc, err := Normalize(k.c)
	sameOp("normalize(c)", nc, err, ref.C)

	applyA, err := Apply(k.Doc, k.a)
	sameText("apply(doc, a)", applyA, err, ref.ApplyA)
	applyB, err := Apply(k.Doc, k.b)
	sameText("apply(doc, b)", applyB, err, ref.ApplyB)

	ta, err := Transform(k.a, k.b, k.side)
	sameOp("transform(a, b)", ta, err, ref.TA)
	tb, err := Transform(k.b, k.a, k.side.other())
	sameOp("transform(b, a)", tb, err, ref.TB)
	s, err := Apply(applyB, ta)
	sameText("apply(apply(doc, b), ta)", s, err, ref.ConvergedA)
	s, err = Apply(applyA, tb)
	sameText("apply(apply(doc, a), tb)", s, err, ref.ConvergedB)

	ac, err := Compose(k.a, k.c)
	sameOp("compose(a, c)", ac, err, ref.Compose)
	s, err = Apply(applyA, k.c)
	sameText("apply(apply(doc, a), c)", s, err, ref.ApplyAC)
	s, err = Apply(k.Doc, ac)
	sameText("apply(doc, compose(a, c))", s, err, ref.ApplyCompose)

	for i, p := range k.Cursors {
		if got := TransformPosition(p, k.a); got != ref.Cursors[i] {
			msgs = append(msgs, fmt.Sprintf("transformPosition(%d, a) = %d, reference %d", p, got, ref.Cursors[i]))
		}
	}
	if ref.CRC != nil && CRC32(k.Doc) != *ref.CRC {
		msgs = append(msgs, fmt.Sprintf("CRC32 = %#x, reference %#x", CRC32(k.Doc), *ref.CRC))
	}
	return msgs
}
