// Package tasks is the `tasks` service: a persistent queue of commands
// that run in the workspace, a few at a time, with their logs kept.
//
// It owns the queue (one per daemon, shared by every tasks channel), the
// processes it starts for tasks, from start to reaping, and the records
// and logs in DataDir/tasks. It must not run a shell unless a task's args
// ask for one, must not hand the daemon's secrets to a task (see
// [proc.IsSecret]), and never imports another service.
//
// On a tasks channel:
//
//   - taskSubmit{args, env, name} checks that args[0] can be found and
//     queues the task; it is answered with task{…, status QUEUED}. A
//     read-only session is refused (as it is taskCancel);
//   - taskList{statuses} is answered with taskListRes{tasks}, every task
//     or those with one of statuses, oldest first; taskGet{id} with task;
//   - taskCancel{id}: a queued task never runs (status CANCELED at once); a
//     running one gets SIGTERM and, after the kill grace, SIGKILL, to its
//     whole process group. It is answered with task once the task has
//     ended (an ended task is answered as it is);
//   - every change of a task's status is sent to every tasks channel
//     (other than the task:<id> ones below) as task, in order: a client
//     that lists and then reads those misses nothing, since the answers
//     are sent in the same order as the changes.
//
// A channel opened with the name task:<id> streams that task's log to
// each session that attaches: first the lines the log held at that
// moment, each a taskLog{…, replayed: true}, then the lines that come
// after (replayed false), each with its stream (stdout, stderr, or
// SYSTEM for conman's own markers) and time, and finally taskEnd with the
// task's final record. Every session reads the log at its own pace from
// the file, by line number, so the hand-over from history to live lines
// neither misses nor repeats a line. An unknown id is answered with an
// `error` message.
//
// At most Options.Concurrency tasks run at once (--tasks-concurrency,
// default 2); the others wait in submission order. Each runs args as
// given in the workspace, with stdin empty and stdout and stderr cut into
// lines, in its own process group. Its status ends as SUCCEEDED (exit
// status 0), FAILED (any other exit, a signal, or a start that failed) or
// CANCELED, with the exit code (-1 for a signal) and a reason.
//
// # Persistence
//
// Each task is DataDir/tasks/<id>.json, rewritten atomically on every
// change, and DataDir/tasks/<id>.log, its log as JSON lines, capped at
// Options.LogBytes (a SYSTEM marker says where it was cut and, at the end,
// how many lines were dropped). When the daemon starts, queued tasks wait
// to run again and a task the previous daemon left running is marked
// FAILED, "daemon restarted while it ran" (what is left of its process
// group is killed when its leader still runs). A daemon that stops
// gracefully stops its running tasks (FAILED, "daemon stopped while it
// ran") and starts no queued one: those run after the next start. Only the
// newest Options.KeepFinished ended tasks are kept.
//
// # Concurrency
//
// One [Service] per daemon holds the queue under its mutex; channel
// instances call into it. Every status change is saved and broadcast
// under that mutex, which is what makes the broadcasts and the answers to
// taskList ordered. Each running task has a goroutine (two more read its
// pipes), owned by the Service and waited for in Stop; each session that
// follows a log has a pump goroutine, and each taskCancel of a running
// task a goroutine that waits for its end, owned by the channel's
// instance and waited for in Close.
package tasks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
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
	"github.com/conman-dev/conman/pty"
	"github.com/conman-dev/conman/services"
	"github.com/conman-dev/conman/services/logs/lines"
	"github.com/conman-dev/conman/services/proc"
)

// Name is the service's wire name.
const Name = "tasks"

// TaskChannelPrefix starts the name of a channel that follows one task's
// log: task:<id>.
const TaskChannelPrefix = "task:"

// Defaults for the zero values of Options.
const (
	DefaultConcurrency  = 2
	DefaultKillGrace    = 2 * time.Second
	DefaultLogBytes     = 1 << 20
	DefaultKeepFinished = 500
	DefaultMaxQueued    = 1000
)

// Options configures the service. Zero values mean the defaults.
type Options struct {
	// Concurrency is how many tasks may run at once (default 2).
	Concurrency int
	// KillGrace is the time between SIGTERM and SIGKILL when a task is
	// canceled or the daemon stops (default 2 s).
	KillGrace time.Duration
	// LogBytes caps each task's log file (default 1 MiB).
	LogBytes int64
	// KeepFinished is how many ended tasks are kept, newest first (default
	// 500).
	KeepFinished int
	// MaxQueued bounds the tasks waiting to run (default 1000).
	MaxQueued int
	// Reader configures how output is cut into lines.
	Reader lines.ReaderOptions
}

func (o *Options) setDefaults() {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.KillGrace <= 0 {
		o.KillGrace = DefaultKillGrace
	}
	if o.LogBytes <= 0 {
		o.LogBytes = DefaultLogBytes
	}
	if o.KeepFinished <= 0 {
		o.KeepFinished = DefaultKeepFinished
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = DefaultMaxQueued
	}
}

var (
	configMu sync.Mutex
	config   Options
)

// Configure sets the options of tasks services built from now on. The
// daemon's command line calls it (for --tasks-concurrency) before building
// the daemon; services.Env carries no per-service settings.
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

// Errors of the service.
var (
	errNoCommand = errors.New("tasks: no command given")
	errStopping  = errors.New("tasks: the daemon is stopping")
	errQueueFull = errors.New("tasks: too many tasks are waiting; try again later")
)

// Reasons recorded for tasks that did not end on their own.
const (
	reasonRestarted     = "daemon restarted while it ran"
	reasonStopped       = "daemon stopped while it ran"
	reasonCanceledEarly = "canceled before it started"
	reasonCanceled      = "canceled while it ran"
)

// Service is the daemon's task queue.
type Service struct {
	workspace string
	store     store
	opts      Options
	log       *slog.Logger
	ctx       context.Context // ends with Stop: every running task is stopped
	cancel    context.CancelFunc
	wg        sync.WaitGroup // one per running task
	// stopHint is set when the daemon forwards SIGTERM or SIGINT to the
	// task processes: it is about to stop, so nothing more is started.
	stopHint atomic.Bool

	// mu guards the following, and every task's record.
	mu        sync.Mutex
	tasks     map[string]*task
	order     []*task // by seq, oldest first
	nextSeq   uint64
	running   int
	queued    int
	instances map[*instance]struct{} // channels that get status changes
	stopped   bool
}

var _ services.Stopper = (*Service)(nil)

// task is one task of the queue.
type task struct {
	rec   *record // guarded by Service.mu; Args and Env never change
	log   *taskLog
	ended chan struct{} // closed once the record is final and the log complete

	// Guarded by Service.mu.
	cancel          context.CancelFunc // set while it runs
	cancelRequested bool
}

// New loads the queue from env.DataDir/tasks and starts what may run.
func New(env services.Env, opts Options) (*Service, error) {
	opts.setDefaults()
	dir := filepath.Join(env.DataDir, Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc := &Service{
		workspace: env.Workspace,
		store:     store{dir: dir},
		opts:      opts,
		log:       log.With("service", Name),
		ctx:       ctx,
		cancel:    cancel,
		tasks:     make(map[string]*task),
		nextSeq:   1,
		instances: make(map[*instance]struct{}),
	}
	records, problems := svc.store.load()
	if len(problems) > 0 {
		svc.log.Warn("some task records could not be read", "count", len(problems), "first", problems[0])
	}
	slices.SortFunc(records, func(a, b *record) int { return cmp.Compare(a.Seq, b.Seq) })
	now := millis(time.Now())
	svc.mu.Lock()
	defer svc.mu.Unlock()
	for _, r := range records {
		t := &task{rec: r, ended: make(chan struct{})}
		switch r.Status {
		case statusQueued:
			t.log = newTaskLog(svc.store.logPath(r.id()), opts.LogBytes)
			svc.queued++
		case statusRunning:
			if killLeftover(r.Pid, r.PidStart) {
				svc.log.Info("killed what was left of a task the previous daemon ran", "task", r.id(), "pid", r.Pid)
			}
			r.Status, r.Reason, r.ExitCode, r.EndedAt, r.PidStart = statusFailed, reasonRestarted, -1, now, 0
			if err := svc.store.save(r); err != nil {
				svc.log.Warn("save task", "err", err)
			}
			fallthrough
		default:
			t.log = loadedTaskLog(svc.store.logPath(r.id()), opts.LogBytes)
			close(t.ended)
		}
		svc.tasks[r.id()] = t
		svc.order = append(svc.order, t)
		svc.nextSeq = max(svc.nextSeq, r.Seq+1)
	}
	svc.pruneLocked()
	svc.dispatchLocked()
	return svc, nil
}

// Open returns an instance for ch.
func (svc *Service) Open(ch *channels.Channel) (channels.Handler, error) {
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{svc: svc, ch: ch, ctx: ctx, cancel: cancel, pumps: make(map[*channels.Session]context.CancelFunc)}
	if id, ok := strings.CutPrefix(ch.Name(), TaskChannelPrefix); ok {
		in.following, in.follow = true, id
		return in, nil
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	svc.instances[in] = struct{}{}
	return in, nil
}

// Stop stops the running tasks (they end FAILED, "daemon stopped while it
// ran"), starts no queued one, and waits for the tasks' goroutines.
func (svc *Service) Stop(ctx context.Context) error {
	svc.mu.Lock()
	svc.stopped = true
	svc.mu.Unlock()
	svc.cancel()
	done := make(chan struct{})
	go func() {
		svc.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		<-done // the groups get SIGKILL after the kill grace
		return fmt.Errorf("tasks: stop: %w", ctx.Err())
	}
}

// stopping is called when the daemon forwards SIGTERM or SIGINT to a
// task's process group.
func (svc *Service) stopping() { svc.stopHint.Store(true) }

func (svc *Service) stoppingLocked() bool { return svc.stopped || svc.stopHint.Load() }

// submit queues a task and answers req with its record.
func (svc *Service) submit(req *channels.Request, sub *api.TaskSubmit) error {
	if len(sub.GetArgs()) == 0 || sub.Args[0] == "" {
		return errNoCommand
	}
	if _, err := proc.LookPath(sub.Args[0], proc.Environ(sub.GetEnv())); err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if svc.stoppingLocked() {
		return errStopping
	}
	if svc.queued >= svc.opts.MaxQueued {
		return errQueueFull
	}
	r := &record{
		Seq:      svc.nextSeq,
		Name:     sub.GetName(),
		Args:     slices.Clone(sub.Args),
		Env:      sub.GetEnv(),
		User:     req.Session.Identity().UserName,
		Status:   statusQueued,
		QueuedAt: millis(time.Now()),
	}
	if err := svc.store.save(r); err != nil {
		return err
	}
	svc.nextSeq++
	t := &task{rec: r, log: newTaskLog(svc.store.logPath(r.id()), svc.opts.LogBytes), ended: make(chan struct{})}
	svc.tasks[r.id()] = t
	svc.order = append(svc.order, t)
	svc.queued++
	req.Reply(&api.Command{Body: &api.Command_Task{Task: r.proto()}})
	svc.broadcastLocked(r)
	svc.dispatchLocked()
	return nil
}

// list answers req with the tasks whose status is in statuses (all when
// empty), oldest first.
func (svc *Service) list(req *channels.Request, statuses []api.Task_Status) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	res := &api.TaskListRes{}
	for _, t := range svc.order {
		p := t.rec.proto()
		if len(statuses) == 0 || slices.Contains(statuses, p.Status) {
			res.Tasks = append(res.Tasks, p)
		}
	}
	req.Reply(&api.Command{Body: &api.Command_TaskListRes{TaskListRes: res}})
}

// get answers req with task id's record.
func (svc *Service) get(req *channels.Request, id string) error {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	t := svc.tasks[id]
	if t == nil {
		return noTask(id)
	}
	req.Reply(&api.Command{Body: &api.Command_Task{Task: t.rec.proto()}})
	return nil
}

func noTask(id string) error { return fmt.Errorf("tasks: no task %q", id) }

// cancelTask cancels task id. It returns the task when the answer must
// wait for its end; otherwise it has answered req.
func (svc *Service) cancelTask(req *channels.Request, id string) (*task, error) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	t := svc.tasks[id]
	if t == nil {
		return nil, noTask(id)
	}
	switch t.rec.Status {
	case statusQueued:
		r := t.rec
		r.Status, r.Reason, r.ExitCode, r.EndedAt = statusCanceled, reasonCanceledEarly, -1, millis(time.Now())
		svc.queued--
		if err := svc.store.save(r); err != nil {
			svc.log.Warn("save task", "err", err)
		}
		req.Reply(&api.Command{Body: &api.Command_Task{Task: r.proto()}})
		svc.broadcastLocked(r)
		svc.pruneLocked()
		// Nothing else refers to a queued task's log or end: complete
		// them here, after the record is final.
		_ = t.log.finish()
		close(t.ended)
		return nil, nil
	case statusRunning:
		t.cancelRequested = true
		if t.cancel != nil {
			t.cancel()
		}
		return t, nil
	default:
		req.Reply(&api.Command{Body: &api.Command_Task{Task: t.rec.proto()}})
		return nil, nil
	}
}

// reply answers req with t's record.
func (svc *Service) reply(req *channels.Request, t *task) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	req.Reply(&api.Command{Body: &api.Command_Task{Task: t.rec.proto()}})
}

// record returns t's record as sent to clients.
func (svc *Service) record(t *task) *api.Task {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return t.rec.proto()
}

// broadcastLocked sends r to every channel that follows status changes.
func (svc *Service) broadcastLocked(r *record) {
	for in := range svc.instances {
		in.ch.Send(&api.Command{Body: &api.Command_Task{Task: r.proto()}})
	}
}

// dispatchLocked starts queued tasks, oldest first, while there is room.
func (svc *Service) dispatchLocked() {
	for svc.running < svc.opts.Concurrency && svc.queued > 0 && !svc.stoppingLocked() {
		var next *task
		for _, t := range svc.order {
			if t.rec.Status == statusQueued {
				next = t
				break
			}
		}
		if next == nil {
			return
		}
		r := next.rec
		// Saved as running before it starts: after a crash, a task that
		// may have run is marked failed, never run twice.
		r.Status, r.StartedAt = statusRunning, millis(time.Now())
		if err := svc.store.save(r); err != nil {
			svc.log.Warn("save task", "err", err)
		}
		svc.queued--
		svc.running++
		ctx, cancel := context.WithCancel(svc.ctx)
		next.cancel = cancel
		svc.wg.Add(1)
		go svc.run(ctx, next)
	}
}

// pruneLocked forgets the oldest ended tasks beyond KeepFinished.
func (svc *Service) pruneLocked() {
	ended := 0
	for _, t := range svc.order {
		if t.rec.ended() {
			ended++
		}
	}
	if ended <= svc.opts.KeepFinished {
		return
	}
	excess := ended - svc.opts.KeepFinished
	kept := svc.order[:0]
	for _, t := range svc.order {
		if excess > 0 && t.rec.ended() {
			excess--
			delete(svc.tasks, t.rec.id())
			if err := svc.store.remove(t.rec.id()); err != nil {
				svc.log.Warn("remove task", "err", err)
			}
			continue
		}
		kept = append(kept, t)
	}
	clear(svc.order[len(kept):])
	svc.order = kept
}

// run is a running task's goroutine.
func (svc *Service) run(ctx context.Context, t *task) {
	defer svc.wg.Done()
	status, err := svc.execute(ctx, t)
	svc.finish(t, status, err)
}

// execute runs t's process until it has exited and its output is in the
// log.
func (svc *Service) execute(ctx context.Context, t *task) (pty.ExitStatus, error) {
	env := proc.Environ(t.rec.Env)
	path, err := proc.LookPath(t.rec.Args[0], env)
	if err != nil {
		return pty.ExitStatus{}, err
	}
	if err := t.log.open(); err != nil {
		return pty.ExitStatus{}, err
	}
	cmd := exec.Command(path)
	cmd.Args = t.rec.Args
	cmd.Dir = svc.workspace
	cmd.Env = env

	var readEnds, writeEnds []*os.File
	closeAll := func(files []*os.File) {
		for _, f := range files {
			_ = f.Close()
		}
	}
	for range 2 {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(readEnds)
			closeAll(writeEnds)
			return pty.ExitStatus{}, fmt.Errorf("tasks: pipe: %w", err)
		}
		readEnds, writeEnds = append(readEnds, r), append(writeEnds, w)
	}
	defer closeAll(readEnds)
	cmd.Stdout, cmd.Stderr = writeEnds[0], writeEnds[1]
	p, err := startProcess(ctx, cmd, svc.opts.KillGrace, svc.stopping)
	closeAll(writeEnds) // the child has its own copies
	if err != nil {
		return pty.ExitStatus{}, err
	}

	svc.mu.Lock()
	t.rec.Pid = p.Pid()
	t.rec.PidStart = processStart(p.Pid())
	if err := svc.store.save(t.rec); err != nil {
		svc.log.Warn("save task", "err", err)
	}
	svc.broadcastLocked(t.rec)
	svc.mu.Unlock()

	var logErr sync.Once
	emit := func(l lines.Line) {
		if err := t.log.append(l); err != nil {
			logErr.Do(func() { svc.log.Warn("task log", "task", t.rec.id(), "err", err) })
		}
	}
	readers := []*lines.Reader{
		lines.NewReader(readEnds[0], api.LogLine_STDOUT, emit, svc.opts.Reader),
		lines.NewReader(readEnds[1], api.LogLine_STDERR, emit, svc.opts.Reader),
	}
	var reading sync.WaitGroup
	for _, r := range readers {
		reading.Add(1)
		go func() {
			defer reading.Done()
			r.Run()
		}()
	}
	<-p.Done()
	for _, r := range readers {
		r.ProcessExited()
	}
	reading.Wait()
	status, _ := p.Wait(context.Background())
	return status, nil
}

// finish records how t ended, completes its log and starts what may run
// next.
func (svc *Service) finish(t *task, status pty.ExitStatus, err error) {
	svc.mu.Lock()
	r := t.rec
	r.EndedAt, r.PidStart = millis(time.Now()), 0
	r.ExitCode = status.Code
	switch {
	case err != nil:
		r.Status, r.Reason, r.ExitCode = statusFailed, err.Error(), -1
	case t.cancelRequested:
		r.Status, r.Reason = statusCanceled, reasonCanceled+" ("+status.String()+")"
	case svc.stoppingLocked():
		r.Status, r.Reason = statusFailed, reasonStopped+" ("+status.String()+")"
	case status.Code == 0 && !status.Signaled():
		r.Status, r.Reason = statusSucceeded, ""
	default:
		r.Status, r.Reason = statusFailed, status.String()
	}
	logErr := t.log.finish()
	r.LogTruncated = t.log.isTruncated()
	if err := svc.store.save(r); err != nil {
		svc.log.Warn("save task", "err", err)
	}
	t.cancel = nil
	svc.running--
	svc.broadcastLocked(r)
	svc.pruneLocked()
	svc.dispatchLocked()
	svc.mu.Unlock()
	close(t.ended)
	if logErr != nil {
		svc.log.Warn("task log", "task", r.id(), "err", logErr)
	}
}

// instance is one tasks channel.
type instance struct {
	svc       *Service
	ch        *channels.Channel
	following bool            // the channel is task:<id>: it streams that task's log
	follow    string          // the id
	ctx       context.Context // ends with Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup // pumps and cancel waiters

	// mu guards the following.
	mu     sync.Mutex
	pumps  map[*channels.Session]context.CancelFunc
	closed bool
}

var (
	_ channels.Attacher       = (*instance)(nil)
	_ channels.Detacher       = (*instance)(nil)
	_ channels.MutationPolicy = (*instance)(nil)
)

// Mutates reports whether cmd changes the queue: read-only sessions may
// list, get and follow tasks, not submit or cancel them.
func (in *instance) Mutates(cmd *api.Command) bool {
	switch cmd.GetBody().(type) {
	case *api.Command_TaskSubmit, *api.Command_TaskCancel:
		return true
	}
	return channels.IsMutation(cmd)
}

func (in *instance) Handle(ctx context.Context, req *channels.Request) (*api.Command, error) {
	switch body := req.Command.Body.(type) {
	case *api.Command_TaskSubmit:
		return nil, in.svc.submit(req, body.TaskSubmit)
	case *api.Command_TaskList:
		in.svc.list(req, body.TaskList.GetStatuses())
		return nil, nil
	case *api.Command_TaskGet:
		return nil, in.svc.get(req, body.TaskGet.GetId())
	case *api.Command_TaskCancel:
		t, err := in.svc.cancelTask(req, body.TaskCancel.GetId())
		if err != nil || t == nil {
			return nil, err
		}
		in.goOwned(func(ctx context.Context) {
			select {
			case <-t.ended:
				in.svc.reply(req, t)
			case <-ctx.Done():
			}
		})
		return nil, nil
	default:
		return nil, channels.Unsupported(req.Command)
	}
}

// goOwned runs fn in a goroutine the instance waits for; fn's context ends
// with the instance.
func (in *instance) goOwned(fn func(ctx context.Context)) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return false
	}
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		fn(in.ctx)
	}()
	return true
}

// Attach joins s; on a task:<id> channel it starts s's pump.
func (in *instance) Attach(s *channels.Session) {
	if !in.following {
		in.ch.Join(s)
		return
	}
	in.svc.mu.Lock()
	t := in.svc.tasks[in.follow]
	in.svc.mu.Unlock()
	if t == nil {
		in.ch.Join(s, &api.Command{Body: &api.Command_Error{Error: noTask(in.follow).Error()}})
		return
	}
	// Lines before the boundary are history for s: fixed here, before s
	// joins, and compared with each line's number by the pump.
	boundary := t.log.lineCount()
	if _, done, _ := t.log.state(); done {
		boundary = math.MaxUint64
	}
	in.ch.Join(s)
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed || in.pumps[s] != nil {
		return
	}
	ctx, cancel := context.WithCancel(in.ctx)
	in.pumps[s] = cancel
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		in.pump(ctx, s, t, boundary)
	}()
}

// pump streams t's log to s: every line in order, then taskEnd.
func (in *instance) pump(ctx context.Context, s *channels.Session, t *task, boundary uint64) {
	lr := &logReader{path: t.log.path}
	defer lr.close()
	id := in.follow
	for {
		size, done, changed := t.log.state()
		for {
			line, ok, err := lr.next(size)
			if err != nil {
				lines.Send(ctx, in.ch, s, &api.Command{Body: &api.Command_Error{Error: err.Error()}})
				return
			}
			if !ok {
				break
			}
			msg := &api.Command{Body: &api.Command_TaskLog{TaskLog: line.Proto(id, line.Seq < boundary)}}
			if !lines.Send(ctx, in.ch, s, msg) {
				return
			}
		}
		if done {
			lines.Send(ctx, in.ch, s, &api.Command{Body: &api.Command_TaskEnd{TaskEnd: in.svc.record(t)}})
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// Detach stops the pump of a session that left.
func (in *instance) Detach(s *channels.Session) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if cancel := in.pumps[s]; cancel != nil {
		cancel()
		delete(in.pumps, s)
	}
}

// Close stops the pumps and waiters and waits for them.
func (in *instance) Close(ctx context.Context) error {
	in.svc.mu.Lock()
	delete(in.svc.instances, in)
	in.svc.mu.Unlock()
	in.mu.Lock()
	in.closed = true
	in.mu.Unlock()
	in.cancel()
	in.wg.Wait()
	return nil
}
