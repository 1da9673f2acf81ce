package shell_test

// Benchmarks of the shell's output path. Run them one at a time, e.g.
//
//	go test -run '^$' -bench . -benchtime 1x ./services/shell/
//	go test -run '^$' -bench EchoLatency -benchtime 300x ./services/shell/
//
// CONMAN_BENCH_MB sets the size of the file the throughput benchmarks cat
// (default 200).

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	creackpty "github.com/creack/pty"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
)

var (
	benchFileOnce sync.Once
	benchFilePath string // removed by TestMain
	benchFileErr  error
)

// removeBenchFile removes what benchFile made.
func removeBenchFile() {
	if benchFilePath != "" {
		os.RemoveAll(filepath.Dir(benchFilePath))
	}
}

// benchFile returns a file of CONMAN_BENCH_MB megabytes of 80-column text
// lines, made once per test binary.
func benchFile(b *testing.B) (string, int64) {
	b.Helper()
	mb := 200
	if v, err := strconv.Atoi(os.Getenv("CONMAN_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	benchFileOnce.Do(func() {
		dir, err := os.MkdirTemp("", "conman-bench-")
		if err != nil {
			benchFileErr = err
			return
		}
		benchFilePath = filepath.Join(dir, "cat-me.txt")
		line := []byte(strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz", 3)[:79] + "\n")
		chunk := bytes.Repeat(line, (1<<20)/len(line))
		f, err := os.Create(benchFilePath)
		if err != nil {
			benchFileErr = err
			return
		}
		defer f.Close()
		for written := 0; written < mb<<20; written += len(chunk) {
			if _, err := f.Write(chunk); err != nil {
				benchFileErr = err
				return
			}
		}
	})
	if benchFileErr != nil {
		b.Fatal(benchFileErr)
	}
	info, err := os.Stat(benchFilePath)
	if err != nil {
		b.Fatal(err)
	}
	return benchFilePath, info.Size()
}

// BenchmarkPTYRaw is the kernel's rate: a Go program reading a PTY in
// which cat prints the file.
func BenchmarkPTYRaw(b *testing.B) {
	path, size := benchFile(b)
	b.SetBytes(size)
	buf := make([]byte, 64<<10)
	for b.Loop() {
		cmd := exec.Command("cat", path)
		f, err := creackpty.Start(cmd)
		if err != nil {
			b.Fatal(err)
		}
		var got int64
		for {
			n, err := f.Read(buf)
			got += int64(n)
			if err != nil {
				break // EIO once cat has exited
			}
		}
		cmd.Wait()
		f.Close()
		if got < size {
			b.Fatalf("read %d of %d bytes", got, size)
		}
	}
}

// catThroughShell types `cat path` into a shell channel of c and waits
// until the output's end marker has arrived.
func catThroughShell(b *testing.B, c *client.Client, name, path string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ch, err := c.Open(ctx, "shell", name, api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		b.Fatal(err)
	}
	defer ch.Close(ctx, api.CloseChannel_CLOSE)
	var window []byte
	waitFor := func(marker string) {
		for !bytes.Contains(window, []byte(marker)) {
			m, err := ch.Recv(ctx)
			if err != nil {
				b.Fatalf("waiting for %q: %v", marker, err)
			}
			window = append(window, m.GetOutput()...)
			if len(window) > 256 {
				window = slices.Clone(window[len(window)-128:])
			}
		}
	}
	ch.Send(&api.Command{Body: &api.Command_Input{Input: "echo RE\"\"ADY\r"}})
	waitFor("READY\r\n")
	window = nil
	b.StartTimer()
	ch.Send(&api.Command{Body: &api.Command_Input{Input: "cat " + path + "; echo DO\"\"NE\r"}})
	waitFor("DONE\r\n")
	b.StopTimer()
}

// BenchmarkShellCat is the same cat in a shell channel, delivered to a
// websocket client.
func BenchmarkShellCat(b *testing.B) {
	path, size := benchFile(b)
	d := conmantest.Start(b)
	c := d.Dial(b)
	b.SetBytes(size)
	b.ResetTimer()
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		catThroughShell(b, c, "bench-"+strconv.Itoa(i), path)
	}
}

// BenchmarkShellCatWithStalled is BenchmarkShellCat with a second session
// attached to the shell that never reads: it is detached, and costs the
// reading one little.
func BenchmarkShellCatWithStalled(b *testing.B) {
	path, size := benchFile(b)
	d := conmantest.Start(b, func(c *conman.Config) { c.WriteWait = 10 * time.Minute })
	c := d.Dial(b)
	b.SetBytes(size)
	b.ResetTimer()
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		name := "bench-stalled-" + strconv.Itoa(i)
		stalled := dialRaw(b, d, true)
		stalled.openShell(name)
		catThroughShell(b, c, name, path)
		stalled.ws.Close()
	}
}

// BenchmarkEchoLatency measures keystroke echo round trips at a shell
// prompt: a character typed, its echo received; then a backspace and its
// echo. "idle" has nothing else running; "flood" has another session
// flooding its own shell with output meanwhile. It reports the median and
// the 99th percentile.
func BenchmarkEchoLatency(b *testing.B) {
	for _, flood := range []bool{false, true} {
		name := "idle"
		if flood {
			name = "flood"
		}
		b.Run(name, func(b *testing.B) {
			d := conmantest.Start(b)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			if flood {
				stop := startFlood(b, ctx, d.Dial(b))
				defer stop()
			}
			c := d.Dial(b)
			ch, err := c.Open(ctx, "shell", "typing", api.OpenChannel_ATTACH_OR_CREATE)
			if err != nil {
				b.Fatal(err)
			}
			var out []byte
			waitFor := func(want []byte) {
				for !bytes.Contains(out, want) {
					m, err := ch.Recv(ctx)
					if err != nil {
						b.Fatal(err)
					}
					out = append(out, m.GetOutput()...)
				}
				out = out[:0]
			}
			ch.Send(&api.Command{Body: &api.Command_Input{Input: "echo RE\"\"ADY\r"}})
			waitFor([]byte("READY\r\n"))
			samples := make([]time.Duration, 0, 2*b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, key := range []struct{ in, echo string }{{"x", "x"}, {"\x7f", "\b"}} {
					start := time.Now()
					ch.Send(&api.Command{Body: &api.Command_Input{Input: key.in}})
					waitFor([]byte(key.echo))
					samples = append(samples, time.Since(start))
				}
			}
			b.StopTimer()
			slices.Sort(samples)
			b.ReportMetric(float64(samples[len(samples)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(samples[len(samples)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// startFlood has c's own shell print without end, read as fast as c can;
// stop interrupts it and waits for the reader.
func startFlood(b *testing.B, ctx context.Context, c *client.Client) (stop func()) {
	b.Helper()
	ch, err := c.Open(ctx, "shell", "flood", api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		b.Fatal(err)
	}
	ch.Send(&api.Command{Body: &api.Command_Input{Input: "yes 'flooding the terminal with output'\r"}})
	ctx, cancel := context.WithCancel(ctx)
	var received int64
	done := make(chan struct{})
	flowing := make(chan struct{}) // closed after the first megabyte
	go func() {
		defer close(done)
		for {
			m, err := ch.Recv(ctx)
			if err != nil {
				return
			}
			before := received
			received += int64(len(m.GetOutput()))
			if before < 1<<20 && received >= 1<<20 {
				close(flowing)
			}
		}
	}()
	select {
	case <-flowing:
	case <-ctx.Done():
		b.Fatal("the flood did not start")
	}
	return func() {
		ch.Send(&api.Command{Body: &api.Command_Input{Input: "\x03"}})
		cancel()
		<-done
		b.Logf("the flooding session received %.1f MB", float64(received)/1e6)
	}
}
