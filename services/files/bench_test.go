package files_test

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkRoundTrip4KiB writes and reads back a 4 KiB file: over the
// protocol (an atomic, durable write: two fsyncs), and, as baselines, with
// os.WriteFile and os.ReadFile directly (not durable) and with the same
// durable sequence done directly. Run it with -benchtime 1000x for 1,000
// round trips.
func BenchmarkRoundTrip4KiB(b *testing.B) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 256)
	report := func(b *testing.B, n int) {
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "roundtrips/s")
	}
	b.Run("protocol", func(b *testing.B) {
		s := start(b)
		n := 0
		for b.Loop() {
			name := fmt.Sprintf("rt/f%d", n%64)
			s.ok(write(name, string(content)))
			if got := s.do(read(name)).GetFile().GetContent(); len(got) != len(content) {
				b.Fatalf("read %d bytes", len(got))
			}
			n++
		}
		report(b, n)
	})
	b.Run("raw", func(b *testing.B) {
		dir := b.TempDir()
		n := 0
		for b.Loop() {
			name := filepath.Join(dir, fmt.Sprintf("f%d", n%64))
			if err := os.WriteFile(name, content, 0o644); err != nil {
				b.Fatal(err)
			}
			if got, err := os.ReadFile(name); err != nil || len(got) != len(content) {
				b.Fatal(err)
			}
			n++
		}
		report(b, n)
	})
	b.Run("raw-durable", func(b *testing.B) {
		dir := b.TempDir()
		d, err := os.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		n := 0
		for b.Loop() {
			name := filepath.Join(dir, fmt.Sprintf("f%d", n%64))
			tmp := name + ".tmp"
			f, err := os.Create(tmp)
			if err != nil {
				b.Fatal(err)
			}
			f.Write(content)
			f.Sync()
			f.Close()
			if err := os.Rename(tmp, name); err != nil {
				b.Fatal(err)
			}
			d.Sync()
			if got, err := os.ReadFile(name); err != nil || len(got) != len(content) {
				b.Fatal(err)
			}
			n++
		}
		report(b, n)
	})
}

// BenchmarkUpload100MiB uploads 100 MiB in 4 MiB chunks and reads it back
// from disk (a read over the protocol is limited to one frame), next to
// writing and syncing the same bytes directly.
func BenchmarkUpload100MiB(b *testing.B) {
	const size = 100 << 20
	const chunk = 4 << 20
	content := make([]byte, size)
	for i := range content {
		content[i] = byte(i * 7 / 3)
	}
	sum := crc32.ChecksumIEEE(content)
	mbps := func(d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }
	b.Run("protocol", func(b *testing.B) {
		s := start(b)
		var upload, readback time.Duration
		n := 0
		for b.Loop() {
			begin := time.Now()
			id := s.startTransfer("big.bin", size)
			for off := 0; off < size; off += chunk {
				s.ok(transferChunk(id, content[off:off+chunk]))
			}
			s.ok(transferComplete(id, sum))
			upload += time.Since(begin)
			begin = time.Now()
			got, err := os.ReadFile(filepath.Join(s.d.Workspace, "big.bin"))
			if err != nil || crc32.ChecksumIEEE(got) != sum {
				b.Fatalf("read back: %v", err)
			}
			readback += time.Since(begin)
			n++
		}
		b.ReportMetric(mbps(upload/time.Duration(n)), "upload-MiB/s")
		b.ReportMetric(mbps(readback/time.Duration(n)), "readback-MiB/s")
	})
	b.Run("raw", func(b *testing.B) {
		dir := b.TempDir()
		var write, readback time.Duration
		n := 0
		for b.Loop() {
			begin := time.Now()
			f, err := os.Create(filepath.Join(dir, "big.bin"))
			if err != nil {
				b.Fatal(err)
			}
			for off := 0; off < size; off += chunk {
				f.Write(content[off : off+chunk])
			}
			f.Sync()
			f.Close()
			write += time.Since(begin)
			begin = time.Now()
			got, err := os.ReadFile(filepath.Join(dir, "big.bin"))
			if err != nil || crc32.ChecksumIEEE(got) != sum {
				b.Fatalf("read back: %v", err)
			}
			readback += time.Since(begin)
			n++
		}
		b.ReportMetric(mbps(write/time.Duration(n)), "write-MiB/s")
		b.ReportMetric(mbps(readback/time.Duration(n)), "readback-MiB/s")
	})
}
