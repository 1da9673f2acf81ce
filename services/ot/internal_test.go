package ot

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/conman-dev/conman/ot"
	"github.com/conman-dev/conman/services"
)

// testService is a service on a fresh workspace, outside any daemon.
type testService struct {
	*Service
	ws, data string
	stopped  bool
}

func newTestService(t testing.TB, ws string, opts Options) *testService {
	t.Helper()
	if ws == "" {
		ws = t.TempDir()
	}
	data := filepath.Join(ws, ".conman")
	svc, err := New(services.Env{Workspace: ws, DataDir: data, Logger: slog.New(slog.DiscardHandler)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testService{Service: svc, ws: ws, data: data}
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop stops the service, once.
func (ts *testService) stop(t testing.TB) {
	t.Helper()
	if ts.stopped {
		return
	}
	ts.stopped = true
	if err := ts.Stop(context.Background()); err != nil {
		t.Error(err)
	}
}

func (ts *testService) put(t testing.TB, name, content string) {
	t.Helper()
	p := filepath.Join(ts.ws, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (ts *testService) read(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ts.ws, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// submit appends op on the latest version and waits until it is durable.
func submit(t testing.TB, d *document, op ot.Op) uint32 {
	t.Helper()
	done := make(chan error, 1)
	d.mu.Lock()
	v, err := d.submitLocked(submission{base: d.latest, op: op, done: func(err error) { done <- err }})
	d.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return v
}

// flush waits until the file holds the latest version.
func flush(t testing.TB, d *document) {
	t.Helper()
	done := make(chan error, 1)
	d.mu.Lock()
	d.flushLocked(func(err error) { done <- err })
	d.mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// state returns the document's latest version and text.
func state(d *document) (uint32, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.latest, d.text.String()
}

// randomOp is a random edit of text.
func randomOp(rng *rand.Rand, text string) ot.Op {
	n := utf8.RuneCountInString(text)
	pos := rng.IntN(n + 1)
	op := ot.Op{ot.Skip(pos)}
	if pos < n && rng.IntN(3) == 0 {
		op = append(op, ot.Delete(1+rng.IntN(min(4, n-pos))))
	}
	op = append(op, ot.Insert([]string{"x", "é", "💃", "\n", "ab"}[rng.IntN(5)]))
	return op
}

// TestTornTail: a log cut or garbled anywhere in its last records loads
// as the whole records before the damage, which it keeps byte for byte.
func TestTornTail(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	ts := newTestService(t, ws, Options{})
	ts.put(t, "t.txt", "torn\n")
	d, err := ts.acquire("t.txt", true)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	texts := []string{"", "torn\n"}
	for range 40 {
		_, text := state(d)
		op := randomOp(rng, text)
		submit(t, d, op)
		_, text = state(d)
		texts = append(texts, text)
	}
	d.mu.Lock()
	versions := append([]versionInfo(nil), d.versions...)
	logPath := d.logPath
	d.mu.Unlock()
	ts.release(d)
	ts.stop(t)
	full, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	last := len(versions) - 1

	for _, tc := range []struct {
		name string
		log  func() []byte
		keep int // whole versions that survive
	}{
		{"intact", func() []byte { return full }, last},
		{"garbage appended", func() []byte { return append(bytes.Clone(full), 0x13, 0, 0, 0, 1, 2, 3) }, last},
		{"zeros appended", func() []byte { return append(bytes.Clone(full), make([]byte, 100)...) }, last},
		{"cut in the last header", func() []byte { return full[:versions[last].offset+3] }, last - 1},
		{"cut in the last body", func() []byte { return full[:versions[last].offset+recordHeaderSize+2] }, last - 1},
		{"last body flipped", func() []byte {
			b := bytes.Clone(full)
			b[versions[last].offset+recordHeaderSize+3] ^= 0x40
			return b
		}, last - 1},
		{"cut mid-log", func() []byte { return full[:versions[20].offset+5] }, 19},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := t.TempDir()
			ts := newTestService(t, ws, Options{})
			// The file holds the text of the last whole version, as the
			// daemon would have written it.
			ts.put(t, "t.txt", texts[tc.keep])
			damaged := tc.log()
			if err := os.WriteFile(filepath.Join(ts.dir, logName("t.txt")), damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			d, err := ts.acquire("t.txt", false)
			if err != nil {
				t.Fatal(err)
			}
			v, text := state(d)
			if int(v) != tc.keep || text != texts[tc.keep] {
				t.Fatalf("loaded version %d %q, want %d %q", v, text, tc.keep, texts[tc.keep])
			}
			// The surviving records are untouched, and new ones follow.
			next := submit(t, d, ot.Op{ot.Insert("more")})
			if int(next) != tc.keep+1 {
				t.Fatalf("next version %d, want %d", next, tc.keep+1)
			}
			ts.release(d)
			ts.stop(t)
			now, err := os.ReadFile(filepath.Join(ts.dir, logName("t.txt")))
			if err != nil {
				t.Fatal(err)
			}
			valid := int64(len(full)) // the records before the damage
			if tc.keep < last {
				valid = versions[tc.keep+1].offset
			}
			if int64(len(now)) <= valid || !bytes.Equal(now[:valid], full[:valid]) {
				t.Fatalf("the log's valid part changed")
			}
		})
	}
}

// TestReconcile: at load, a file behind the history because the daemon
// died before writing it is brought up to date without a new version; a
// file changed or deleted behind the daemon's back becomes the next
// version.
func TestReconcile(t *testing.T) {
	t.Parallel()
	// Build a history: versions 1…15, the file written at version 10.
	build := func(t *testing.T) (*testService, []string) {
		ts := newTestService(t, "", Options{Debounce: time.Hour})
		ts.put(t, "r.txt", "r\n")
		d, err := ts.acquire("r.txt", true)
		if err != nil {
			t.Fatal(err)
		}
		texts := []string{"", "r\n"}
		for i := 2; i <= 15; i++ {
			submit(t, d, ot.Op{ot.Insert(fmt.Sprint(i % 10))})
			_, text := state(d)
			texts = append(texts, text)
			if i == 10 {
				flush(t, d)
			}
		}
		if got := ts.read(t, "r.txt"); got != texts[10] {
			t.Fatalf("flushed %q, want %q", got, texts[10])
		}
		// A crash now: no more writes, no more disk marks.
		d.mu.Lock()
		d.failed = errClosed
		d.mu.Unlock()
		ts.release(d)
		ts.stop(t)
		return ts, texts
	}
	reload := func(t *testing.T, ws string) (*testService, *document) {
		ts := newTestService(t, ws, Options{})
		d, err := ts.acquire("r.txt", false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ts.release(d) })
		return ts, d
	}

	t.Run("stale", func(t *testing.T) {
		ts, texts := build(t)
		_, d := reload(t, ts.ws)
		if v, text := state(d); v != 15 || text != texts[15] {
			t.Fatalf("loaded %d %q", v, text)
		}
		flush(t, d)
		if got := ts.read(t, "r.txt"); got != texts[15] {
			t.Fatalf("file %q, want %q", got, texts[15])
		}
	})
	t.Run("written but not marked", func(t *testing.T) {
		// The daemon wrote version 12 and died before noting it.
		ts, texts := build(t)
		ts.put(t, "r.txt", texts[12])
		_, d := reload(t, ts.ws)
		if v, _ := state(d); v != 15 {
			t.Fatalf("loaded version %d, want 15", v)
		}
	})
	t.Run("changed", func(t *testing.T) {
		// An older text than the one last written is someone's change.
		ts, texts := build(t)
		ts.put(t, "r.txt", texts[8])
		_, d := reload(t, ts.ws)
		if v, text := state(d); v != 16 || text != texts[8] {
			t.Fatalf("loaded %d %q, want 16 %q", v, text, texts[8])
		}
	})
	t.Run("deleted", func(t *testing.T) {
		ts, _ := build(t)
		if err := os.Remove(filepath.Join(ts.ws, "r.txt")); err != nil {
			t.Fatal(err)
		}
		_, d := reload(t, ts.ws)
		if v, text := state(d); v != 16 || text != "" {
			t.Fatalf("loaded %d %q, want 16 and empty", v, text)
		}
	})
	t.Run("recovered at start", func(t *testing.T) {
		// The recovery pass writes the file without anyone opening it.
		ts, texts := build(t)
		svc := newTestService(t, ts.ws, Options{})
		<-svc.recovered
		if got := svc.read(t, "r.txt"); got != texts[15] {
			t.Fatalf("after recovery the file is %q, want %q", got, texts[15])
		}
	})
}

// TestIdleUnload: a document nobody holds is unloaded after IdleTimeout
// and loads again, unchanged, when needed.
func TestIdleUnload(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, "", Options{IdleTimeout: 20 * time.Millisecond})
	ts.put(t, "i.txt", "idle")
	d, err := ts.acquire("i.txt", true)
	if err != nil {
		t.Fatal(err)
	}
	submit(t, d, ot.Op{ot.Insert("not ")})
	ts.release(d)
	select {
	case <-d.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("not unloaded")
	}
	if got := ts.read(t, "i.txt"); got != "not idle" {
		t.Fatalf("file %q", got)
	}
	d2, err := ts.acquire("i.txt", false)
	if err != nil {
		t.Fatal(err)
	}
	defer ts.release(d2)
	if d2 == d {
		t.Fatal("the unloaded document came back")
	}
	if v, text := state(d2); v != 2 || text != "not idle" {
		t.Fatalf("reloaded %d %q", v, text)
	}
}

// TestDiff: the diff turns old into new, and touches only what changed.
func TestDiff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		old, new string
		want     ot.Op
	}{
		{"", "", ot.Op{}},
		{"same", "same", ot.Op{}},
		{"", "new", ot.Op{ot.Insert("new")}},
		{"old", "", ot.Op{ot.Delete(3)}},
		{"a💃c", "a🤖c", ot.Op{ot.Skip(1), ot.Delete(1), ot.Insert("🤖")}},
		{"one\ntwo\nthree\n", "one\n2\nthree\n", ot.Op{ot.Skip(4), ot.Delete(3), ot.Insert("2")}},
		{"a\nb\nc\nd\ne\n", "A\nb\nc\nd\nE\n", ot.Op{ot.Delete(1), ot.Insert("A"), ot.Skip(7), ot.Delete(1), ot.Insert("E")}},
		{"x\ny\n", "y\nx\n", ot.Op{ot.Delete(2), ot.Skip(2), ot.Insert("x\n")}},
		{"x\ny\nz\n", "y\nz\nx\n", ot.Op{ot.Delete(2), ot.Skip(4), ot.Insert("x\n")}},
	} {
		got := diff(tc.old, tc.new)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("diff(%q, %q) = %v, want %v", tc.old, tc.new, got, tc.want)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"a", "b", "\n", "é", "💃", "ab\n", "\n\n"}
	gen := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	for i := range 2000 {
		old := gen(rng.IntN(60))
		new := old
		for range rng.IntN(6) {
			new, _ = ot.Apply(new, randomOp(rng, new))
		}
		if i%5 == 0 {
			new = gen(rng.IntN(60))
		}
		op := diff(old, new)
		if got, err := ot.Apply(old, op); err != nil || got != new {
			t.Fatalf("diff(%q, %q) = %v gives %q, %v", old, new, op, got, err)
		}
		if norm, _ := ot.Normalize(op); fmt.Sprint(norm) != fmt.Sprint(op) {
			t.Fatalf("diff(%q, %q) = %v is not normalised", old, new, op)
		}
	}
	// Large, scattered edits fall back to one replacement in bounded time.
	var a, b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&a, "line %d\n", i)
		fmt.Fprintf(&b, "line %d\n", i*7919%5000)
	}
	if got, _ := ot.Apply(a.String(), diff(a.String(), b.String())); got != b.String() {
		t.Fatal("large diff does not apply")
	}
}
