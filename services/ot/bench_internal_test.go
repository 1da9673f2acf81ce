package ot

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/conman-dev/conman/ot"
)

// memDocument is a loaded document without a log or goroutines, for
// measuring the work every op costs in memory.
func memDocument(tb testing.TB, svc *Service, text string) *document {
	tb.Helper()
	d := svc.newDocument("bench.txt")
	var err error
	if d.text, err = ot.NewDoc(text); err != nil {
		tb.Fatal(err)
	}
	if d.pub, err = ot.NewDoc(text); err != nil {
		tb.Fatal(err)
	}
	d.versions = []versionInfo{{offset: -1, crc: d.text.CRC32(), runes: d.text.Len()}}
	d.recentFirst = 1
	return d
}

// BenchmarkApply100KB: the in-memory cost of one op on a 100 KB document:
// transform against the ops committed since its base (lag of them),
// apply, CRC, encode the log record, then apply to the published copy,
// move cursors and (to no session) broadcast, as the committer does.
func BenchmarkApply100KB(b *testing.B) {
	var sb strings.Builder
	rng := rand.New(rand.NewPCG(1, 1))
	for sb.Len() < 100<<10 {
		fmt.Fprintf(&sb, "line %d: %s\n", rng.IntN(1e6), strings.Repeat("text é💃 ", 1+rng.IntN(6)))
	}
	text := sb.String()
	for _, lag := range []int{0, 10, 50} {
		b.Run(fmt.Sprintf("lag=%d", lag), func(b *testing.B) {
			ts := newTestService(b, "", Options{})
			d := memDocument(b, ts.Service, text)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				d.mu.Lock()
				base := d.latest - uint32(min(lag, int(d.latest)))
				n := d.versions[base].runes
				pos := rng.IntN(n + 1)
				op := ot.Op{ot.Skip(pos)}
				if pos < n && rng.IntN(3) == 0 {
					op = append(op, ot.Delete(1))
				} else {
					op = append(op, ot.Insert("x"))
				}
				if _, err := d.submitLocked(submission{base: base, op: op}); err != nil {
					b.Fatal(err)
				}
				batch := d.batch
				d.buf, d.batch = d.buf[:0], nil
				d.publishLocked(batch)
				d.mu.Unlock()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}
