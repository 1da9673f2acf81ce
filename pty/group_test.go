package pty

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestKillGroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script string
		kill   bool // call Kill once the script is ready; else it exits by itself
		grace  time.Duration
		// wantSignal is the signal the leader should die of; 0 means any
		// signal, and -1 a normal exit.
		wantSignal syscall.Signal
	}{
		{
			name:   "children",
			script: `sleep 1000 & echo "child $!"; sleep 1000 & echo "child $!"; echo ready; wait`,
			kill:   true,
			grace:  time.Minute, // the hangup is enough; the test would time out on the grace
		},
		{
			name:       "everyone ignores TERM and HUP",
			script:     `trap "" TERM HUP; sleep 1000 & echo "child $!"; sleep 1000 & echo "child $!"; echo ready; wait`,
			kill:       true,
			grace:      100 * time.Millisecond,
			wantSignal: syscall.SIGKILL,
		},
		{
			name: "grandchild ignores TERM and HUP",
			script: `sh -c 'trap "" TERM HUP; echo "child $$"; exec sleep 1000' &
				sleep 1000 & echo "child $!"; echo ready; wait`,
			kill:  true,
			grace: time.Minute, // the leader dies at once; the rest is killed with it
		},
		{
			name:       "leader exits leaving children",
			script:     `sleep 1000 & echo "child $!"; sleep 1000 & echo "child $!"; echo ready; read line`,
			wantSignal: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startShell(t, Options{KillGrace: tt.grace}, tt.script)
			out := newReader(t, s.Attach()).untilTrue(func(got string) bool {
				return strings.Contains(got, "ready") && strings.Count(got, "child ") == 2
			}, "two children and ready")
			pids := append(parsePids(t, out, "child "), s.Pid())
			killed := time.Now()
			if tt.kill {
				s.Kill()
			} else if err := s.Input(testContext(t), []byte("\n")); err != nil {
				t.Fatal(err)
			}
			status := wait(t, s)
			switch {
			case tt.wantSignal == -1 && status != (ExitStatus{}):
				t.Errorf("status %v, want a normal exit", status)
			case tt.wantSignal == 0 && !status.Signaled():
				t.Errorf("status %v, want death by a signal", status)
			case tt.wantSignal > 0 && status.Signal != tt.wantSignal:
				t.Errorf("status %v, want %v", status, tt.wantSignal)
			}
			if tt.wantSignal == syscall.SIGKILL && time.Since(killed) < tt.grace {
				t.Errorf("killed after %v, before the grace of %v", time.Since(killed), tt.grace)
			}
			waitGone(t, pids...)
		})
	}
}

// startProcess starts sh -c script as a Process with its output on a pipe.
func startProcess(t *testing.T, ctx context.Context, grace time.Duration, script string) (*Process, *bufio.Reader) {
	t.Helper()
	stdout, stdoutWriter, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stdout.Close() })
	cmd := exec.Command("sh", "-c", script)
	cmd.Stdout = stdoutWriter
	p, err := StartProcess(ctx, cmd, grace)
	_ = stdoutWriter.Close() // the process has its copy
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, bufio.NewReader(stdout)
}

// readPids reads "child N" lines up to a "ready" line.
func readPids(t *testing.T, r *bufio.Reader) []int {
	t.Helper()
	var pids []int
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading pids: %v", err)
		}
		line = strings.TrimSpace(line)
		if line == "ready" {
			return pids
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(line, "child "))
		if err != nil {
			t.Fatalf("bad line %q", line)
		}
		pids = append(pids, pid)
	}
}

func TestProcess(t *testing.T) {
	t.Parallel()
	const children = `sleep 1000 & echo "child $!"; sleep 1000 & echo "child $!"; echo ready; wait`
	tests := []struct {
		name   string
		script string
		stop   func(*Process, context.CancelFunc)
		grace  time.Duration
		want   func(ExitStatus) bool
	}{
		{
			name:   "exit code",
			script: "echo ready; exit 5",
			want:   func(s ExitStatus) bool { return s == ExitStatus{Code: 5} },
		},
		{
			name:   "Kill",
			script: children,
			stop:   func(p *Process, _ context.CancelFunc) { p.Kill() },
			grace:  time.Minute,
			want:   func(s ExitStatus) bool { return s.Signal == syscall.SIGTERM },
		},
		{
			name:   "context ends",
			script: children,
			stop:   func(_ *Process, cancel context.CancelFunc) { cancel() },
			grace:  time.Minute,
			want:   func(s ExitStatus) bool { return s.Signal == syscall.SIGTERM },
		},
		{
			name:   "TERM ignored",
			script: `trap "" TERM; ` + children,
			stop:   func(p *Process, _ context.CancelFunc) { p.Kill() },
			grace:  50 * time.Millisecond,
			want:   func(s ExitStatus) bool { return s.Signal == syscall.SIGKILL },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p, stdout := startProcess(t, ctx, tt.grace, tt.script)
			pids := append(readPids(t, stdout), p.Pid())
			if tt.stop != nil {
				tt.stop(p, cancel)
			}
			status, err := p.Wait(testContext(t))
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if !tt.want(status) {
				t.Errorf("status %v", status)
			}
			waitGone(t, pids...)
			if err := p.Signal(syscall.SIGTERM); !errors.Is(err, ErrProcessDone) {
				t.Errorf("Signal after the end: %v, want %v", err, ErrProcessDone)
			}
		})
	}
}
