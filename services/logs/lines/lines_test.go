package lines_test

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/services/logs/lines"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// collector keeps the lines a reader emits.
type collector struct {
	mu    sync.Mutex
	lines []lines.Line
	more  chan struct{} // gets a value after each line
}

func newCollector() *collector { return &collector{more: make(chan struct{}, 1024)} }

func (c *collector) emit(l lines.Line) {
	c.mu.Lock()
	c.lines = append(c.lines, l)
	c.mu.Unlock()
	c.more <- struct{}{}
}

func (c *collector) texts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, l := range c.lines {
		out = append(out, l.Text)
	}
	return out
}

// run starts a reader of a new pipe and returns the pipe's write end and
// a function that closes it and waits for the reader.
func run(t *testing.T, opts lines.ReaderOptions) (*os.File, *collector, *lines.Reader, func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	rd := lines.NewReader(r, api.LogLine_STDERR, c.emit, opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		rd.Run()
	}()
	finish := func() {
		w.Close()
		<-done
		r.Close()
	}
	t.Cleanup(func() {
		w.Close()
		<-done
		r.Close()
	})
	return w, c, rd, finish
}

func TestReaderSplits(t *testing.T) {
	t.Parallel()
	w, c, _, finish := run(t, lines.ReaderOptions{MaxLineBytes: 8, FlushAfter: time.Hour})
	for _, chunk := range []string{"one\ntw", "o\r\n", "\n", "0123456789abcdef01", "\nh\xffi\n", "é€\n", "tail"} {
		if _, err := w.WriteString(chunk); err != nil {
			t.Fatal(err)
		}
	}
	finish()
	want := []string{"one", "two", "", "01234567", "89abcdef", "01", "h\uFFFDi", "é€", "tail"}
	if got := c.texts(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines %q, want %q", got, want)
	}
	for _, l := range c.lines {
		if l.Stream != api.LogLine_STDERR || l.Time.IsZero() {
			t.Errorf("line %+v", l)
		}
	}
}

// TestReaderLongRune: a cut never splits a character.
func TestReaderLongRune(t *testing.T) {
	t.Parallel()
	w, c, _, finish := run(t, lines.ReaderOptions{MaxLineBytes: 4, FlushAfter: time.Hour})
	w.WriteString("ab€€\n") // 2 + 3 + 3 bytes
	finish()
	if got := c.texts(); strings.Join(got, "|") != "ab|€|€" {
		t.Fatalf("lines %q", got)
	}
}

// TestReaderFlushesPrompt: an unfinished line is shown once the pipe is
// silent, while the writer keeps it open.
func TestReaderFlushesPrompt(t *testing.T) {
	t.Parallel()
	w, c, _, _ := run(t, lines.ReaderOptions{FlushAfter: 20 * time.Millisecond})
	w.WriteString("Continue? [y/N] ")
	select {
	case <-c.more:
	case <-time.After(10 * time.Second):
		t.Fatal("the prompt was not flushed")
	}
	if got := c.texts(); len(got) != 1 || got[0] != "Continue? [y/N] " {
		t.Fatalf("lines %q", got)
	}
}

// TestReaderDrain: once the process has exited, a pipe that a leftover
// process keeps open is read until it has been silent for the drain
// timeout.
func TestReaderDrain(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	c := newCollector()
	rd := lines.NewReader(r, api.LogLine_STDOUT, c.emit, lines.ReaderOptions{DrainTimeout: 50 * time.Millisecond})
	done := make(chan struct{})
	go func() {
		defer close(done)
		rd.Run()
	}()
	w.WriteString("last words\n")
	<-c.more
	rd.ProcessExited()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not stop after the drain timeout")
	}
	if got := c.texts(); len(got) != 1 || got[0] != "last words" {
		t.Fatalf("lines %q", got)
	}
}

func TestRing(t *testing.T) {
	t.Parallel()
	r := lines.NewRing(3, 10)
	for i, text := range []string{"a", "b", "c", "d"} {
		if seq := r.Append(lines.Line{Text: text}); seq != uint64(i) {
			t.Fatalf("append %q: seq %d", text, seq)
		}
	}
	// Bounded by lines: a left.
	got, skipped, closed, _ := r.Read(0, 10)
	if skipped != 1 || closed || len(got) != 3 || got[0].Text != "b" || got[0].Seq != 1 || got[2].Seq != 3 {
		t.Fatalf("read: %v skipped %d closed %v", got, skipped, closed)
	}
	// Bounded by bytes: a 10-byte line leaves room for itself alone.
	r.Append(lines.Line{Text: "1234567890"})
	if oldest, next := r.Bounds(); oldest != 4 || next != 5 {
		t.Fatalf("bounds %d %d", oldest, next)
	}
	got, _, _, changed := r.Read(5, 10)
	if len(got) != 0 {
		t.Fatalf("read past the end: %v", got)
	}
	select {
	case <-changed:
		t.Fatal("changed before a change")
	default:
	}
	r.Append(lines.Line{Text: "x"})
	<-changed
	// x pushed the long line out: a reader still at it skips it.
	got, skipped, _, _ = r.Read(4, 1)
	if len(got) != 1 || got[0].Text != "x" || skipped != 1 {
		t.Fatalf("read with max 1: %v, skipped %d", got, skipped)
	}
	r.Close()
	if _, _, closed, _ := r.Read(6, 10); !closed {
		t.Fatal("a closed ring read to its end should say closed")
	}
	if _, _, closed, _ := r.Read(5, 10); closed {
		t.Fatal("a closed ring with lines left should not say closed yet")
	}
}

// TestRingGrowth: the ring keeps order across its growth and wrap.
func TestRingGrowth(t *testing.T) {
	t.Parallel()
	r := lines.NewRing(100, 1<<20)
	for i := range 1000 {
		r.Append(lines.Line{Text: strings.Repeat("x", i%7)})
		if i%37 == 0 {
			oldest, next := r.Bounds()
			got, _, _, _ := r.Read(oldest, 1000)
			for j, l := range got {
				if l.Seq != oldest+uint64(j) || len(l.Text) != int(l.Seq%7) {
					t.Fatalf("after %d appends, line %d is %+v", i+1, j, l)
				}
			}
			if uint64(len(got)) != next-oldest {
				t.Fatalf("after %d appends: %d lines, bounds %d..%d", i+1, len(got), oldest, next)
			}
		}
	}
}
