package ot

import (
	"math/rand/v2"
	"strings"
)

// alphabet mixes ASCII, two- and three-byte code points, and astral ones
// (four bytes in UTF-8, two units in UTF-16).
var alphabet = []rune("ab xy\né中ß💃😀𝒳🤖")

// randText returns up to limit random code points from alphabet.
func randText(r *rand.Rand, limit int) string {
	var b strings.Builder
	for n := r.IntN(limit + 1); n > 0; n-- {
		b.WriteRune(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

// randOp returns a random valid op on a document of length docLen. It is
// often not normalised: it may have empty components, adjacent components of
// one kind, and a trailing skip; inserts and deletes often meet at one
// position.
func randOp(r *rand.Rand, docLen int) Op {
	var op Op
	left := docLen
	for steps := r.IntN(7); steps > 0; steps-- {
		switch r.IntN(10) {
		case 0, 1, 2, 3:
			n := r.IntN(min(left, 4) + 1)
			op = append(op, Skip(n))
			left -= n
		case 4, 5, 6:
			n := r.IntN(min(left, 3) + 1)
			op = append(op, Delete(n))
			left -= n
		case 7, 8:
			op = append(op, Insert(randText(r, 3)))
		case 9:
			op = append(op, Component{}) // empty
		}
	}
	if left > 0 && r.IntN(4) == 0 {
		op = append(op, Skip(r.IntN(left)+1))
	}
	return op
}

// randPair returns two ops on a document of length docLen that often tie:
// sometimes the same op twice, sometimes the same skips and deletes with
// other inserts.
func randPair(r *rand.Rand, docLen int) (a, b Op) {
	a = randOp(r, docLen)
	switch r.IntN(8) {
	case 0:
		return a, append(Op(nil), a...)
	case 1, 2:
		b = append(Op(nil), a...)
		for i := range b {
			if b[i].Insert != "" || r.IntN(3) == 0 && b[i].isEmpty() {
				b[i] = Insert(randText(r, 2))
			}
		}
		return a, b
	}
	return a, randOp(r, docLen)
}

// randDoc returns a random document, usually short so that ops collide.
func randDoc(r *rand.Rand) string {
	if r.IntN(10) == 0 {
		return randText(r, 40)
	}
	return randText(r, 8)
}

// mustApply is Apply for ops known to be valid.
func mustApply(doc string, op Op) string {
	s, err := Apply(doc, op)
	if err != nil {
		panic(err)
	}
	return s
}

// randSide returns Left or Right at random.
func randSide(r *rand.Rand) Side {
	return Side(r.IntN(2))
}

// newRand returns a deterministic generator for seed.
func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}
