package pty

import (
	"context"
	"errors"
	"flag"
	"io"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	creackpty "github.com/creack/pty"
	"golang.org/x/sys/unix"
)

var throughputBytes = flag.Int64("pty.throughput-bytes", 200_000_000,
	"how many bytes a child writes in each throughput benchmark run")

// BenchmarkThroughput compares reading `head -c N /dev/zero` through an
// attachment with reading the same kind of terminal directly: the ratio of
// their MB/s is what the session costs.
func BenchmarkThroughput(b *testing.B) {
	argv := []string{"head", "-c", strconv.FormatInt(*throughputBytes, 10), "/dev/zero"}
	b.Run("kernel", func(b *testing.B) {
		b.SetBytes(*throughputBytes)
		for b.Loop() {
			if got := readTerminalDirectly(b, argv); got != *throughputBytes {
				b.Fatalf("read %d bytes, want %d", got, *throughputBytes)
			}
		}
	})
	b.Run("attachment", func(b *testing.B) {
		b.SetBytes(*throughputBytes)
		for b.Loop() {
			if got := readThroughAttachment(b, argv, false); got != *throughputBytes {
				b.Fatalf("read %d bytes, want %d", got, *throughputBytes)
			}
		}
	})
	b.Run("attachment with a stalled one", func(b *testing.B) {
		b.SetBytes(*throughputBytes)
		for b.Loop() {
			if got := readThroughAttachment(b, argv, true); got != *throughputBytes {
				b.Fatalf("read %d bytes, want %d", got, *throughputBytes)
			}
		}
	})
}

// BenchmarkThroughputRatio runs the three readings of BenchmarkThroughput
// in turn, in a rotating order, so that they all see the same load on the
// machine, and reports the throughput of an attachment as a fraction of the
// kernel's (goal: at least 0.85) and that of an attachment beside a stalled
// one as a fraction of an attachment alone (goal: at least 0.9).
func BenchmarkThroughputRatio(b *testing.B) {
	argv := []string{"head", "-c", strconv.FormatInt(*throughputBytes, 10), "/dev/zero"}
	readings := []func(){
		func() { readTerminalDirectly(b, argv) },
		func() { readThroughAttachment(b, argv, false) },
		func() { readThroughAttachment(b, argv, true) },
	}
	var took [3]time.Duration
	b.SetBytes(int64(len(readings)) * *throughputBytes)
	for round := 0; b.Loop(); round++ {
		for i := range readings {
			which := (round + i) % len(readings)
			started := time.Now()
			readings[which]()
			took[which] += time.Since(started)
		}
	}
	kernel, alone, besideStalled := took[0].Seconds(), took[1].Seconds(), took[2].Seconds()
	b.ReportMetric(kernel/alone, "attachment/kernel")
	b.ReportMetric(alone/besideStalled, "beside-stalled/alone")
}

// readTerminalDirectly runs argv in a terminal and reads it with a large
// buffer until the child is gone, returning how many bytes came.
func readTerminalDirectly(b *testing.B, argv []string) int64 {
	cmd := exec.Command(argv[0], argv[1:]...)
	controller, err := creackpty.Start(cmd)
	if err != nil {
		b.Fatal(err)
	}
	defer controller.Close()
	buf := make([]byte, 1<<20)
	var total int64
	for {
		n, err := controller.Read(buf)
		total += int64(n)
		if err != nil {
			break // EIO once the child has closed the terminal
		}
	}
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
	return total
}

// readThroughAttachment runs argv in a Session and reads one attachment to
// the end, with a second attachment that never reads when stalled is set.
func readThroughAttachment(b *testing.B, argv []string, stalled bool) int64 {
	s, err := Start(context.Background(), Options{Argv: argv})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	att := s.Attach()
	if stalled {
		s.Attach()
	}
	ctx := context.Background()
	var total int64
	for {
		chunk, err := att.Next(ctx)
		total += int64(len(chunk))
		if errors.Is(err, io.EOF) {
			return total
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeystrokeEcho measures a keystroke's round trip: one byte
// written to a terminal running cat in pipe mode, until cat's echo comes
// out of an attachment. With flood set, another terminal meanwhile pours
// out `cat /dev/zero` to an attachment read as fast as it can.
func BenchmarkKeystrokeEcho(b *testing.B) {
	b.Run("kernel", benchmarkEchoDirectly)
	b.Run("idle", func(b *testing.B) { benchmarkEcho(b, false) })
	b.Run("flood on another terminal", func(b *testing.B) { benchmarkEcho(b, true) })
}

// benchmarkEchoDirectly is the same round trip on a terminal read and
// written directly, for reference.
func benchmarkEchoDirectly(b *testing.B) {
	cmd := exec.Command("cat")
	controller, err := creackpty.Start(cmd)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = controller.Close()
	}()
	termios, err := unix.IoctlGetTermios(int(controller.Fd()), unix.TCGETS)
	if err != nil {
		b.Fatal(err)
	}
	makePipe(termios)
	if err := unix.IoctlSetTermios(int(controller.Fd()), unix.TCSETS, termios); err != nil {
		b.Fatal(err)
	}
	key, echo := []byte{'k'}, make([]byte, 16)
	for b.Loop() {
		if _, err := controller.Write(key); err != nil {
			b.Fatal(err)
		}
		if n, err := controller.Read(echo); err != nil || string(echo[:n]) != "k" {
			b.Fatalf("echo %q, %v", echo[:n], err)
		}
	}
}

func benchmarkEcho(b *testing.B, flood bool) {
	ctx := context.Background()
	if flood {
		flooding := startSession(b, Options{}, "cat", "/dev/zero")
		var drained sync.WaitGroup
		defer drained.Wait()
		defer flooding.Close()
		drainer := flooding.Attach()
		drained.Go(func() {
			for {
				if _, err := drainer.Next(ctx); err != nil {
					return
				}
			}
		})
	}
	s := startSession(b, Options{}, "cat")
	if err := s.SetPipeMode(true); err != nil {
		b.Fatal(err)
	}
	att := s.Attach()
	key := []byte{'k'}
	for b.Loop() {
		if err := s.Input(ctx, key); err != nil {
			b.Fatal(err)
		}
		chunk, err := att.Next(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if string(chunk) != "k" {
			b.Fatalf("echo %q", chunk)
		}
	}
}
