package pty

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every wait for an event in the tests.
const testTimeout = 10 * time.Second

// testContext returns a context that ends after testTimeout or with the test.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// waitFor fails the test if ch is not closed (or sent on) within testTimeout.
func waitFor[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(testTimeout)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// startSession starts argv with opts and closes the session when the test
// ends.
func startSession(t testing.TB, opts Options, argv ...string) *Session {
	t.Helper()
	opts.Argv = argv
	s, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("Start(%q): %v", argv, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// startShell runs script with sh -c.
func startShell(t testing.TB, opts Options, script string) *Session {
	t.Helper()
	return startSession(t, opts, "sh", "-c", script)
}

// reader accumulates what an attachment returns.
type reader struct {
	t   testing.TB
	att *Attachment
	got bytes.Buffer
}

func newReader(t testing.TB, att *Attachment) *reader {
	return &reader{t: t, att: att}
}

// until reads until the output received so far contains want, and returns
// everything received so far.
func (r *reader) until(want string) string {
	r.t.Helper()
	return r.untilTrue(func(got string) bool { return strings.Contains(got, want) }, strconv.Quote(want))
}

// untilTrue reads until done says the output received so far is
// complete, and returns it.
func (r *reader) untilTrue(done func(got string) bool, what string) string {
	r.t.Helper()
	ctx := testContext(r.t)
	for !done(r.got.String()) {
		chunk, err := r.att.Next(ctx)
		if err != nil {
			r.t.Fatalf("waiting for %s: %v; got so far %q", what, err, r.got.String())
		}
		r.got.Write(chunk)
	}
	return r.got.String()
}

// toEnd reads until io.EOF and returns everything received.
func (r *reader) toEnd() []byte {
	r.t.Helper()
	ctx := testContext(r.t)
	for {
		chunk, err := r.att.Next(ctx)
		if errors.Is(err, io.EOF) {
			return r.got.Bytes()
		}
		if err != nil {
			r.t.Fatalf("reading to the end: %v after %d bytes", err, r.got.Len())
		}
		r.got.Write(chunk)
	}
}

// wait waits for the session to be done and returns its exit status.
func wait(t testing.TB, s *Session) ExitStatus {
	t.Helper()
	status, err := s.Wait(testContext(t))
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return status
}

// processRuns reports whether pid is a process that has not died. A zombie
// has died: here it is an orphan waiting for whoever reaps orphans.
func processRuns(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	rest := stat[bytes.LastIndexByte(stat, ')')+1:]
	fields := strings.Fields(string(rest))
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

// waitGone polls until none of pids runs, failing after testTimeout.
func waitGone(t testing.TB, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for _, pid := range pids {
		for processRuns(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d still runs", pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// parsePids returns the numbers on the lines of out that start with prefix.
func parsePids(t testing.TB, out, prefix string) []int {
	t.Helper()
	var pids []int
	for line := range strings.Lines(out) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
			pid, err := strconv.Atoi(rest)
			if err != nil {
				t.Fatalf("bad pid line %q", line)
			}
			pids = append(pids, pid)
		}
	}
	return pids
}
