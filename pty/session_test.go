package pty

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestExitStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		script     string
		wantOutput string
		want       ExitStatus
	}{
		{"exit 0", "echo hello", "hello\r\n", ExitStatus{Code: 0}},
		{"exit 3", "echo failing; exit 3", "failing\r\n", ExitStatus{Code: 3}},
		{"killed", "echo dying; kill -KILL $$", "dying\r\n", ExitStatus{Code: -1, Signal: syscall.SIGKILL}},
		{"terminated", "kill -TERM $$", "", ExitStatus{Code: -1, Signal: syscall.SIGTERM}},
		{"no output", "true", "", ExitStatus{Code: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startShell(t, Options{}, tt.script)
			got := newReader(t, s.Attach()).toEnd()
			if string(got) != tt.wantOutput {
				t.Errorf("output %q, want %q", got, tt.wantOutput)
			}
			if status := wait(t, s); status != tt.want {
				t.Errorf("status %v, want %v", status, tt.want)
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		argv []string
	}{
		{"empty argv", nil},
		{"missing program", []string{"/nonexistent/program"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if s, err := Start(context.Background(), Options{Argv: tt.argv}); err == nil {
				_ = s.Close()
				t.Fatal("Start succeeded")
			}
		})
	}
}

func TestEnvironmentAndDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name   string
		opts   Options
		script string
		want   string
	}{
		{"default TERM", Options{}, "echo $TERM", DefaultTerm + "\r\n"},
		{"TERM kept", Options{Env: []string{"TERM=dumb"}}, "echo $TERM", "dumb\r\n"},
		{"env", Options{Env: []string{"GREETING=hi there"}}, `echo "$GREETING"`, "hi there\r\n"},
		{"dir", Options{Dir: dir}, "pwd", dir + "\r\n"},
		{"initial size", Options{Rows: 30, Cols: 90}, "stty size", "30 90\r\n"},
		{"default size", Options{}, "stty size", "24 80\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startShell(t, tt.opts, tt.script)
			if got := newReader(t, s.Attach()).toEnd(); string(got) != tt.want {
				t.Errorf("output %q, want %q", got, tt.want)
			}
		})
	}
}

func TestInputEcho(t *testing.T) {
	t.Parallel()
	s := startSession(t, Options{}, "cat")
	r := newReader(t, s.Attach())
	if err := s.Input(testContext(t), []byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	// The terminal echoes the line, then cat writes it back.
	if got := r.until("hello\r\nhello\r\n"); got != "hello\r\nhello\r\n" {
		t.Errorf("output %q", got)
	}
	if err := s.Input(testContext(t), []byte{4}); err != nil { // ^D: end of input
		t.Fatal(err)
	}
	if status := wait(t, s); status != (ExitStatus{}) {
		t.Errorf("status %v", status)
	}
}

func TestInputRespectsContext(t *testing.T) {
	t.Parallel()
	// sleep never reads its input, so the terminal's input buffer fills up.
	s := startSession(t, Options{}, "sleep", "1000")
	if err := s.SetPipeMode(true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(testContext(t), 100*time.Millisecond)
	defer cancel()
	err := s.Input(ctx, make([]byte, 4<<20))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Input into a full terminal: %v, want %v", err, context.DeadlineExceeded)
	}
	// Cancellation without a deadline interrupts the write too.
	ctx, cancel = context.WithCancel(testContext(t))
	written := make(chan error, 1)
	go func() { written <- s.Input(ctx, make([]byte, 4<<20)) }()
	cancel()
	if err := waitFor(t, written, "Input to return"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Input: %v, want %v", err, context.Canceled)
	}
	// A later Input is not disturbed by the earlier deadlines.
	if err := s.Input(testContext(t), nil); err != nil {
		t.Fatalf("empty Input: %v", err)
	}
}

func TestResize(t *testing.T) {
	t.Parallel()
	s := startShell(t, Options{}, "echo ready; read line; stty size")
	r := newReader(t, s.Attach())
	r.until("ready\r\n")
	if err := s.Resize(33, 101); err != nil {
		t.Fatal(err)
	}
	if err := s.Input(testContext(t), []byte("\r")); err != nil {
		t.Fatal(err)
	}
	if got := r.toEnd(); !bytes.HasSuffix(got, []byte("33 101\r\n")) {
		t.Errorf("output %q, want the new size", got)
	}
	if err := s.Resize(0, 80); err == nil {
		t.Error("Resize(0, 80) succeeded")
	}
	if err := s.Resize(10, 10); !errors.Is(err, ErrClosed) {
		t.Errorf("Resize after the end: %v, want %v", err, ErrClosed)
	}
}

// sttyFlags returns the settings `stty -a` printed in out.
func sttyFlags(out string) map[string]bool {
	flags := map[string]bool{}
	for _, field := range strings.FieldsFunc(out, func(r rune) bool {
		return r == ' ' || r == ';' || r == '\r' || r == '\n'
	}) {
		flags[field] = true
	}
	return flags
}

func TestTerminalModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup is what the child runs before it says it is ready.
		setup  string
		change func(*Session) error
		// input is typed after the change; the child echoes the line.
		input      string
		wantOutput string
		wantFlags  []string
	}{
		{
			name:       "pipe mode",
			change:     func(s *Session) error { return s.SetPipeMode(true) },
			input:      "abc\r",     // CR still reads as NL
			wantOutput: "got abc\n", // no echo, no CR added
			wantFlags:  []string{"-icanon", "-echo", "-opost", "icrnl", "isig", "min", "1"},
		},
		{
			name:       "sane after raw",
			setup:      "stty raw -echo -isig",
			change:     (*Session).Sane,
			input:      "abc\r",
			wantOutput: "abc\r\ngot abc\r\n", // echoed, then the child's line
			wantFlags:  []string{"icanon", "echo", "opost", "onlcr", "icrnl", "isig", "iexten"},
		},
		{
			name:       "pipe mode off",
			setup:      "stty raw -echo",
			change:     func(s *Session) error { return s.SetPipeMode(false) },
			input:      "abc\n",
			wantOutput: "abc\r\ngot abc\r\n",
			wantFlags:  []string{"icanon", "echo", "opost"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			script := tt.setup + "\necho ready; read line; echo \"got $line\"; stty -a; echo done"
			s := startShell(t, Options{}, script)
			r := newReader(t, s.Attach())
			prefix := r.until("ready")
			if err := tt.change(s); err != nil {
				t.Fatal(err)
			}
			if err := s.Input(testContext(t), []byte(tt.input)); err != nil {
				t.Fatal(err)
			}
			out := strings.TrimPrefix(string(r.toEnd()), prefix)
			out = strings.TrimLeft(out, "\r\n")
			if !strings.HasPrefix(out, tt.wantOutput) {
				t.Errorf("output %q, want it to start with %q", out, tt.wantOutput)
			}
			flags := sttyFlags(out)
			for _, flag := range tt.wantFlags {
				if !flags[flag] {
					t.Errorf("stty -a lacks %q:\n%s", flag, out)
				}
			}
		})
	}
}

func TestCloseStopsRunningProcess(t *testing.T) {
	t.Parallel()
	s := startSession(t, Options{KillGrace: time.Second}, "sleep", "1000")
	att := s.Attach()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if status := wait(t, s); !status.Signaled() {
		t.Errorf("status %v, want death by a signal", status)
	}
	waitFor(t, att.Done(), "the attachment to end")
	if _, err := att.Next(testContext(t)); !errors.Is(err, io.EOF) {
		t.Errorf("Next after Close: %v, want EOF", err)
	}
	if err := s.Input(testContext(t), []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Input after Close: %v, want %v", err, ErrClosed)
	}
	if err := s.Signal(syscall.SIGTERM); !errors.Is(err, ErrProcessDone) {
		t.Errorf("Signal after Close: %v, want %v", err, ErrProcessDone)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestContextEndsSession(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, Options{Argv: []string{"sleep", "1000"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cancel()
	waitFor(t, s.Done(), "the session to end with its context")
}

func TestSignal(t *testing.T) {
	t.Parallel()
	s := startShell(t, Options{}, `trap 'echo got USR1; exit 7' USR1; echo ready; while :; do sleep 0.01; done`)
	r := newReader(t, s.Attach())
	r.until("ready")
	if err := s.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	r.until("got USR1")
	if status := wait(t, s); status != (ExitStatus{Code: 7}) {
		t.Errorf("status %v, want exit status 7", status)
	}
}

func TestDrainTimeoutWithEscapedProcess(t *testing.T) {
	t.Parallel()
	// setsid leaves the group, so the process keeps the terminal open after
	// the leader exits: the session still ends after DrainTimeout.
	s := startShell(t, Options{DrainTimeout: 50 * time.Millisecond},
		`setsid sleep 1000 & echo "escaped $!"; sleep 0.05`)
	out := newReader(t, s.Attach()).toEnd()
	pids := parsePids(t, string(out), "escaped ")
	if len(pids) != 1 {
		t.Fatalf("output %q", out)
	}
	t.Cleanup(func() { waitGone(t, pids...) })
	t.Cleanup(func() { _ = syscall.Kill(pids[0], syscall.SIGKILL) })
	if status := wait(t, s); status != (ExitStatus{}) {
		t.Errorf("status %v", status)
	}
}
