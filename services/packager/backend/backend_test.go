package backend

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestCheckName(t *testing.T) {
	t.Parallel()
	good := []string{"is-number", "@types/node", "github.com/google/uuid", "requests", "libc6:amd64", "g++", "a.b_c~d"}
	for _, name := range good {
		if err := CheckName(name); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", name, err)
		}
	}
	bad := []string{
		"", "../x", "a/../b", "./x", "/etc/passwd", "..",
		"-x", "--registry=http://evil", "--",
		"a b", "a\tb", "a\nb", " x",
		"a;b", "$(id)", "`id`", "a|b", "a&b", "a>b", "a<b", "x*", "x?", "'x'", `"x"`, `a\b`, "a=b", "a#b",
		"\x00", "é", strings.Repeat("a", MaxNameLen+1),
	}
	for _, name := range bad {
		err := CheckName(name)
		if err == nil {
			t.Errorf("CheckName(%q) = nil, want an error", name)
			continue
		}
		if KindOf(err) != KindInvalid || !strings.Contains(err.Error(), "invalid package name") {
			t.Errorf("CheckName(%q) = %v (kind %d), want an invalid package name", name, err, KindOf(err))
		}
	}
}

func TestCheckSpec(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"", "^1.2.3", ">=2,<3", "~=1.4", "v1.6.0", "latest", "1.x", "!=1.5", "1.0.0-beta.1+build"} {
		if err := CheckSpec("p", spec); err != nil {
			t.Errorf("CheckSpec(%q) = %v, want nil", spec, err)
		}
	}
	for _, spec := range []string{"-1", "--force", "1 2", "1;rm", "$(x)", "`x`", "1\n", "a'b"} {
		if err := CheckSpec("p", spec); err == nil || !strings.Contains(err.Error(), "invalid version spec") {
			t.Errorf("CheckSpec(%q) = %v, want invalid version spec", spec, err)
		}
	}
}

func TestCheckQuery(t *testing.T) {
	t.Parallel()
	if err := CheckQuery("left pad"); err != nil {
		t.Errorf("CheckQuery: %v", err)
	}
	for _, q := range []string{"", "   ", "a\x00b", strings.Repeat("q", MaxQueryLen+1)} {
		if err := CheckQuery(q); KindOf(err) != KindInvalid {
			t.Errorf("CheckQuery(%q) = %v, want invalid", q, err)
		}
	}
}

// recorder collects what an Exec streams.
type recorder struct {
	mu     sync.Mutex
	chunks []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.chunks = append(r.chunks, s)
	r.mu.Unlock()
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.chunks...)
}

func TestChunkerLinesAndPartials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		w := &chunker{emit: rec.add, tailMax: 1 << 10, flushAfter: FlushAfter}
		w.Write([]byte("partial"))
		if got := rec.get(); len(got) != 0 {
			t.Fatalf("a partial line was sent at once: %q", got)
		}
		time.Sleep(FlushAfter - time.Millisecond)
		synctest.Wait()
		if got := rec.get(); len(got) != 0 {
			t.Fatalf("a partial line was sent before %v: %q", FlushAfter, got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := rec.get(); len(got) != 1 || got[0] != "partial" {
			t.Fatalf("after %v: %q, want [partial]", FlushAfter, got)
		}
		w.Write([]byte(" line\nnext line\nand a"))
		if got := rec.get(); len(got) != 2 || got[1] != " line\nnext line\n" {
			t.Fatalf("complete lines: %q", got)
		}
		// A rune split across writes is never split across chunks.
		w.Write([]byte("\xe2\x82"))
		time.Sleep(FlushAfter)
		synctest.Wait()
		w.Write([]byte("\xac!\n"))
		w.Write([]byte("tail"))
		w.Close()
		w.Write([]byte("after close"))
		time.Sleep(time.Second)
		got := strings.Join(rec.get(), "")
		if want := "partial line\nnext line\nand a€!\ntail"; got != want {
			t.Errorf("stream = %q, want %q", got, want)
		}
		for _, c := range rec.get() {
			if !utf8.ValidString(c) {
				t.Errorf("chunk %q is not valid UTF-8", c)
			}
		}
	})
}

func TestChunkerTail(t *testing.T) {
	t.Parallel()
	w := &chunker{tailMax: 8}
	w.Write([]byte("0123456789"))
	w.Write([]byte("ab"))
	if got := w.Tail(); got != "456789ab" {
		t.Errorf("Tail = %q, want 456789ab", got)
	}
}

func TestExecStreamsAndFails(t *testing.T) {
	t.Parallel()
	var rec recorder
	e := &Exec{Output: rec.add}
	err := e.Run(context.Background(), Cmd{Args: []string{"sh", "-c", "echo one; echo two >&2; echo three; exit 3"}, Dir: t.TempDir()})
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Run = %v, want an *ExitError", err)
	}
	if ee.Command != "sh" || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("error = %q (command %q)", err, ee.Command)
	}
	got := rec.get()
	if len(got) == 0 || got[0] != "--> sh -c \"echo one; echo two >&2; echo three; exit 3\"\n" {
		t.Fatalf("first chunk = %q, want the --> line", got)
	}
	if out := strings.Join(got[1:], ""); out != "one\ntwo\nthree\n" {
		t.Errorf("output = %q, want stdout and stderr in order", out)
	}
	if ee.Output != "one\ntwo\nthree\n" {
		t.Errorf("ExitError.Output = %q", ee.Output)
	}
	failed := Failed(err, nil)
	if KindOf(failed) != KindFailed || failed.Error() != "sh: exit status 3: three" {
		t.Errorf("Failed = %q", failed)
	}
}

func TestExecMissingTool(t *testing.T) {
	t.Parallel()
	err := (&Exec{}).Run(context.Background(), Cmd{Args: []string{"conman-no-such-tool", "x"}})
	if err == nil {
		t.Fatal("Run of a missing tool succeeded")
	}
	if got := Failed(err, nil).Error(); !strings.Contains(got, "conman-no-such-tool is not installed") {
		t.Errorf("Failed = %q", got)
	}
}

// TestExecKillsProcessGroup: canceling the context kills the tool and
// whatever it started.
func TestExecKillsProcessGroup(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pids := make(chan int, 1)
	e := &Exec{Output: func(text string) {
		if n, err := strconv.Atoi(strings.TrimSpace(text)); err == nil {
			pids <- n
		}
	}}
	done := make(chan error, 1)
	go func() {
		done <- e.Run(ctx, Cmd{Args: []string{"sh", "-c", "sleep 60 & echo $!; wait"}})
	}()
	var child int
	select {
	case child = <-pids:
	case <-time.After(20 * time.Second):
		t.Fatal("the tool never printed its child's pid")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(child) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d outlived its tool", child)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func TestOutputCaptures(t *testing.T) {
	t.Parallel()
	out, err := Output(context.Background(), Cmd{Args: []string{"sh", "-c", "printf 'a\\nb'"}})
	if err != nil || out != "a\nb" {
		t.Errorf("Output = %q, %v", out, err)
	}
}

func TestFetchUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	client := NewHTTPClient()
	defer client.CloseIdleConnections()
	start := time.Now()
	_, _, err = Fetch(context.Background(), client, "the test registry", "http://"+addr+"/x", nil)
	if KindOf(err) != KindUnreachable || err.Error() != "the test registry is unreachable" {
		t.Errorf("Fetch = %v, want the test registry is unreachable", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Fetch took %v", took)
	}
}

func TestFetchFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "doc"), []byte("hello"), 0o644)
	client := NewHTTPClient()
	defer client.CloseIdleConnections()
	body, status, err := Fetch(context.Background(), client, "r", "file://"+filepath.Join(dir, "doc"), nil)
	if err != nil || status != 200 || string(body) != "hello" {
		t.Errorf("Fetch = %q, %d, %v", body, status, err)
	}
	_, status, err = Fetch(context.Background(), client, "r", "file://"+filepath.Join(dir, "missing"), nil)
	if err != nil || status != 404 {
		t.Errorf("Fetch of a missing file = %d, %v, want 404", status, err)
	}
}

func TestLineFileKeepsComments(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "list.txt")
	os.WriteFile(path, []byte("# header\r\nalpha  # pinned later\n\n# keep\nbeta\nalpha\n"), 0o600)
	key := func(line string) string {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			return ""
		}
		return strings.Fields(line)[0]
	}
	f, err := ReadLineFile(path, key)
	if err != nil {
		t.Fatal(err)
	}
	f.Set("alpha", "alpha2")
	f.Set("gamma", "gamma")
	f.Remove("beta")
	if !f.Has("gamma") || f.Has("beta") {
		t.Error("Has disagrees with the edits")
	}
	if err := WriteFile(path, f.Bytes()); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := "# header\nalpha2  # pinned later\n\n# keep\ngamma\n"
	if string(got) != want {
		t.Errorf("file = %q, want %q", got, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600 kept", fi.Mode().Perm())
	}
}

func TestEnviron(t *testing.T) {
	t.Parallel()
	got := Environ([]string{"A=1", "B=2", "C=3"}, "B=x", "D=4")
	want := []string{"A=1", "C=3", "B=x", "D=4"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Environ = %v, want %v", got, want)
	}
}

func TestCmdString(t *testing.T) {
	t.Parallel()
	c := Cmd{Args: []string{"npm", "install", "--", "a b", "it's", ""}}
	if got, want := c.String(), `npm install -- "a b" "it's" ""`; got != want {
		t.Errorf("String = %s, want %s", got, want)
	}
}
