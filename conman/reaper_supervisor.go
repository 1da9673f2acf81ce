package conman

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/conman-dev/conman/services/proc"
)

// DefaultKillWait bounds the wait for process groups to be reaped after
// they were sent SIGKILL at the end of a shutdown.
const DefaultKillWait = 2 * time.Second

// SupervisorOptions configures [StartSupervisor].
type SupervisorOptions struct {
	// Subreaper makes the daemon a child subreaper and reaps orphans even
	// when it is not PID 1. As PID 1 it reaps them regardless.
	Subreaper bool
	// Logger receives the supervisor's log (default slog.Default()).
	Logger *slog.Logger
}

// Supervisor does what a container's init must around the daemon: it
// reaps orphans when the daemon is PID 1 or a subreaper (see [Reaper]),
// forwards SIGTERM, SIGINT and SIGHUP to the process groups the services
// supervise (newest first), and stops those groups last at shutdown.
//
// SIGTERM and SIGINT also end [Supervisor.Context], which the daemon runs
// under; SIGHUP is only forwarded (a shell that gets it exits and is
// started again), so the daemon no longer dies of a hangup.
//
// Its signal goroutine and the reaper's are waited for by Stop.
type Supervisor struct {
	log    *slog.Logger
	reaper *Reaper // nil when not reaping
	sigs   chan os.Signal
	ctx    context.Context // ends at the first SIGTERM or SIGINT
	cancel context.CancelFunc
	quit   chan struct{}
	done   chan struct{}

	// mu guards the following.
	mu     sync.Mutex
	ending os.Signal
}

// StartSupervisor starts handling signals, and reaping when the daemon is
// PID 1 or opts.Subreaper is set.
func StartSupervisor(opts SupervisorOptions) (*Supervisor, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Supervisor{
		log:  opts.Logger,
		sigs: make(chan os.Signal, 4),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	if pid1 := os.Getpid() == 1; pid1 || opts.Subreaper {
		r, err := StartReaper(opts.Logger, opts.Subreaper && !pid1)
		if err != nil {
			return nil, err
		}
		s.reaper = r
		s.log.Debug("reaping orphans", "pid1", pid1)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	signal.Notify(s.sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go s.loop()
	return s, nil
}

// Context ends at the first SIGTERM or SIGINT, once it has been forwarded.
func (s *Supervisor) Context() context.Context { return s.ctx }

// Signal returns the signal that ended Context, or nil.
func (s *Supervisor) Signal() os.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ending
}

func (s *Supervisor) loop() {
	defer close(s.done)
	for {
		select {
		case sig := <-s.sigs:
			n := proc.SignalAll(sig.(syscall.Signal))
			s.log.Info("signal", "signal", sig.String(), "forwarded_to_groups", n)
			if sig == syscall.SIGTERM || sig == syscall.SIGINT {
				s.mu.Lock()
				if s.ending == nil {
					s.ending = sig
				}
				s.mu.Unlock()
				s.cancel()
			}
		case <-s.quit:
			return
		}
	}
}

// Stop stops what is left of the supervised process groups, newest first
// (each as its owner would, then SIGKILL when ctx ends), stops handling
// signals and stops the reaper after a last pass. It returns an error when
// a group had to be killed or could not be reaped, so that the daemon's
// exit code tells a clean end from a forced one.
func (s *Supervisor) Stop(ctx context.Context) error {
	killed, left := proc.StopAll(ctx, DefaultKillWait)
	signal.Stop(s.sigs)
	close(s.quit)
	<-s.done
	s.cancel()
	if s.reaper != nil {
		s.reaper.Stop()
		s.log.Debug("reaper stopped", "reaped", s.reaper.Reaped())
	}
	switch {
	case left > 0:
		return fmt.Errorf("shutdown: %d process groups were still running after SIGKILL", left)
	case killed > 0:
		return fmt.Errorf("shutdown: %d process groups did not stop in time and were killed", killed)
	}
	return nil
}
