package snapshot

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchFiles is the size of the benchmark workspace.
const benchFiles = 10_000

// makeBenchWorkspace writes benchFiles files of 0.5–4 KiB into 10 × 10
// directories, like a mid-sized source tree.
func makeBenchWorkspace(b *testing.B) string {
	b.Helper()
	ws := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4096)
	for i := range benchFiles {
		dir := filepath.Join(ws, fmt.Sprintf("pkg%02d", i%10), fmt.Sprintf("sub%02d", (i/10)%10))
		if i < 100 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		n := 512 + rng.IntN(len(buf)-512)
		for j := range n {
			buf[j] = byte('a' + rng.IntN(26))
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file%04d.txt", i)), buf[:n], 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return ws
}

// BenchmarkSnapshot measures snapshots of a 10,000-file workspace: the
// first one (everything read and stored) and an incremental one after one
// file changed. The clock runs an hour ahead, so the freshly written
// workspace behaves like an old one (no file is too recent to trust).
func BenchmarkSnapshot(b *testing.B) {
	ws := makeBenchWorkspace(b)
	ctx := context.Background()
	for _, sync := range []bool{true, false} {
		name := "sync"
		if !sync {
			name = "nosync"
		}
		b.Run("first/"+name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				data := b.TempDir()
				s, err := Open(Options{Workspace: ws, DataDir: data, Now: later, NoSync: !sync, Logger: testLogger(b)})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				res, err := s.Snapshot(ctx)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if res.Files != benchFiles {
					b.Fatalf("snapshot has %d files", res.Files)
				}
				s.Close()
				os.RemoveAll(data)
				b.StartTimer()
			}
		})
		b.Run("incremental/"+name, func(b *testing.B) {
			s, err := Open(Options{Workspace: ws, DataDir: b.TempDir(), Now: later, NoSync: !sync, Logger: testLogger(b)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Snapshot(ctx); err != nil {
				b.Fatal(err)
			}
			changed := filepath.Join(ws, "pkg03", "sub07", "file0073.txt")
			i := 0
			var hashed, written int
			for b.Loop() {
				i++
				b.StopTimer()
				if err := os.WriteFile(changed, fmt.Appendf(nil, "edit %d at %d\n", i, time.Now().UnixNano()), 0o644); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				res, err := s.Snapshot(ctx)
				if err != nil {
					b.Fatal(err)
				}
				hashed += res.Hashed
				written += res.Written
			}
			b.ReportMetric(float64(hashed)/float64(i), "files-read/op")
			b.ReportMetric(float64(written)/float64(i), "objects/op")
		})
	}
}
