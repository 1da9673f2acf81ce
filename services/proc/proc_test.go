package proc_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/pty"
	"github.com/conman-dev/conman/services/proc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestIsSecret(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value string
		secret      bool
	}{
		{"CONMAN_LISTEN", "127.0.0.1:8283", true},
		{"conman_whatever", "x", true},
		{"GITHUB_TOKEN", "ghp_x", true},
		{"REPL_IDENTITY_TOKEN", "x", true},
		{"AWS_SECRET_ACCESS_KEY", "x", true},
		{"OPENAI_API_KEY", "x", true},
		{"DB_PASSWORD", "x", true},
		{"STRIPE_KEY", "x", true},
		{"ANYTHING", "v2.public.eyJzdWIiOiIxIn0.sig", true},
		{"ANYTHING", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", true},
		{"HOME", "/home/runner", false},
		{"PATH", "/usr/bin:/bin", false},
		{"KEYBOARD_LAYOUT", "us", false},
		{"SSH_AUTH_SOCK", "/tmp/agent", false},
		{"GREETING", "eyJust a word", false},
	}
	for _, tt := range tests {
		if got := proc.IsSecret(tt.name, tt.value); got != tt.secret {
			t.Errorf("IsSecret(%q, %q) = %v, want %v", tt.name, tt.value, got, tt.secret)
		}
	}
}

func TestEnviron(t *testing.T) {
	t.Setenv("CONMAN_PROCTEST", "hidden")
	t.Setenv("PROCTEST_TOKEN", "hidden")
	t.Setenv("PROCTEST_PLAIN", "shown")
	t.Setenv("TERM", "dumb")
	env := proc.Environ(map[string]string{"B": "2", "A": "1", "PROCTEST_PLAIN": "replaced"})
	if v, _ := proc.Getenv(env, "PROCTEST_PLAIN"); v != "replaced" {
		t.Errorf("PROCTEST_PLAIN=%q", v)
	}
	for _, name := range []string{"CONMAN_PROCTEST", "PROCTEST_TOKEN"} {
		if _, ok := proc.Getenv(env, name); ok {
			t.Errorf("%s was passed on", name)
		}
	}
	if n := len(env); env[n-3] != "A=1" || env[n-2] != "B=2" || env[n-1] != "PROCTEST_PLAIN=replaced" {
		t.Errorf("extra variables not last and sorted: %q", env[n-3:])
	}
	if v, _ := proc.Getenv(env, "TERM"); v != "dumb" {
		t.Errorf("TERM=%q in Environ", v)
	}
	if _, ok := proc.Getenv(proc.TerminalEnviron(nil), "TERM"); ok {
		t.Error("TerminalEnviron kept the daemon's TERM")
	}
}

func TestLookPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tool := filepath.Join(dir, "mytool")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notexec"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=relative:" + dir}
	if got, err := proc.LookPath("mytool", env); err != nil || got != tool {
		t.Errorf("LookPath(mytool) = %q, %v", got, err)
	}
	if got, err := proc.LookPath("./x/y", env); err != nil || got != "./x/y" {
		t.Errorf("a path with a slash: %q, %v", got, err)
	}
	for _, name := range []string{"notexec", "nope", ""} {
		_, err := proc.LookPath(name, env)
		if want := `exec: "` + name + `": executable file not found in $PATH`; err == nil || err.Error() != want || !errors.Is(err, exec.ErrNotFound) {
			t.Errorf("LookPath(%q): %v, want %q", name, err, want)
		}
	}
}

func TestTextDecoder(t *testing.T) {
	t.Parallel()
	text := "añ€😀 plain"
	// Every way of cutting the text in two gives it back whole.
	for cut := 0; cut <= len(text); cut++ {
		var d proc.TextDecoder
		got := d.Decode([]byte(text[:cut])) + d.Decode([]byte(text[cut:])) + d.Flush()
		if got != text {
			t.Fatalf("cut at %d: %q", cut, got)
		}
	}
	// Byte by byte too.
	var d proc.TextDecoder
	var got strings.Builder
	for i := 0; i < len(text); i++ {
		got.WriteString(d.Decode([]byte{text[i]}))
	}
	if got.String() != text {
		t.Fatalf("byte by byte: %q", got.String())
	}
	// Invalid bytes become U+FFFD; a cut-off character at the end too.
	d = proc.TextDecoder{}
	out := d.Decode([]byte("a\xffb\xe2\x82")) + d.Flush()
	if out != "a\uFFFDb\uFFFD" || !utf8.ValidString(out) {
		t.Fatalf("invalid input: %q", out)
	}
}

func TestSplitText(t *testing.T) {
	t.Parallel()
	s := strings.Repeat("a€", 100)
	for _, max := range []int{1, 2, 3, 4, 7, 64, 1000} {
		pieces := proc.SplitText(s, max)
		if strings.Join(pieces, "") != s {
			t.Fatalf("max %d: pieces do not join back", max)
		}
		for _, p := range pieces {
			if !utf8.ValidString(p) || (len(p) > max && utf8.RuneCountInString(p) > 1) {
				t.Fatalf("max %d: piece %q", max, p)
			}
		}
	}
}

// TestRegister: started groups are supervised until reaped; ExcludeSpawns
// sees them as owned; StopAll stops them newest first and reports what had
// to be killed.
func TestRegister(t *testing.T) {
	ctx := context.Background()
	// start runs script and returns once it has printed its first line.
	start := func(script string) *pty.Process {
		t.Helper()
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		cmd := exec.Command("sh", "-c", script)
		cmd.Stdout = w
		p, err := proc.StartProcess(ctx, cmd, 100*time.Millisecond)
		w.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		r.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := r.Read(make([]byte, 64)); err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		return p
	}
	polite := start("echo up; exec sleep 1000")
	stubborn := start(`trap "" TERM; echo up; while :; do sleep 0.05; done`)
	groups := proc.Supervised()
	if !slices.Equal(groups, []proc.Group{stubborn, polite}) {
		t.Fatalf("supervised %v, want the two, newest first", groups)
	}
	proc.ExcludeSpawns(func(owned func(int) bool) {
		if !owned(polite.Pid()) || !owned(stubborn.Pid()) || owned(os.Getpid()) {
			t.Error("ownership is wrong")
		}
	})
	if n := proc.SignalAll(syscall.SIGCONT); n != 2 {
		t.Errorf("SIGCONT reached %d groups", n)
	}
	// The stubborn one outlives a short stop: it is killed.
	stopCtx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	killed, left := proc.StopAll(stopCtx, 5*time.Second)
	if left != 0 || killed < 1 {
		t.Errorf("killed %d, left %d", killed, left)
	}
	if got := proc.Supervised(); len(got) != 0 {
		t.Errorf("still supervised: %v", got)
	}
	proc.ExcludeSpawns(func(owned func(int) bool) {
		if owned(polite.Pid()) {
			t.Error("a reaped leader is still owned")
		}
	})
	if st, _ := stubborn.Wait(ctx); st.Signal != syscall.SIGKILL {
		t.Errorf("the stubborn group ended with %v", st)
	}
}

func TestStartCommand(t *testing.T) {
	cmd := exec.Command("sh", "-c", "exit 4")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	wait, err := proc.StartCommand(cmd)
	if err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	proc.ExcludeSpawns(func(owned func(int) bool) {
		if !owned(pid) {
			t.Error("a started command is not owned")
		}
	})
	if err := wait(); err == nil || err.Error() != "exit status 4" {
		t.Fatalf("wait: %v", err)
	}
	if err := wait(); err == nil || err.Error() != "exit status 4" {
		t.Fatalf("second wait: %v", err)
	}
	proc.ExcludeSpawns(func(owned func(int) bool) {
		if owned(pid) {
			t.Error("a waited-for command is still owned")
		}
	})
	if _, err := proc.StartCommand(exec.Command("/no/such/program")); err == nil {
		t.Fatal("started a missing program")
	}
}
