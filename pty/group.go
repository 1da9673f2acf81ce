package pty

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultKillGrace is how long a stopped process group has between SIGTERM
// and SIGKILL when the options leave it zero.
const DefaultKillGrace = 2 * time.Second

// ErrProcessDone is returned when signalling a process that has already
// been reaped.
var ErrProcessDone = errors.New("pty: process already finished")

// ExitStatus says how a process ended.
type ExitStatus struct {
	// Code is the exit code, or -1 when a signal killed the process.
	Code int
	// Signal is the signal that killed the process, or 0 when it exited.
	Signal syscall.Signal
}

// Signaled reports whether a signal killed the process.
func (e ExitStatus) Signaled() bool { return e.Signal != 0 }

// String describes the status the way a shell would.
func (e ExitStatus) String() string {
	if e.Signaled() {
		return "signal: " + e.Signal.String()
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

func exitStatusOf(state *os.ProcessState) ExitStatus {
	if state == nil {
		return ExitStatus{Code: -1}
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ExitStatus{Code: -1, Signal: ws.Signal()}
	}
	return ExitStatus{Code: state.ExitCode()}
}

// processGroup supervises a started process that leads its own process
// group (its pid is the group id).
type processGroup struct {
	cmd         *exec.Cmd
	pid         int
	grace       time.Duration
	stopSignals []syscall.Signal // sent to the group first when stopping

	killOnce      sync.Once
	killRequested chan struct{} // closed by requestKill

	// mu guards the following. Once the leader is being reaped its pid,
	// and so the group id, may be reused: no signal is sent after that.
	mu     sync.Mutex
	reaped bool
}

func newProcessGroup(cmd *exec.Cmd, grace time.Duration, stopSignals ...syscall.Signal) *processGroup {
	return &processGroup{
		cmd:           cmd,
		pid:           cmd.Process.Pid,
		grace:         grace,
		stopSignals:   stopSignals,
		killRequested: make(chan struct{}),
	}
}

// signal sends sig to every process in the group.
func (g *processGroup) signal(sig syscall.Signal) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reaped {
		return ErrProcessDone
	}
	err := syscall.Kill(-g.pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil // only the unreaped leader is left, or nobody yet
	}
	return err
}

// requestKill asks supervise to stop the group; it does not wait.
func (g *processGroup) requestKill() {
	g.killOnce.Do(func() { close(g.killRequested) })
}

// supervise runs until the leader has exited and been reaped. When ctx
// ends or requestKill is called, the group gets the stop signals, then
// SIGKILL after the grace period. When the leader exits, the rest of the
// group is killed before the leader is reaped, while its pid still
// reserves the group id.
func (g *processGroup) supervise(ctx context.Context) (ExitStatus, error) {
	leaderExited := make(chan struct{})
	go func() {
		defer close(leaderExited)
		waitWithoutReaping(g.pid)
	}()

	var graceTimer *time.Timer
	var graceOver <-chan time.Time
	stopping := false
	ctxDone, killRequested := ctx.Done(), g.killRequested
	stop := func() {
		if stopping {
			return
		}
		stopping = true
		for _, sig := range g.stopSignals {
			_ = g.signal(sig)
		}
		graceTimer = time.NewTimer(g.grace)
		graceOver = graceTimer.C
	}
wait:
	for {
		select {
		case <-leaderExited:
			break wait
		case <-ctxDone:
			ctxDone = nil
			stop()
		case <-killRequested:
			killRequested = nil
			stop()
		case <-graceOver:
			graceOver = nil
			_ = g.signal(syscall.SIGKILL)
		}
	}
	if graceTimer != nil {
		graceTimer.Stop()
	}
	_ = g.signal(syscall.SIGKILL)

	g.mu.Lock()
	g.reaped = true
	g.mu.Unlock()
	err := g.cmd.Wait()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		err = nil // the status says it all
	}
	return exitStatusOf(g.cmd.ProcessState), err
}

// waitWithoutReaping blocks until the process pid has exited, leaving it a
// zombie for cmd.Wait to reap.
func waitWithoutReaping(pid int) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}

// Process is a command without a terminal running in its own process
// group, stopped the same way a [Session] is: SIGTERM and SIGCONT to the
// group, then SIGKILL after a grace period. It suits services that run
// commands without a terminal.
type Process struct {
	group  *processGroup
	cancel context.CancelFunc
	done   chan struct{}

	// Set by run before done is closed.
	status  ExitStatus
	waitErr error
}

// StartProcess starts cmd as the leader of a new process group. When ctx
// ends, or Kill or Close is called, the group is stopped: SIGTERM and
// SIGCONT, then SIGKILL after grace (DefaultKillGrace when zero). When the
// leader exits, what is left of its group is killed.
//
// cmd must come from exec.Command, not exec.CommandContext: the process's
// lifetime is ctx's. Its SysProcAttr is amended to start a new group; a
// zero WaitDelay is set to grace, so that output pipes held open by
// processes that left the group do not keep Wait waiting. cmd.Wait is
// called as soon as the leader exits, so give cmd files or writers for its
// output, not StdoutPipe or StderrPipe.
func StartProcess(ctx context.Context, cmd *exec.Cmd, grace time.Duration) (*Process, error) {
	if grace <= 0 {
		grace = DefaultKillGrace
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pgid = 0
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = grace
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Process{
		group:  newProcessGroup(cmd, grace, syscall.SIGTERM, syscall.SIGCONT),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go p.run(ctx)
	return p, nil
}

func (p *Process) run(ctx context.Context) {
	defer close(p.done)
	p.status, p.waitErr = p.group.supervise(ctx)
}

// Pid returns the process id of the leader, which is also the group id.
func (p *Process) Pid() int { return p.group.pid }

// Signal sends sig to every process in the group. It returns
// ErrProcessDone once the leader has been reaped.
func (p *Process) Signal(sig syscall.Signal) error { return p.group.signal(sig) }

// Kill starts stopping the group and returns at once; Wait or Done tell
// when it is over.
func (p *Process) Kill() { p.group.requestKill() }

// Done is closed once the leader has been reaped and its output copied.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits until the process is done and returns how it ended. The error
// is ctx's if ctx ends first, or what exec.Cmd.Wait reported beyond the
// exit status (an I/O copying failure, exec.ErrWaitDelay).
func (p *Process) Wait(ctx context.Context) (ExitStatus, error) {
	select {
	case <-p.done:
		return p.status, p.waitErr
	case <-ctx.Done():
		return ExitStatus{}, ctx.Err()
	}
}

// Close stops the group if it still runs and waits until it is done.
func (p *Process) Close() error {
	p.cancel()
	<-p.done
	return nil
}
