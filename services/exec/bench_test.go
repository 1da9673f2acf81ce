package exec_test

// Streaming throughput of exec against the same command read from a pipe:
//
//	go test -run '^$' -bench . -benchtime 3x ./services/exec/
//
// CONMAN_BENCH_MB sets how much the command writes (default 200).

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/conmantest"
)

func benchBytes() int64 {
	mb := 200
	if v, err := strconv.Atoi(os.Getenv("CONMAN_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	return int64(mb) << 20
}

// benchArgs is the command both benchmarks run.
func benchArgs(n int64) []string {
	return []string{"head", "-c", strconv.FormatInt(n, 10), "/dev/zero"}
}

// BenchmarkPipe: the command's stdout read by this process from a pipe.
func BenchmarkPipe(b *testing.B) {
	n := benchBytes()
	b.SetBytes(n)
	buf := make([]byte, 64<<10)
	for b.Loop() {
		args := benchArgs(n)
		cmd := exec.Command(args[0], args[1:]...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		got, _ := io.CopyBuffer(io.Discard, struct{ io.Reader }{out}, buf)
		if err := cmd.Wait(); err != nil || got != n {
			b.Fatalf("read %d of %d: %v", got, n, err)
		}
	}
}

// BenchmarkExecStream: the same command on an exec channel, its output
// streamed to a websocket client until the reply.
func BenchmarkExecStream(b *testing.B) {
	n := benchBytes()
	d := conmantest.Start(b)
	c := d.Dial(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ch, err := c.Open(ctx, "exec", "", api.OpenChannel_CREATE)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(n)
	for b.Loop() {
		// The client queues what it receives: drain it as it comes.
		drained := make(chan struct{})
		drainCtx, stopDrain := context.WithCancel(ctx)
		go func() {
			defer close(drained)
			for {
				if _, err := ch.Recv(drainCtx); err != nil {
					return
				}
			}
		}()
		reply, err := ch.Request(ctx, &api.Command{Body: &api.Command_Exec{Exec: &api.Exec{Args: benchArgs(n)}}})
		if err != nil || reply.GetOk() == nil {
			b.Fatalf("exec: %v %v", reply, err)
		}
		stopDrain()
		<-drained
	}
}
