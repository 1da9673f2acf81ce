package ot

import (
	"strings"
	"unicode/utf8"

	"github.com/conman-dev/conman/ot"
)

// maxDiffEdits bounds the line edits the diff looks for; past it the whole
// changed region becomes one replacement. It keeps the diff's time and
// memory (quadratic in the edits) small.
const maxDiffEdits = 1000

// diff returns an op that turns old into new (both valid UTF-8), counted in
// code points. It trims the common prefix and suffix, matches the lines in
// between (Myers' algorithm), and replaces only the code points that differ
// inside each changed group of lines, so that text others are editing
// around an outside change keeps its place. The op is normalised; it is
// empty when old == new.
func diff(old, new string) ot.Op {
	var b opBuilder
	// Trim whole lines only, so that the lines in between line up; the
	// replacements trim what is left of the shared text.
	prefix := commonPrefix(old, new)
	prefix = strings.LastIndexByte(old[:prefix], '\n') + 1
	b.skip(old[:prefix])
	old, new = old[prefix:], new[prefix:]
	suffix := commonSuffix(old, new)
	if i := strings.IndexByte(old[len(old)-suffix:], '\n'); i >= 0 {
		suffix -= i + 1
	} else {
		suffix = 0
	}
	old, new = old[:len(old)-suffix], new[:len(new)-suffix]

	a, c := splitLines(old), splitLines(new)
	script, ok := myers(lineIDs(a, c))
	if !ok || len(a) <= 1 || len(c) <= 1 {
		b.replace(old, new)
		return b.op()
	}
	i, j := 0, 0 // next line of a and c
	for k := 0; k < len(script); {
		if script[k] == editEqual {
			b.skip(a[i])
			i, j, k = i+1, j+1, k+1
			continue
		}
		var del, ins strings.Builder
		for ; k < len(script) && script[k] != editEqual; k++ {
			if script[k] == editDelete {
				del.WriteString(a[i])
				i++
			} else {
				ins.WriteString(c[j])
				j++
			}
		}
		b.replace(del.String(), ins.String())
	}
	return b.op()
}

// opBuilder accumulates an op from text it skips, deletes and inserts.
type opBuilder struct{ comps ot.Op }

func (b *opBuilder) skip(s string) {
	if s != "" {
		b.comps = append(b.comps, ot.Skip(utf8.RuneCountInString(s)))
	}
}

// replace deletes old and inserts new in its place, leaving out the code
// points they share at either end.
func (b *opBuilder) replace(old, new string) {
	p := commonPrefix(old, new)
	b.skip(old[:p])
	old, new = old[p:], new[p:]
	s := commonSuffix(old, new)
	if n := utf8.RuneCountInString(old[:len(old)-s]); n > 0 {
		b.comps = append(b.comps, ot.Delete(n))
	}
	if ins := new[:len(new)-s]; ins != "" {
		b.comps = append(b.comps, ot.Insert(ins))
	}
	b.skip(old[len(old)-s:])
}

func (b *opBuilder) op() ot.Op {
	op, err := ot.Normalize(b.comps)
	if err != nil {
		// The components come from valid text; this cannot happen.
		panic("ot: diff built an invalid op: " + err.Error())
	}
	return op
}

// commonPrefix returns the length in bytes of the longest common prefix of
// a and b that ends on a code point boundary.
func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	for i > 0 && i < len(a) && !utf8.RuneStart(a[i]) {
		i--
	}
	return i
}

// commonSuffix returns the length in bytes of the longest common suffix of
// a and b that starts on a code point boundary.
func commonSuffix(a, b string) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[len(a)-1-i] == b[len(b)-1-i] {
		i++
	}
	for i > 0 && !utf8.RuneStart(a[len(a)-i]) {
		i--
	}
	return i
}

// splitLines splits s after every newline; the pieces join to s.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := make([]string, 0, strings.Count(s, "\n")+1)
	for s != "" {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			lines = append(lines, s)
			break
		}
		lines = append(lines, s[:i+1])
		s = s[i+1:]
	}
	return lines
}

// lineIDs numbers the distinct lines of a and c.
func lineIDs(a, c []string) ([]int, []int) {
	ids := make(map[string]int, len(a)+len(c))
	number := func(lines []string) []int {
		out := make([]int, len(lines))
		for i, l := range lines {
			id, ok := ids[l]
			if !ok {
				id = len(ids)
				ids[l] = id
			}
			out[i] = id
		}
		return out
	}
	return number(a), number(c)
}

// edit is one step of an edit script.
type edit uint8

const (
	editEqual  edit = iota // the next elements of both are the same
	editDelete             // the next element of the old sequence goes
	editInsert             // the next element of the new sequence comes
)

// myers returns a shortest edit script from a to c, or false if it needs
// more than maxDiffEdits insertions and deletions. It is the greedy
// algorithm of Myers' "An O(ND) Difference Algorithm and Its Variations",
// keeping each round's furthest reaching paths to trace the script back.
func myers(a, c []int) ([]edit, bool) {
	n, m := len(a), len(c)
	limit := min(n+m, maxDiffEdits)
	offset := limit + 1
	v := make([]int, 2*limit+3) // v[offset+k]: furthest x on diagonal k
	var trace [][]int
	for d := 0; d <= limit; d++ {
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[offset+k-1] < v[offset+k+1]) {
				x = v[offset+k+1] // down: an insertion
			} else {
				x = v[offset+k-1] + 1 // right: a deletion
			}
			y := x - k
			for x < n && y < m && a[x] == c[y] {
				x, y = x+1, y+1
			}
			v[offset+k] = x
			if x >= n && y >= m {
				trace = append(trace, append([]int(nil), v[offset-d:offset+d+1]...))
				return backtrack(trace, n, m), true
			}
		}
		trace = append(trace, append([]int(nil), v[offset-d:offset+d+1]...))
	}
	return nil, false
}

// backtrack turns the rounds of myers into an edit script. trace[d] holds
// the furthest x of the diagonals -d…d after round d, at index k+d.
func backtrack(trace [][]int, n, m int) []edit {
	var script []edit
	x, y := n, m
	for d := len(trace) - 1; d > 0; d-- {
		prev := trace[d-1]
		at := func(k int) int { return prev[k+d-1] }
		k := x - y
		down := k == -d || (k != d && at(k-1) < at(k+1))
		prevK := k - 1
		if down {
			prevK = k + 1
		}
		prevX := at(prevK)
		prevY := prevX - prevK
		// Where this round's step ended and its snake began.
		stepX, stepY := prevX+1, prevY
		if down {
			stepX, stepY = prevX, prevY+1
		}
		for x > stepX && y > stepY {
			script = append(script, editEqual)
			x, y = x-1, y-1
		}
		if down {
			script = append(script, editInsert)
		} else {
			script = append(script, editDelete)
		}
		x, y = prevX, prevY
	}
	for x > 0 && y > 0 {
		script = append(script, editEqual)
		x, y = x-1, y-1
	}
	for i, j := 0, len(script)-1; i < j; i, j = i+1, j-1 {
		script[i], script[j] = script[j], script[i]
	}
	return script
}
