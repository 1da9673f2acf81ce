package fsevents

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/services/workspace"
)

// state is "name:ino[/]" items, a slash marking a directory.
func state(items ...string) snapshot[string] {
	s := make(snapshot[string])
	for _, item := range items {
		name, rest, _ := strings.Cut(item, ":")
		dir := strings.HasSuffix(rest, "/")
		var ino uint64
		fmt.Sscan(strings.TrimSuffix(rest, "/"), &ino)
		s[name] = workspace.Entry{Name: name, Dir: dir, Ino: ino, Size: 1, ModTime: time.Unix(1, 0)}
	}
	return s
}

func render(changes []change[string]) string {
	var out []string
	for _, c := range changes {
		s := c.op.String() + " " + c.key
		if c.op == api.FileEvent_Move {
			s += "->" + c.dest
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

func TestDiff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		before, after snapshot[string]
		flags         map[string]int
		want          string
	}{
		{"create", state(), state("a:1"), nil, "Create a"},
		{"remove", state("a:1"), state(), nil, "Remove a"},
		{"modify by event", state("a:1"), state("a:1"), map[string]int{"a": flagModified}, "Modify a"},
		{"unchanged", state("a:1"), state("a:1"), nil, ""},
		{"rename", state("a:1"), state("b:1"), map[string]int{"a": flagRenamed}, "Move a->b"},
		{"inode reused without a rename is no move", state("a:1"), state("b:1"), nil, "Remove a, Create b"},
		{"atomic save", state("a:1"), state("a:2"), map[string]int{"a": flagModified}, "Modify a"},
		{"temporary renamed over", state("a:1"), state("a:2"), map[string]int{"a": flagModified, ".swp": flagRenamed}, "Modify a"},
		{"move onto existing", state("a:1", "b:2"), state("b:1"), map[string]int{"a": flagRenamed}, "Move a->b"},
		{"chain", state("a:1", "b:2"), state("b:1", "c:2"), map[string]int{"a": flagRenamed, "b": flagRenamed}, "Move b->c, Move a->b"},
		{"swap falls back", state("a:1", "b:2"), state("a:2", "b:1"), map[string]int{"a": flagRenamed, "b": flagRenamed}, "Modify a, Modify b"},
		{"moved away and recreated", state("a:1"), state("a:3", "b:1"), map[string]int{"a": flagRenamed | flagModified}, "Move a->b, Create a"},
		{"type change", state("a:1"), state("a:2/"), nil, "Remove a, Create a"},
		{"directory rename", state("d:1/"), state("e:1/"), map[string]int{"d": flagRenamed}, "Move d->e"},
		{"file onto a directory's old name", state("d:1/"), state("d:2", "e:1/"), map[string]int{"d": flagRenamed}, "Move d->e, Create d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := keysOf(tt.before, tt.after, tt.flags)
			got := diff(keys, tt.before, tt.after, tt.flags, cmp.Compare[string])
			if render(got) != tt.want {
				t.Errorf("diff = %q, want %q", render(got), tt.want)
			}
			if !consistent(keys, tt.before, tt.after, got) {
				t.Errorf("%q does not take the before listing to the after one", render(got))
			}
		})
	}
}

func keysOf(before, after snapshot[string], flags map[string]int) []string {
	var keys []string
	for k := range before {
		keys = append(keys, k)
	}
	for k := range after {
		keys = append(keys, k)
	}
	for k := range flags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// TestDiffConsistent checks, over random changes, that the events always
// take the before listing to the after one.
func TestDiffConsistent(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"a", "b", "c", "d", "e", "f"}
	for round := range 5000 {
		before, after := make(snapshot[string]), make(snapshot[string])
		flags := make(map[string]int)
		for _, n := range names {
			if rng.IntN(2) == 0 {
				before[n] = workspace.Entry{Ino: uint64(rng.IntN(5) + 1), Dir: rng.IntN(4) == 0}
			}
			if rng.IntN(2) == 0 {
				after[n] = workspace.Entry{Ino: uint64(rng.IntN(5) + 1), Dir: rng.IntN(4) == 0}
			}
			flags[n] = rng.IntN(4)
		}
		keys := keysOf(before, after, flags)
		// With moves, unless the moves form a cycle; without, always.
		if moves, ok := diffMoves(keys, before, after, flags); ok && !consistent(keys, before, after, moves) {
			t.Fatalf("round %d: %q is not consistent\nbefore %v\nafter %v\nflags %v", round, render(moves), before, after, flags)
		}
		if plain := diffPlain(keys, before, after, flags); !consistent(keys, before, after, plain) {
			t.Fatalf("round %d: %q is not consistent\nbefore %v\nafter %v", round, render(plain), before, after)
		}
		if got := diff(keys, before, after, flags, cmp.Compare[string]); !consistent(keys, before, after, got) {
			t.Fatalf("round %d: %q is not consistent", round, render(got))
		}
	}
}
