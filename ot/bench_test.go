package ot

import (
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"
)

// benchText returns about size bytes of random text from alphabet.
func benchText(r *rand.Rand, size int) string {
	var b strings.Builder
	for b.Len() < size {
		b.WriteString(randText(r, 64))
	}
	return b.String()
}

// smallOp returns an op that inserts a few code points or deletes a few
// at a random position in the first half of a document of length docLen,
// so that many of them in a row stay valid as the length drifts.
func smallOp(r *rand.Rand, docLen int) Op {
	pos := r.IntN(docLen / 2)
	if r.IntN(2) == 0 {
		return Op{Skip(pos), Insert(randText(r, 4) + "x")}
	}
	return Op{Skip(pos), Delete(1 + r.IntN(4))}
}

// BenchmarkTransformApply measures what a server does per incoming op on a
// 100 KB document: apply a stored op, transform a concurrent small op
// against it and apply the result.
func BenchmarkTransformApply(b *testing.B) {
	r := newRand(1)
	text := benchText(r, 100_000)
	n := runeCount(text)
	pairs := make([][2]Op, 4096)
	for i := range pairs {
		pairs[i] = [2]Op{smallOp(r, n), smallOp(r, n)}
	}
	for _, crc := range []bool{false, true} {
		name := "100KB"
		if crc {
			name += "+CRC"
		}
		b.Run(name, func(b *testing.B) {
			d, _ := NewDoc(text)
			i := 0
			for b.Loop() {
				stored, incoming := pairs[i%len(pairs)][0], pairs[i%len(pairs)][1]
				i++
				if err := d.Apply(stored); err != nil {
					b.Fatal(err)
				}
				op, err := Transform(incoming, stored, Right)
				if err != nil {
					b.Fatal(err)
				}
				if err := d.Apply(op); err != nil {
					b.Fatal(err)
				}
				if crc {
					d.CRC32()
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
	b.Run("100KB-string", func(b *testing.B) {
		doc := text
		i := 0
		for b.Loop() {
			stored, incoming := pairs[i%len(pairs)][0], pairs[i%len(pairs)][1]
			i++
			op, _ := Transform(incoming, stored, Right)
			doc, _ = Apply(mustApply(doc, stored), op)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
}

// BenchmarkDoc1MB measures a single small op (an insert or a delete of a
// few code points) on a 1 MB document, against a plain string and a full
// CRC for comparison.
func BenchmarkDoc1MB(b *testing.B) {
	r := newRand(2)
	text := benchText(r, 1<<20)
	n := runeCount(text)
	ops := make([]Op, 4096)
	for i := range ops {
		ops[i] = smallOp(r, n)
	}
	b.Run("Apply", func(b *testing.B) {
		d, _ := NewDoc(text)
		i := 0
		for b.Loop() {
			if err := d.Apply(ops[i%len(ops)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Apply+CRC32", func(b *testing.B) {
		d, _ := NewDoc(text)
		i := 0
		for b.Loop() {
			if err := d.Apply(ops[i%len(ops)]); err != nil {
				b.Fatal(err)
			}
			d.CRC32()
			i++
		}
	})
	b.Run("string-Apply", func(b *testing.B) {
		doc := text
		i := 0
		for b.Loop() {
			doc = mustApply(doc, ops[i%len(ops)])
			i++
		}
	})
	b.Run("full-CRC32", func(b *testing.B) {
		buf := []byte(text)
		for b.Loop() {
			crc32.ChecksumIEEE(buf)
		}
	})
	b.Run("NewDoc", func(b *testing.B) {
		for b.Loop() {
			NewDoc(text)
		}
	})
}
