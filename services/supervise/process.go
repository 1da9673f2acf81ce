package supervise

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/conman-dev/conman/pty"
	"github.com/conman-dev/conman/services/proc"
)

// watchedProcess is a service's process as registered with proc. The daemon
// forwards SIGTERM and SIGINT to every registered group (through Signal)
// when it is about to stop, before any service is stopped: seeing one of
// them tells the supervisor to restart nothing more. Its own code signals
// the embedded process directly.
type watchedProcess struct {
	*pty.Process
	stopping func()
}

func (p *watchedProcess) Signal(sig syscall.Signal) error {
	if sig == syscall.SIGTERM || sig == syscall.SIGINT {
		p.stopping()
	}
	return p.Process.Signal(sig)
}

// startProcess starts cmd in its own process group through proc, so that
// the reaper never takes its exit status and signals reach it.
func startProcess(ctx context.Context, cmd *exec.Cmd, grace time.Duration, stopping func()) (*watchedProcess, error) {
	return proc.Start(func() (*watchedProcess, error) {
		p, err := pty.StartProcess(ctx, cmd, grace)
		if err != nil {
			return nil, err
		}
		return &watchedProcess{Process: p, stopping: stopping}, nil
	})
}

// processStart returns the start time of process pid, in clock ticks since
// boot (field 22 of /proc/<pid>/stat), or 0 when it is gone. With the pid
// it names one process: pids are reused, start times are not.
func processStart(pid int) uint64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(data)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0
	}
	fields := strings.Fields(s[end+1:])
	// fields[0] is field 3 (state); the start time is field 22.
	if len(fields) < 20 || fields[0] == "Z" {
		return 0
	}
	ticks, _ := strconv.ParseUint(fields[19], 10, 64)
	return ticks
}

// killLeftover kills the process group a previous daemon started as
// (pid, start) and left running when it died. It reports whether it found
// that group's leader still running.
func killLeftover(pid int, start uint64) bool {
	if pid <= 1 || start == 0 || processStart(pid) != start {
		return false
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	return true
}
