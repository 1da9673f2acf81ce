package conman

// Reaping zombies as PID 1.
//
// In a container the daemon is usually PID 1, and every process whose
// parent dies is handed to it: unless it waits for them, they stay zombies
// for ever. A child subreaper (PR_SET_CHILD_SUBREAPER, --subreaper) is
// handed the orphans of its own descendants the same way.
//
// The trap is that the daemon also has children of its own, started by the
// pty package (through os/exec), which waits for them by pid: a reaper
// that called wait4(-1) would steal their exit statuses, and even their
// pids (a stolen pid can be reused by an unrelated process, which the
// owner would then signal). So the reaper never waits for "any child". It
// works like this:
//
//  1. A SIGCHLD (or a rescan every reapInterval, for the cases no signal
//     announces) wakes the reaper's goroutine.
//  2. It takes the spawn lock for writing (proc.ExcludeSpawns): no child
//     can be started meanwhile, and every child started before has been
//     registered, because services start children through proc.Start,
//     which holds the lock for reading across the start and the
//     registration.
//  3. It lists its zombie children from /proc (the children of each of its
//     threads, or a scan of every process when the kernel does not list
//     children) and reaps each with wait4(pid, WNOHANG), skipping the pids
//     registered as leaders of supervised groups: their owners reap them.
//  4. A zombie registered by nobody that is in the daemon's own process
//     group, or leads a process group of its own inside the daemon's
//     session, is most likely a child started with plain os/exec (with or
//     without Setpgid) by code that did not register it: orphans come from
//     deeper down, in a group led by an ancestor, and terminals and their
//     descendants are in sessions of their own. Such a zombie is left to
//     its owner for strayWait, and reaped only if it is still there after
//     that (an orphan that happens to look like one is reaped late, not
//     never).
//
// A pid can be reused only once it is reaped; while the lock is held
// nothing else in the daemon can reap the zombies the reaper decided to
// reap (they are not registered), so wait4 always reaps what was listed.

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conman-dev/conman/services/proc"
)

// Timing of the reaper.
const (
	reapInterval = 5 * time.Second // rescan without SIGCHLD
	strayWait    = time.Minute     // grace for unregistered children in our own group
)

// Reaper reaps the zombie children of the daemon that nobody else waits
// for. Start it with [StartReaper] when the daemon is PID 1 or a child
// subreaper.
type Reaper struct {
	log      *slog.Logger
	self     int
	selfPgid int // as /proc shows it: 0 when the group is outside our PID namespace
	selfSid  int // likewise
	sigs     chan os.Signal
	stop     chan struct{}
	done     chan struct{}
	reaped   atomic.Int64
	passes   atomic.Int64 // completed reap passes (for tests)

	// strays is when each zombie that may be someone's unregistered child
	// was first seen; only the reaper's goroutine touches it.
	strays map[int]time.Time
}

// StartReaper starts reaping. With subreaper the daemon first becomes a
// child subreaper, so the orphans of its descendants are handed to it even
// when it is not PID 1.
func StartReaper(log *slog.Logger, subreaper bool) (*Reaper, error) {
	if log == nil {
		log = slog.Default()
	}
	if subreaper {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return nil, fmt.Errorf("reaper: become a child subreaper: %w", err)
		}
	}
	r := &Reaper{
		log:      log,
		self:     os.Getpid(),
		selfPgid: syscall.Getpgrp(),
		sigs:     make(chan os.Signal, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		strays:   make(map[int]time.Time),
	}
	if st, err := readStat(os.Getpid()); err == nil {
		r.selfPgid, r.selfSid = st.pgrp, st.session
	} else {
		r.selfSid, _ = unix.Getsid(0)
	}
	signal.Notify(r.sigs, syscall.SIGCHLD)
	go r.loop()
	return r, nil
}

// Reaped returns how many zombies the reaper has reaped.
func (r *Reaper) Reaped() int64 { return r.reaped.Load() }

// Stop stops reaping, after a last pass.
func (r *Reaper) Stop() {
	signal.Stop(r.sigs)
	close(r.stop)
	<-r.done
}

func (r *Reaper) loop() {
	defer close(r.done)
	ticker := time.NewTicker(reapInterval)
	defer ticker.Stop()
	for {
		r.reap()
		select {
		case <-r.sigs:
		case <-ticker.C:
		case <-r.stop:
			r.reap()
			return
		}
	}
}

// reap reaps every zombie child that is nobody else's; see the design
// above.
func (r *Reaper) reap() {
	proc.ExcludeSpawns(func(owned func(pid int) bool) {
		zombies, err := zombieChildren(r.self)
		if err != nil {
			r.log.Warn("reaper: list children", "err", err)
			return
		}
		now := time.Now()
		seen := make(map[int]bool, len(zombies))
		for _, z := range zombies {
			if owned(z.pid) {
				continue
			}
			if r.mayBeUnregistered(z) {
				seen[z.pid] = true
				first, ok := r.strays[z.pid]
				if !ok {
					r.strays[z.pid] = now
				}
				if !ok || now.Sub(first) < strayWait {
					continue
				}
			}
			var status unix.WaitStatus
			pid, err := unix.Wait4(z.pid, &status, unix.WNOHANG, nil)
			if pid == z.pid {
				r.reaped.Add(1)
			} else if err != nil && !errors.Is(err, unix.ECHILD) {
				r.log.Debug("reaper: wait4", "pid", z.pid, "err", err)
			}
		}
		for pid := range r.strays {
			if !seen[pid] {
				delete(r.strays, pid)
			}
		}
	})
	r.passes.Add(1)
}

// mayBeUnregistered reports whether z looks like a child that code in the
// daemon started without registering it (see the design above).
func (r *Reaper) mayBeUnregistered(z zombie) bool {
	return z.pgid == r.selfPgid || (z.pgid == z.pid && z.sid == r.selfSid)
}

// zombie is a child process that has exited.
type zombie struct{ pid, pgid, sid int }

// zombieChildren lists the zombies among the children of the process
// self, through the children lists of its threads when the kernel keeps
// them, else by scanning every process.
func zombieChildren(self int) ([]zombie, error) {
	children, err := childPids()
	if err != nil {
		children, err = allPids()
		if err != nil {
			return nil, err
		}
	}
	var out []zombie
	for _, pid := range children {
		st, err := readStat(pid)
		if err != nil || st.state != 'Z' || st.ppid != self {
			continue // gone already, or not ours
		}
		out = append(out, zombie{pid: pid, pgid: st.pgrp, sid: st.session})
	}
	return out, nil
}

// childPids reads /proc/self/task/*/children.
func childPids() ([]int, error) {
	files, err := filepath.Glob("/proc/self/task/*/children")
	if err != nil || len(files) == 0 {
		return nil, errors.New("no children lists")
	}
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread has exited
		}
		for _, field := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(field); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids, nil
}

// allPids lists every process /proc shows.
func allPids() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// procStat is what the reaper reads of /proc/<pid>/stat.
type procStat struct {
	state               byte
	ppid, pgrp, session int
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(string(b))
}

// parseStat parses the fields after the command name, which may itself
// hold spaces and parentheses: "pid (comm) state ppid pgrp session ...".
func parseStat(s string) (procStat, error) {
	malformed := errors.New("reaper: malformed stat")
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return procStat{}, malformed
	}
	fields := strings.Fields(s[end+1:])
	if len(fields) < 4 || len(fields[0]) != 1 {
		return procStat{}, malformed
	}
	var nums [3]int
	for i := range nums {
		n, err := strconv.Atoi(fields[i+1])
		if err != nil {
			return procStat{}, malformed
		}
		nums[i] = n
	}
	return procStat{state: fields[0][0], ppid: nums[0], pgrp: nums[1], session: nums[2]}, nil
}
