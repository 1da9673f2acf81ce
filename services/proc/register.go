package proc

import (
	"context"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/conman-dev/conman/pty"
)

// Group is a supervised process group, as [pty.Session] and [pty.Process]
// are: the leader's pid is the group id, and Done is closed only after the
// leader has been reaped.
type Group interface {
	Pid() int
	Signal(sig syscall.Signal) error
	Kill()
	Done() <-chan struct{}
}

var (
	_ Group = (*pty.Session)(nil)
	_ Group = (*pty.Process)(nil)
)

// spawnMu is held for reading across every start and its registration, and
// for writing by ExcludeSpawns: see the package documentation.
var spawnMu sync.RWMutex

// register is the process-wide set of supervised groups.
var register = struct {
	// mu guards the following.
	mu     sync.Mutex
	groups map[int]registered // by leader pid
	seq    uint64
}{groups: make(map[int]registered)}

type registered struct {
	group Group
	seq   uint64 // start order
}

// Start runs start, which must start exactly one process group and return
// it, and registers the group as supervised, all under the spawn lock, so
// that a reaper never takes its leader's exit status. Services start every
// child this way.
func Start[G Group](start func() (G, error)) (G, error) {
	spawnMu.RLock()
	defer spawnMu.RUnlock()
	g, err := start()
	if err != nil {
		return g, err
	}
	register.mu.Lock()
	defer register.mu.Unlock()
	pruneLocked()
	register.seq++
	register.groups[g.Pid()] = registered{group: g, seq: register.seq}
	return g, nil
}

// StartPTY is [pty.Start] through [Start].
func StartPTY(ctx context.Context, opts pty.Options) (*pty.Session, error) {
	return Start(func() (*pty.Session, error) { return pty.Start(ctx, opts) })
}

// StartProcess is [pty.StartProcess] through [Start].
func StartProcess(ctx context.Context, cmd *exec.Cmd, grace time.Duration) (*pty.Process, error) {
	return Start(func() (*pty.Process, error) { return pty.StartProcess(ctx, cmd, grace) })
}

// StartCommand starts cmd (plain os/exec) through [Start]: it counts as
// supervised until the returned wait, which replaces cmd.Wait, has
// returned. Code that runs tools without the pty package uses it, so that
// a reaper never takes their exit statuses and signals reach them.
func StartCommand(cmd *exec.Cmd) (wait func() error, err error) {
	g, err := Start(func() (*commandGroup, error) {
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return &commandGroup{cmd: cmd, done: make(chan struct{})}, nil
	})
	if err != nil {
		return nil, err
	}
	return g.wait, nil
}

// commandGroup is a [Group] for a command started by StartCommand: its own
// process group when it has one, else just the process.
type commandGroup struct {
	cmd      *exec.Cmd
	waitOnce sync.Once
	waitErr  error
	done     chan struct{}
}

func (g *commandGroup) Pid() int { return g.cmd.Process.Pid }

func (g *commandGroup) Signal(sig syscall.Signal) error {
	if isDone(g) {
		return pty.ErrProcessDone
	}
	target := g.cmd.Process.Pid
	if attr := g.cmd.SysProcAttr; attr != nil && (attr.Setpgid && attr.Pgid == 0 || attr.Setsid) {
		target = -target
	}
	return syscall.Kill(target, sig)
}

func (g *commandGroup) Kill()                 { _ = g.Signal(syscall.SIGKILL) }
func (g *commandGroup) Done() <-chan struct{} { return g.done }

func (g *commandGroup) wait() error {
	g.waitOnce.Do(func() {
		g.waitErr = g.cmd.Wait()
		close(g.done)
	})
	return g.waitErr
}

func isDone(g Group) bool {
	select {
	case <-g.Done():
		return true
	default:
		return false
	}
}

// pruneLocked forgets groups whose leader has been reaped.
func pruneLocked() {
	for pid, r := range register.groups {
		if isDone(r.group) {
			delete(register.groups, pid)
		}
	}
}

// ExcludeSpawns runs fn while no child can be started. owned reports
// whether pid is the leader of a supervised group that is not yet reaped:
// its owner will reap it, nobody else may. A reaper lists and reaps zombies
// inside fn.
func ExcludeSpawns(fn func(owned func(pid int) bool)) {
	spawnMu.Lock()
	defer spawnMu.Unlock()
	fn(func(pid int) bool {
		register.mu.Lock()
		defer register.mu.Unlock()
		r, ok := register.groups[pid]
		if ok && isDone(r.group) {
			delete(register.groups, pid)
			return false
		}
		return ok
	})
}

// Supervised returns the groups that still run, newest first: the order to
// stop them in.
func Supervised() []Group {
	register.mu.Lock()
	defer register.mu.Unlock()
	pruneLocked()
	all := make([]registered, 0, len(register.groups))
	for _, r := range register.groups {
		all = append(all, r)
	}
	slices.SortFunc(all, func(a, b registered) int {
		switch {
		case a.seq > b.seq:
			return -1
		case a.seq < b.seq:
			return 1
		}
		return 0
	})
	out := make([]Group, len(all))
	for i, r := range all {
		out[i] = r.group
	}
	return out
}

// SignalAll sends sig to every supervised group, newest first, and returns
// how many it reached.
func SignalAll(sig syscall.Signal) int {
	n := 0
	for _, g := range Supervised() {
		if g.Signal(sig) == nil {
			n++
		}
	}
	return n
}

// StopAll stops every supervised group, newest first: each is asked to stop
// as its owner would (SIGTERM and the like, then SIGKILL after its own
// grace). Whatever still runs when ctx ends is killed at once; StopAll then
// waits up to killWait for the leaders to be reaped. It returns how many
// groups had to be killed and how many were still not reaped at the end.
func StopAll(ctx context.Context, killWait time.Duration) (killed, left int) {
	groups := Supervised()
	for _, g := range groups {
		g.Kill()
	}
	waitAll(ctx, groups)
	for _, g := range groups {
		if !isDone(g) {
			killed++
			_ = g.Signal(syscall.SIGKILL)
		}
	}
	if killed > 0 {
		kctx, cancel := context.WithTimeout(context.Background(), killWait)
		waitAll(kctx, groups)
		cancel()
	}
	for _, g := range groups {
		if !isDone(g) {
			left++
		}
	}
	return killed, left
}

// waitAll waits until every group is done or ctx ends.
func waitAll(ctx context.Context, groups []Group) {
	for _, g := range groups {
		select {
		case <-g.Done():
		case <-ctx.Done():
			return
		}
	}
}
