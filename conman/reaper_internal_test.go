package conman

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/conman-dev/conman/services/proc"
)

func TestParseStat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    procStat
		wantErr bool
	}{
		{"42 (sleep) Z 1 40 38 0 -1 4194564 ...", procStat{'Z', 1, 40, 38}, false},
		{"7 (a) b) (c) S 3 7 7 34816 7", procStat{'S', 3, 7, 7}, false},
		{"9 (with space) R 1 0 0", procStat{'R', 1, 0, 0}, false},
		{"9 (truncated) R 1 2", procStat{}, true},
		{"no parenthesis", procStat{}, true},
		{"9 (x) RR 1 2 3", procStat{}, true},
		{"9 (x) S one 2 3", procStat{}, true},
	}
	for _, tt := range tests {
		got, err := parseStat(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseStat(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestReaperSparesOwnedChildren runs a reaper in the test process: the
// children that code here waits for keep their exit statuses, whether
// registered (proc.StartProcess) or started with plain os/exec, with or
// without a process group of their own; a zombie nobody waits for, in a
// session of its own as orphans are, is reaped. Not parallel: the reaper
// acts on every child of the test binary.
func TestReaperSparesOwnedChildren(t *testing.T) {
	r, err := StartReaper(slog.New(slog.DiscardHandler), false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	// afterPass waits until pid is a zombie and a whole reaper pass has
	// run since, so that the reaper had every chance to take it.
	afterPass := func(pid int) {
		t.Helper()
		gone := false
		waitPoll(t, "a zombie", func() bool {
			st, err := readStat(pid)
			gone = err != nil
			return gone || st.state == 'Z'
		})
		if gone {
			t.Fatalf("child %d was reaped before its owner waited for it", pid)
		}
		start := r.passes.Load()
		waitPoll(t, "a reaper pass", func() bool {
			syscall.Kill(os.Getpid(), syscall.SIGCHLD)
			return r.passes.Load() >= start+2
		})
	}
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		var status string
		switch i % 3 {
		case 0:
			p, err := proc.StartProcess(ctx, exec.Command("sh", "-c", "exit 3"), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := p.Wait(ctx)
			status = st.String()
		case 1, 2:
			cmd := exec.Command("sh", "-c", "exit 3")
			if i%3 == 2 {
				cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			afterPass(cmd.Process.Pid)
			status = fmt.Sprint(cmd.Wait())
		}
		if status != "exit status 3" {
			t.Fatalf("child %d (kind %d) ended with %q: its status was taken", i, i%3, status)
		}
	}

	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "exit 0"}, &syscall.ProcAttr{Sys: &syscall.SysProcAttr{Setsid: true}})
	if err != nil {
		t.Fatal(err)
	}
	waitPoll(t, "the abandoned zombie to be reaped", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
		return err != nil
	})
	if r.Reaped() < 1 {
		t.Fatalf("reaped %d", r.Reaped())
	}
}

// waitPoll polls cond, which looks at /proc (nothing there to wait on),
// until it holds or ten seconds pass.
func waitPoll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
