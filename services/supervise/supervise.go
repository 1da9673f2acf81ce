// Package supervise is the `services` service: long-running processes of
// the workspace (a dev server, a worker) that the daemon keeps running,
// starts again when they exit, and starts at every daemon start.
//
// It owns the supervisor (one per daemon, shared by every services
// channel), the processes it starts, from start to reaping, their logs
// (a bounded ring per service, in memory) and DataDir/services/state.json.
// It must not run a shell unless a definition asks for one, must not hand
// the daemon's secrets to a process (see [proc.IsSecret]), and never
// imports another service.
//
// # Definitions
//
// A service is declared in the workspace's .replit:
//
//	[services.web]
//	run = "npm start"           # a string runs with sh -c; an array as it is
//	env = { PORT = "3000" }
//	restart = "always"          # on-failure (the default), always or never
//
// or defined over the protocol with serviceEnable{name, args, env,
// restart}. A name declared in .replit cannot be defined over the
// protocol nor destroyed, and its definition is read again before every
// start (a service defined over the protocol before its name appeared in
// .replit keeps its definition until it is destroyed). Declaring a
// service does not start it.
//
// # On a services channel
//
//   - serviceEnable{name[, args, env, restart]} defines the service (with
//     args) or picks an existing definition (name only), starts it and
//     marks it enabled: it starts again at every daemon start, in the
//     order services were enabled. Enabling a running service with a new
//     definition restarts it; enabling one in ERROR or COMPLETE starts it
//     afresh. Answered with service (its status);
//   - serviceDisable{name} stops it (SIGTERM to its process group, SIGKILL
//     after the kill grace) and keeps the definition; answered with
//     service once it has stopped;
//   - serviceDestroy{name} stops it and forgets it; answered ok once it has
//     stopped;
//   - serviceList{filter} is answered with serviceListRes: all services,
//     the enabled or the disabled ones, by name;
//   - every change of a service's status is sent to every services channel
//     (other than the log:<name> ones) as service, in order, and answers
//     are sent in the same order, so a client that lists and then follows
//     the changes misses nothing.
//
// A read-only session may list and follow logs, not enable, disable or
// destroy.
//
// # Status and restarts
//
// A status has the state PASSIVE (disabled), STANDBY (enabled, about to
// start), ACTIVE (running, with its pid and start time), ERROR (given up:
// it could not start, or it crashed in a loop; reason says which) or
// COMPLETE (it exited and its policy says not to start it again), the
// last exit code, the restart count and the times of the last start and
// exit. A process that exits is started again as its policy says (always;
// on-failure: after a non-zero exit or a signal; never) after a backoff
// that doubles with each quick exit in a row (one within
// Options.QuickExit of its start), from Options.BackoffMin up to
// Options.BackoffMax. After Options.CrashLoop quick exits in a row the
// service is in a crash loop: ERROR, with the reason, and no more
// restarts until it is enabled again.
//
// # Logs
//
// Each service's stdout and stderr lines, with their times, and SYSTEM
// lines for its starts and exits, go to a ring of the latest
// Options.RingLines lines (and RingBytes bytes). A channel opened with
// the name log:<name> streams the ring to each session that attaches: the
// lines it held at that moment (serviceLog{…, replayed: true}), then the
// new ones as they come. A session that reads so slowly that lines leave
// the ring before it reads them is told how many it missed (a SYSTEM line
// with skipped). The ring survives restarts of the process, not of the
// daemon.
//
// # Shutdown
//
// When the daemon stops, the services stop one after the other, the one
// started last first: SIGTERM, then SIGKILL after the kill grace. The
// daemon forwards its own SIGTERM to every process group first; a process
// that exits of it is not started again.
//
// # Concurrency
//
// One [Service] per daemon holds the services under its mutex; every
// status change is saved and broadcast under it. Each enabled service has
// a supervising goroutine (two more read its pipes) owned by the Service
// and waited for in Stop. Each session following a log has a pump
// goroutine, and each serviceDisable or serviceDestroy of a running
// service a goroutine that waits for it to stop, owned by the channel's
// instance and waited for in Close.
package supervise

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services"
	"github.com/conman-dev/conman/services/logs/lines"
	"github.com/conman-dev/conman/services/proc"
)

// Name is the service's wire name.
const Name = "services"

// LogChannelPrefix starts the name of a channel that follows a service's
// log: log:<name>.
const LogChannelPrefix = "log:"

// Defaults for the zero values of Options.
const (
	DefaultKillGrace  = 2 * time.Second
	DefaultBackoffMin = time.Second
	DefaultBackoffMax = 30 * time.Second
	DefaultQuickExit  = 10 * time.Second
	DefaultCrashLoop  = 5
)

// Options configures the service. Zero values mean the defaults.
type Options struct {
	// KillGrace is the time between SIGTERM and SIGKILL when a service is
	// stopped (default 2 s).
	KillGrace time.Duration
	// BackoffMin and BackoffMax bound the wait before a restart (defaults
	// 1 s and 30 s); it doubles with each quick exit in a row.
	BackoffMin, BackoffMax time.Duration
	// QuickExit: a process that exits sooner after its start exited
	// quickly (default 10 s).
	QuickExit time.Duration
	// CrashLoop is how many quick exits in a row make a crash loop
	// (default 5).
	CrashLoop int
	// RingLines and RingBytes bound each service's log (defaults 1000
	// lines, 256 KiB).
	RingLines, RingBytes int
	// Reader configures how output is cut into lines.
	Reader lines.ReaderOptions
}

func (o *Options) setDefaults() {
	if o.KillGrace <= 0 {
		o.KillGrace = DefaultKillGrace
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = max(DefaultBackoffMax, o.BackoffMin)
	}
	if o.QuickExit <= 0 {
		o.QuickExit = DefaultQuickExit
	}
	if o.CrashLoop <= 0 {
		o.CrashLoop = DefaultCrashLoop
	}
}

var (
	configMu sync.Mutex
	config   Options
)

// Configure sets the options of services services built from now on;
// services.Env carries no per-service settings.
func Configure(opts Options) {
	configMu.Lock()
	defer configMu.Unlock()
	config = opts
}

func configured() Options {
	configMu.Lock()
	defer configMu.Unlock()
	return config
}

func init() {
	services.Register(Name, func(env services.Env) (channels.Service, error) {
		return New(env, configured())
	})
}

var errStopping = errors.New("services: the daemon is stopping")

// Service is the daemon's supervisor.
type Service struct {
	workspace string
	statePath string
	opts      Options
	log       *slog.Logger
	ctx       context.Context // ends with Stop
	cancel    context.CancelFunc
	wg        sync.WaitGroup // one per supervising goroutine
	// stopHint is set when the daemon forwards SIGTERM or SIGINT to the
	// processes: it is about to stop, so nothing is restarted.
	stopHint atomic.Bool

	// mu guards the following, and every unit's fields but name and ring.
	mu         sync.Mutex
	units      map[string]*unit
	replitErr  error // why .replit could not be read, last time
	enabledSeq uint64
	startSeq   uint64
	instances  map[*instance]struct{} // channels that get status changes
	stopped    bool
}

var _ services.Stopper = (*Service)(nil)

// unit is one service.
type unit struct {
	name string
	ring *lines.Ring

	source     string
	spec       spec  // an api definition, or the last one read from .replit
	defErr     error // why a .replit declaration is unusable
	declared   bool  // a .replit unit is declared there now
	enabled    bool
	enabledSeq uint64

	state       api.ServiceStatus_State
	pid         int
	pidStart    uint64
	exitCode    int
	reason      string
	restarts    uint32
	startedAt   time.Time
	exitedAt    time.Time
	nextStartAt time.Time
	startSeq    uint64  // when it last started, for stopping in reverse
	run         *runner // its supervising goroutine, while there is one
}

// runner is a unit's supervising goroutine.
type runner struct {
	cancel      context.CancelFunc
	done        chan struct{} // closed when the goroutine has returned
	started     chan struct{} // closed once the first start was tried
	startedOnce sync.Once
	canceled    bool // guarded by Service.mu: it is being stopped
}

func (r *runner) markStarted() { r.startedOnce.Do(func() { close(r.started) }) }

// stopLocked tells r to stop its process and return.
func (r *runner) stopLocked() {
	r.canceled = true
	r.cancel()
}

// New loads the services of env.Workspace's .replit and
// env.DataDir/services and starts the enabled ones.
func New(env services.Env, opts Options) (*Service, error) {
	opts.setDefaults()
	dir := filepath.Join(env.DataDir, Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc := &Service{
		workspace: env.Workspace,
		statePath: filepath.Join(dir, "state.json"),
		opts:      opts,
		log:       log.With("service", Name),
		ctx:       ctx,
		cancel:    cancel,
		units:     make(map[string]*unit),
		instances: make(map[*instance]struct{}),
	}
	st, err := loadState(svc.statePath)
	if err != nil {
		svc.log.Warn("services state unreadable; starting without it", "err", err)
	}
	defs, replitErr := readReplit(svc.workspace)

	svc.mu.Lock()
	defer svc.mu.Unlock()
	for _, s := range st.Services {
		if killLeftover(s.Pid, s.PidStart) {
			svc.log.Info("killed what was left of a service the previous daemon ran", "name", s.Name, "pid", s.Pid)
		}
		if checkName(s.Name) != nil || (s.Source != sourceAPI && s.Source != sourceReplit) {
			continue
		}
		u := svc.newUnit(s.Name, s.Source)
		if s.Source == sourceAPI {
			restart, _ := parseRestart(strings.ReplaceAll(strings.ToLower(s.Restart), "_", "-"))
			u.spec = spec{Args: s.Args, Env: s.Env, Restart: restart}
			if len(u.spec.Args) == 0 {
				continue
			}
		}
		u.enabled, u.enabledSeq = s.Enabled, s.EnabledSeq
		svc.enabledSeq = max(svc.enabledSeq, s.EnabledSeq)
		svc.units[s.Name] = u
	}
	svc.applyReplitLocked(defs, replitErr)
	var enabled []*unit
	for _, u := range svc.units {
		if u.enabled {
			enabled = append(enabled, u)
		}
	}
	slices.SortFunc(enabled, func(a, b *unit) int { return cmp.Compare(a.enabledSeq, b.enabledSeq) })
	// One after the other, in the order they were enabled: each waits
	// for the one before to have started.
	var prev *runner
	for _, u := range enabled {
		u.state = api.ServiceStatus_STANDBY
		svc.startRunnerLocked(u, nil, prev)
		prev = u.run
	}
	svc.saveLocked()
	return svc, nil
}

func (svc *Service) newUnit(name, source string) *unit {
	return &unit{name: name, source: source, ring: lines.NewRing(svc.opts.RingLines, svc.opts.RingBytes)}
}

// refreshReplit reads .replit again and applies what it declares.
func (svc *Service) refreshReplit() {
	defs, err := readReplit(svc.workspace)
	svc.mu.Lock()
	defer svc.mu.Unlock()
	svc.applyReplitLocked(defs, err)
}

// applyReplitLocked makes the .replit units match defs. When .replit could
// not be read, the units keep their last definitions.
func (svc *Service) applyReplitLocked(defs map[string]replitDef, readErr error) {
	if readErr != nil {
		if svc.replitErr == nil || svc.replitErr.Error() != readErr.Error() {
			svc.log.Debug("cannot read the services of .replit", "err", readErr)
		}
		svc.replitErr = readErr
		return
	}
	svc.replitErr = nil
	for name, def := range defs {
		u := svc.units[name]
		switch {
		case u == nil:
			u = svc.newUnit(name, sourceReplit)
			svc.units[name] = u
		case u.source != sourceReplit:
			// An api service of that name came first; it is kept, and
			// the declaration ignored until it is destroyed.
			continue
		}
		u.declared, u.spec, u.defErr = true, def.spec, def.err
	}
	for name, u := range svc.units {
		if u.source != sourceReplit {
			continue
		}
		if _, ok := defs[name]; ok {
			continue
		}
		u.declared = false
		if !u.enabled && u.run == nil {
			delete(svc.units, name)
		}
	}
}

// saveLocked writes the state file; a failure is logged (the services
// still run, they just may not come back after a restart).
func (svc *Service) saveLocked() {
	var st storedState
	for _, name := range slices.Sorted(maps.Keys(svc.units)) {
		u := svc.units[name]
		s := storedService{Name: name, Source: u.source, Enabled: u.enabled, EnabledSeq: u.enabledSeq, Pid: u.pid, PidStart: u.pidStart}
		if u.source == sourceAPI {
			s.Args, s.Env, s.Restart = u.spec.Args, u.spec.Env, strings.ToLower(strings.ReplaceAll(u.spec.Restart.String(), "_", "-"))
		} else if !u.enabled && u.pid == 0 {
			continue // nothing to remember: .replit declares it
		}
		st.Services = append(st.Services, s)
	}
	if err := saveState(svc.statePath, st); err != nil {
		svc.log.Warn("save services state", "err", err)
	}
}

// statusLocked is u's status as sent to clients: without its env, which
// may hold secrets.
func (u *unit) statusLocked() *api.ServiceStatus {
	st := &api.ServiceStatus{
		Name:     u.name,
		State:    u.state,
		Enabled:  u.enabled,
		Pid:      int32(u.pid),
		ExitCode: int32(u.exitCode),
		Reason:   u.reason,
		Restarts: u.restarts,
		Args:     u.spec.Args,
		Restart:  u.spec.Restart,
		Source:   u.source,
	}
	if u.defErr != nil && st.Reason == "" {
		st.Reason = u.defErr.Error()
	}
	if u.source == sourceReplit && !u.declared && st.Reason == "" {
		st.Reason = "no longer declared in .replit"
	}
	st.StartedAt = unixMilli(u.startedAt)
	st.ExitedAt = unixMilli(u.exitedAt)
	st.NextStartAt = unixMilli(u.nextStartAt)
	return st
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// changedLocked saves the state and tells every channel about u, if u is
// still one of the services.
func (svc *Service) changedLocked(u *unit) {
	if svc.units[u.name] != u {
		return
	}
	svc.saveLocked()
	svc.broadcastLocked(u.statusLocked())
}

func (svc *Service) broadcastLocked(st *api.ServiceStatus) {
	for in := range svc.instances {
		in.ch.Send(&api.Command{Body: &api.Command_Service{Service: st}})
	}
}

// startRunnerLocked starts u's supervising goroutine. Before the first
// start it waits for replaced (a runner being replaced) to end and for
// prev (the service enabled before it, at daemon start) to have started;
// either may be nil.
func (svc *Service) startRunnerLocked(u *unit, replaced, prev *runner) {
	ctx, cancel := context.WithCancel(svc.ctx)
	r := &runner{cancel: cancel, done: make(chan struct{}), started: make(chan struct{})}
	u.run = r
	svc.wg.Add(1)
	go func() {
		defer svc.wg.Done()
		defer close(r.done)
		defer r.markStarted()
		if replaced != nil {
			<-replaced.done
		}
		if prev != nil {
			select {
			case <-prev.started:
			case <-prev.done:
			}
		}
		svc.supervise(ctx, u, r)
	}()
}

func (svc *Service) stopping() { svc.stopHint.Store(true) }

func (svc *Service) stoppingLocked() bool { return svc.stopped || svc.stopHint.Load() }

// supervise runs u's process, and runs it again as its policy says, until
// ctx ends or it gives up.
func (svc *Service) supervise(ctx context.Context, u *unit, r *runner) {
	defer svc.runnerEnded(u, r)
	quick := 0 // quick exits in a row
	for first := true; ; first = false {
		if ctx.Err() != nil {
			return
		}
		svc.refreshReplit()
		p, out, err := svc.start(ctx, u, first)
		r.markStarted()
		if err != nil {
			svc.mu.Lock()
			u.state, u.reason, u.pid, u.nextStartAt = api.ServiceStatus_ERROR, err.Error(), 0, time.Time{}
			svc.giveUpLocked(u, r)
			svc.changedLocked(u)
			// Noted before a new runner may start: the log stays in order.
			u.ring.Append(lines.System("could not start: " + err.Error()))
			svc.mu.Unlock()
			return
		}
		started := time.Now()
		<-p.Done()
		out.finish()
		status, _ := p.Wait(context.Background())
		exited := time.Now()

		svc.mu.Lock()
		u.pid, u.pidStart, u.exitCode, u.exitedAt = 0, 0, status.Code, exited
		u.reason = status.String()
		failed := status.Code != 0 || status.Signaled()
		restart := u.spec.Restart == api.ServiceSpec_ALWAYS || (u.spec.Restart == api.ServiceSpec_ON_FAILURE && failed)
		if exited.Sub(started) < svc.opts.QuickExit {
			quick++
		} else {
			quick = 0
		}
		var note string
		switch {
		case ctx.Err() != nil || svc.stoppingLocked():
			// Stopped on purpose; runnerEnded says what it is now.
			svc.mu.Unlock()
			u.ring.Append(lines.System("stopped: " + status.String()))
			return
		case !restart:
			u.state = api.ServiceStatus_COMPLETE
			if failed {
				u.state = api.ServiceStatus_ERROR
			}
			note = "exited: " + status.String()
		case quick >= svc.opts.CrashLoop:
			u.state = api.ServiceStatus_ERROR
			u.reason = fmt.Sprintf("crash loop: it exited %d times in a row within %s of starting (last: %s); enable it again to retry",
				quick, svc.opts.QuickExit, status)
			note = u.reason
			restart = false
		default:
			delay := svc.backoff(quick)
			u.state, u.nextStartAt = api.ServiceStatus_STANDBY, exited.Add(delay)
			note = fmt.Sprintf("exited: %s; restarting in %s", status, delay)
		}
		if !restart {
			svc.giveUpLocked(u, r)
		}
		svc.changedLocked(u)
		u.ring.Append(lines.System(note))
		wait := u.nextStartAt.Sub(exited)
		svc.mu.Unlock()
		if !restart {
			return
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return
		}
	}
}

// backoff is the wait before a restart after quick quick exits in a row.
func (svc *Service) backoff(quick int) time.Duration {
	delay := svc.opts.BackoffMin
	for i := 1; i < quick && delay < svc.opts.BackoffMax; i++ {
		delay *= 2
	}
	return min(delay, svc.opts.BackoffMax)
}

// giveUpLocked lets go of u when r has given up on it (ERROR, COMPLETE),
// in the same step that says so: an enable that follows at once starts a
// new runner.
func (svc *Service) giveUpLocked(u *unit, r *runner) {
	if u.run == r {
		u.run = nil
	}
}

// runnerEnded forgets r once its goroutine is over, and settles u's state
// when it was stopped on purpose. A runner that gave up, or was replaced,
// leaves u alone.
func (svc *Service) runnerEnded(u *unit, r *runner) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if u.run != r {
		return
	}
	u.run = nil
	u.pid, u.pidStart, u.nextStartAt = 0, 0, time.Time{}
	switch {
	case !u.enabled:
		u.state = api.ServiceStatus_PASSIVE
	case u.state == api.ServiceStatus_ACTIVE:
		u.state = api.ServiceStatus_STANDBY // the daemon stops, or it is being redefined
	}
	svc.changedLocked(u)
}

// output reads a process's stdout and stderr into its unit's ring.
type output struct {
	files   []*os.File
	readers []*lines.Reader
	wg      sync.WaitGroup
}

// finish lets the readers drain what the exited process left, waits for
// them and closes the pipes.
func (o *output) finish() {
	for _, rd := range o.readers {
		rd.ProcessExited()
	}
	o.wg.Wait()
	for _, f := range o.files {
		_ = f.Close()
	}
}

// start starts u's process, with the latest definition, and the readers
// of its output.
func (svc *Service) start(ctx context.Context, u *unit, first bool) (*watchedProcess, *output, error) {
	svc.mu.Lock()
	sp, defErr := u.spec, u.defErr
	if u.source == sourceReplit && !u.declared {
		defErr = svc.replitErr
		if defErr == nil {
			defErr = errors.New("services: it is no longer declared in .replit")
		}
	}
	svc.mu.Unlock()
	if defErr != nil {
		return nil, nil, defErr
	}
	env := proc.Environ(sp.Env)
	path, err := proc.LookPath(sp.Args[0], env)
	if err != nil {
		return nil, nil, fmt.Errorf("services: %w", err)
	}
	cmd := exec.Command(path)
	cmd.Args = sp.Args
	cmd.Dir = svc.workspace
	cmd.Env = env
	out := &output{}
	var writeEnds []*os.File
	closeAll := func(files []*os.File) {
		for _, f := range files {
			_ = f.Close()
		}
	}
	for range 2 {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(out.files)
			closeAll(writeEnds)
			return nil, nil, fmt.Errorf("services: pipe: %w", err)
		}
		out.files, writeEnds = append(out.files, r), append(writeEnds, w)
	}
	cmd.Stdout, cmd.Stderr = writeEnds[0], writeEnds[1]
	p, err := startProcess(ctx, cmd, svc.opts.KillGrace, svc.stopping)
	closeAll(writeEnds) // the child has its own copies
	if err != nil {
		closeAll(out.files)
		return nil, nil, fmt.Errorf("services: %w", err)
	}

	svc.mu.Lock()
	svc.startSeq++
	u.startSeq = svc.startSeq
	u.state, u.pid, u.pidStart = api.ServiceStatus_ACTIVE, p.Pid(), processStart(p.Pid())
	u.startedAt, u.nextStartAt, u.reason = time.Now(), time.Time{}, ""
	if !first {
		u.restarts++
	}
	svc.changedLocked(u)
	svc.mu.Unlock()
	u.ring.Append(lines.System(fmt.Sprintf("started: pid %d", p.Pid())))

	emit := func(l lines.Line) { u.ring.Append(l) }
	for i, stream := range []api.LogLine_Stream{api.LogLine_STDOUT, api.LogLine_STDERR} {
		rd := lines.NewReader(out.files[i], stream, emit, svc.opts.Reader)
		out.readers = append(out.readers, rd)
		out.wg.Add(1)
		go func() {
			defer out.wg.Done()
			rd.Run()
		}()
	}
	return p, out, nil
}
