package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// storeLock serialises every operation on a store: within the process with
// a mutex, across processes (the daemon and the CLI) with flock(2) on a
// lock file. flock locks belong to an open file description, so two
// storeLocks on one file exclude each other even inside one process.
type storeLock struct {
	path string
	// busy, when set, is called once each time an acquisition finds the
	// lock held by someone else (for tests).
	busy func()

	// mu is held from lock to unlock, and guards the following.
	mu sync.Mutex
	f  *os.File // the open lock file
}

// lockPoll is how often a waiting acquisition retries a lock held by
// another process. flock cannot wait on a context, so it is polled.
const lockPoll = 20 * time.Millisecond

// lock acquires the store for the caller, waiting while another operation
// or process holds it, until ctx ends.
func (l *storeLock) lock(ctx context.Context) error {
	l.mu.Lock()
	if l.f == nil {
		f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			l.mu.Unlock()
			return fmt.Errorf("lock: %w", err)
		}
		l.f = f
	}
	var timer *time.Timer
	for {
		err := unix.Flock(int(l.f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			l.mu.Unlock()
			return fmt.Errorf("lock %s: %w", l.path, err)
		}
		if timer == nil {
			if l.busy != nil {
				l.busy()
			}
			timer = time.NewTimer(lockPoll)
			defer timer.Stop()
		} else {
			timer.Reset(lockPoll)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			l.mu.Unlock()
			return fmt.Errorf("lock: waiting for another snapshot or restore: %w", ctx.Err())
		}
	}
}

func (l *storeLock) unlock() {
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.mu.Unlock()
}

// close releases the lock file. The store must not be locked.
func (l *storeLock) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
