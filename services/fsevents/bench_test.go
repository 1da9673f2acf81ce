package fsevents_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// reportLatency reports the median and 99th percentile of samples.
func reportLatency(b *testing.B, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	at := func(q float64) float64 {
		return float64(samples[min(len(samples)-1, int(q*float64(len(samples))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkEventLatency measures the time from a file's creation to its
// event reaching a client (run it with -benchtime 200x for a stable p99).
// The goal is a p99 within 50 ms; the coalescing window (25 ms) is most of
// it. When inotify-tools is installed, inotifywait's latency on the same
// machine is the baseline.
func BenchmarkEventLatency(b *testing.B) {
	b.Run("fsevents", func(b *testing.B) {
		e := newEnv(b)
		e.mkdirs("lat")
		w := e.watch("lat")
		var samples []time.Duration
		i := 0
		for b.Loop() {
			name := fmt.Sprintf("lat/f-%d", i)
			i++
			start := time.Now()
			e.put(name, "")
			w.expect("Create " + name)
			samples = append(samples, time.Since(start))
		}
		reportLatency(b, samples)
	})
	b.Run("inotifywait", func(b *testing.B) {
		if _, err := exec.LookPath("inotifywait"); err != nil {
			b.Skip("inotify-tools is not installed")
		}
		dir := b.TempDir()
		cmd := exec.Command("inotifywait", "-m", "-e", "create", "--format", "%f", dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() {
			cmd.Process.Kill()
			cmd.Wait()
		}()
		ready := bufio.NewScanner(stderr)
		for ready.Scan() && !strings.Contains(ready.Text(), "Watches established") {
		}
		lines := bufio.NewScanner(stdout)
		var samples []time.Duration
		i := 0
		for b.Loop() {
			name := fmt.Sprintf("f-%d", i)
			i++
			start := time.Now()
			if err := os.WriteFile(dir+"/"+name, nil, 0o644); err != nil {
				b.Fatal(err)
			}
			if !lines.Scan() || lines.Text() != name {
				b.Fatalf("inotifywait said %q, want %q", lines.Text(), name)
			}
			samples = append(samples, time.Since(start))
		}
		reportLatency(b, samples)
	})
}
