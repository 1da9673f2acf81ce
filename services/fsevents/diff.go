package fsevents

import (
	"slices"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/services/workspace"
)

// Flags of a touched name, from the raw events of one batch.
const (
	flagModified = 1 << iota // written, attributes changed, or created
	flagRenamed              // renamed away (a move may start here)
)

// change is one net change of a batch, on keys of type K (a directory and
// a name).
type change[K comparable] struct {
	op   api.FileEvent_Op
	key  K // Create, Modify, Remove: the name; Move: the source
	dest K // Move only
	dir  bool
}

// snapshot is what a set of names holds: name → entry.
type snapshot[K comparable] map[K]workspace.Entry

// diff turns the state of the touched keys before a batch and after it into
// events that, applied in order to the before state (Create and Move set a
// name, Remove and Move clear one, Modify changes nothing), give the after
// state. Moves are recognised by a file keeping its serial number across a
// rename; anything else is a Remove and a Create, and an object replaced in
// place (an editor's atomic save) is a Modify.
func diff[K comparable](keys []K, before, after snapshot[K], flags map[K]int, compare func(a, b K) int) []change[K] {
	keys = slices.Clone(keys)
	slices.SortFunc(keys, compare)
	if changes, ok := diffMoves(keys, before, after, flags); ok && consistent(keys, before, after, changes) {
		return changes
	}
	return diffPlain(keys, before, after, flags)
}

// sameObject reports whether the entry at a name before and after is the
// same file.
func sameObject(b, a workspace.Entry) bool {
	return b.Ino == a.Ino && b.Dir == a.Dir
}

// changed reports whether a file that stayed in place changed.
func changed(b, a workspace.Entry, flags int) bool {
	if flags&flagModified != 0 {
		return true
	}
	return !a.Dir && (b.Size != a.Size || !b.ModTime.Equal(a.ModTime) || b.Mode != a.Mode)
}

// diffPlain compares name by name: no moves.
func diffPlain[K comparable](keys []K, before, after snapshot[K], flags map[K]int) []change[K] {
	var removes, creates, modifies []change[K]
	for _, k := range keys {
		b, hadB := before[k]
		a, hasA := after[k]
		switch {
		case hadB && hasA && b.Dir != a.Dir:
			removes = append(removes, change[K]{op: api.FileEvent_Remove, key: k, dir: b.Dir})
			creates = append(creates, change[K]{op: api.FileEvent_Create, key: k, dir: a.Dir})
		case hadB && hasA:
			if !sameObject(b, a) || changed(b, a, flags[k]) {
				modifies = append(modifies, change[K]{op: api.FileEvent_Modify, key: k, dir: a.Dir})
			}
		case hadB:
			removes = append(removes, change[K]{op: api.FileEvent_Remove, key: k, dir: b.Dir})
		case hasA:
			creates = append(creates, change[K]{op: api.FileEvent_Create, key: k, dir: a.Dir})
		}
	}
	return slices.Concat(removes, creates, modifies)
}

// diffMoves is diffPlain that also pairs a file renamed away with the name
// where the same file appeared. It reports false when the moves form a
// cycle (names swapped), which no order of Move events can express.
func diffMoves[K comparable](keys []K, before, after snapshot[K], flags map[K]int) ([]change[K], bool) {
	// Sources: objects that left their name by a rename; by serial number.
	sourceByIno := make(map[uint64]K)
	for _, k := range keys {
		b, hadB := before[k]
		if !hadB || b.Ino == 0 || flags[k]&flagRenamed == 0 {
			continue
		}
		if a, hasA := after[k]; hasA && sameObject(b, a) {
			continue
		}
		if _, dup := sourceByIno[b.Ino]; !dup {
			sourceByIno[b.Ino] = k
		}
	}
	movedTo := make(map[K]K)   // source → destination
	movedFrom := make(map[K]K) // destination → source
	for _, k := range keys {
		a, hasA := after[k]
		if !hasA {
			continue
		}
		if b, hadB := before[k]; hadB && sameObject(b, a) {
			continue
		}
		src, ok := sourceByIno[a.Ino]
		if !ok || src == k || before[src].Dir != a.Dir {
			continue
		}
		if _, taken := movedTo[src]; taken {
			continue
		}
		movedTo[src], movedFrom[k] = k, src
	}

	var removes, moves, creates, modifies []change[K]
	for _, k := range keys {
		b, hadB := before[k]
		a, hasA := after[k]
		_, leftByMove := movedTo[k]
		_, arrivedByMove := movedFrom[k]
		if hadB && hasA && sameObject(b, a) {
			if changed(b, a, flags[k]) {
				modifies = append(modifies, change[K]{op: api.FileEvent_Modify, key: k, dir: a.Dir})
			}
			continue
		}
		gone := hadB && !leftByMove     // the old object vanished here
		fresh := hasA && !arrivedByMove // a new object appeared here
		switch {
		case gone && fresh && b.Dir == a.Dir:
			modifies = append(modifies, change[K]{op: api.FileEvent_Modify, key: k, dir: a.Dir})
		case gone && fresh:
			removes = append(removes, change[K]{op: api.FileEvent_Remove, key: k, dir: b.Dir})
			creates = append(creates, change[K]{op: api.FileEvent_Create, key: k, dir: a.Dir})
		case gone && !arrivedByMove:
			removes = append(removes, change[K]{op: api.FileEvent_Remove, key: k, dir: b.Dir})
		case fresh:
			creates = append(creates, change[K]{op: api.FileEvent_Create, key: k, dir: a.Dir})
		}
		if arrivedByMove {
			moves = append(moves, change[K]{op: api.FileEvent_Move, key: movedFrom[k], dest: k, dir: a.Dir})
		}
	}
	// A move onto a name whose own object moves away must come after that
	// one.
	ordered := make([]change[K], 0, len(moves))
	pending := moves
	for len(pending) > 0 {
		var next []change[K]
		blocking := make(map[K]bool, len(pending))
		for _, m := range pending {
			blocking[m.key] = true
		}
		for _, m := range pending {
			if blocking[m.dest] {
				next = append(next, m)
			} else {
				ordered = append(ordered, m)
			}
		}
		if len(next) == len(pending) {
			return nil, false
		}
		pending = next
	}
	return slices.Concat(removes, ordered, creates, modifies), true
}

// consistent checks that changes take before to after on keys, by name and
// type.
func consistent[K comparable](keys []K, before, after snapshot[K], changes []change[K]) bool {
	state := make(map[K]bool, len(keys)) // name → is a directory
	for _, k := range keys {
		if b, ok := before[k]; ok {
			state[k] = b.Dir
		}
	}
	for _, c := range changes {
		switch c.op {
		case api.FileEvent_Create:
			state[c.key] = c.dir
		case api.FileEvent_Remove:
			if _, ok := state[c.key]; !ok {
				return false
			}
			delete(state, c.key)
		case api.FileEvent_Move:
			if _, ok := state[c.key]; !ok {
				return false
			}
			delete(state, c.key)
			state[c.dest] = c.dir
		case api.FileEvent_Modify:
			if _, ok := state[c.key]; !ok {
				return false
			}
		}
	}
	for _, k := range keys {
		a, hasA := after[k]
		dir, has := state[k]
		if hasA != has || (has && dir != a.Dir) {
			return false
		}
	}
	return true
}
