// Package exec is the `exec` service: it runs commands without a terminal
// in the workspace and streams their output.
//
// It owns the processes it starts for a channel, from start to reaping,
// and the order in which the channel's requests run. It must not start a
// shell unless the command asks for one (args are run as given), and it
// must not hand the daemon's own secrets to the processes it starts.
//
// An `exec{args, env, blocking, lifecycle, splitStderr}` request:
//   - runs args[0] (looked up in the PATH of the process's environment)
//     with args in the workspace (or the directory in it that pid1Config
//     chose, see [proc.Defaults]), with the daemon's environment minus its
//     secrets (see [proc.IsSecret]), plus pid1Config's env, plus env;
//   - sends the requesting session `state Running`, the output as
//     `output` messages (stdout and stderr together, or stderr apart as
//     `stderr` messages with splitStderr), `state Stopped`, and finally
//     `ok` for exit status 0 or `error "exit status N"` / `error "signal:
//     killed"`, with the request's ref, after the last byte of output;
//   - with blocking, lifecycle BLOCKING or lifecycle STDIN waits for the
//     channel's earlier such requests to finish: they run one at a time,
//     in order. Other requests run at once, side by side;
//   - with lifecycle STDIN, the `input` the channel receives goes to the
//     process's stdin (to the oldest such request still running or
//     queued); an empty `input` closes its stdin. Other processes read an
//     empty stdin.
//
// Every process leads its own process group. Closing the channel (an
// anonymous channel closes when its session leaves) stops every group it
// started: SIGTERM, then SIGKILL after the grace; a session that leaves a
// named channel has its own requests stopped the same way.
//
// Output is read at the pace of the requesting session's write queue: a
// session that reads slowly leaves the pipe full, so the process blocks in
// write; nothing grows in memory.
//
// An unknown command fails as `error "exec: \"x\": executable file not
// found in $PATH"`, empty args as `error "exec: no command given"`; a
// read-only session is refused every exec by the channel layer.
//
// # Goroutines
//
// Each request runs in a goroutine of its own (two more read stdout and
// stderr apart); the instance waits for all of them in Close.
package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/pty"
	"github.com/conman-dev/conman/services"
	"github.com/conman-dev/conman/services/proc"
)

// Name is the service's wire name.
const Name = "exec"

// Defaults for the zero values of Options.
const (
	DefaultKillGrace    = 2 * time.Second
	DefaultDrainTimeout = 500 * time.Millisecond
	DefaultReadBytes    = 64 << 10
	DefaultPipeBytes    = 256 << 10
	DefaultInputWait    = 10 * time.Second
)

// Options configures the service. Zero values mean the defaults.
type Options struct {
	// KillGrace is the time between SIGTERM and SIGKILL when a process
	// group is stopped (default 2 s).
	KillGrace time.Duration
	// DrainTimeout bounds the wait for more output once the process has
	// exited, while processes that left its group hold its output open
	// (default 500 ms).
	DrainTimeout time.Duration
	// ReadBytes is the most output read, and sent, at once (default
	// 64 KiB).
	ReadBytes int
	// PipeBytes is the capacity asked for the output pipes (default
	// 256 KiB; the kernel may give less).
	PipeBytes int
	// InputWait bounds how long one `input` may wait for a process that
	// does not read its stdin (default 10 s).
	InputWait time.Duration
}

func (o *Options) setDefaults() {
	if o.KillGrace <= 0 {
		o.KillGrace = DefaultKillGrace
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.ReadBytes <= 0 {
		o.ReadBytes = DefaultReadBytes
	}
	if o.PipeBytes <= 0 {
		o.PipeBytes = DefaultPipeBytes
	}
	if o.InputWait <= 0 {
		o.InputWait = DefaultInputWait
	}
}

func init() {
	services.Register(Name, func(env services.Env) (channels.Service, error) {
		return New(env, Options{}), nil
	})
}

// Errors of the service.
var (
	errNoCommand = errors.New("exec: no command given")
	errCanceled  = errors.New("exec: canceled")
	errNoStdin   = errors.New("exec: no process reads input on this channel")
)

// Service makes exec instances.
type Service struct {
	workspace string
	opts      Options
}

// New returns the service for env.
func New(env services.Env, opts Options) *Service {
	opts.setDefaults()
	return &Service{workspace: env.Workspace, opts: opts}
}

// Open returns a new instance for ch.
func (svc *Service) Open(ch *channels.Channel) (channels.Handler, error) {
	ctx, cancel := context.WithCancel(context.Background())
	return &instance{svc: svc, ch: ch, ctx: ctx, cancel: cancel, jobs: make(map[*job]struct{})}, nil
}

// instance is one exec channel.
type instance struct {
	svc    *Service
	ch     *channels.Channel
	ctx    context.Context // ends with Close: every job ends with it
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per job goroutine

	// mu guards the following.
	mu         sync.Mutex
	jobs       map[*job]struct{} // not yet finished
	lastSerial *job              // the latest request that runs one at a time
	stdinJobs  []*job            // unfinished STDIN requests, oldest first
	closed     bool
}

var _ channels.Detacher = (*instance)(nil)

// job is one exec request.
type job struct {
	req      *channels.Request
	args     []string
	env      []string
	split    bool
	ctx      context.Context
	cancel   context.CancelFunc
	after    *job          // a serial job waits for this one to finish first
	finished chan struct{} // closed when the job's goroutine returns

	// Set for STDIN requests: the process reads stdinR; input is written
	// to stdinW, one input at a time (stdinMu). Closing stdinW may happen
	// during a write: closing a pollable file wakes the pending write.
	stdinR         *os.File
	stdinW         *os.File
	stdinMu        sync.Mutex
	stdinCloseOnce sync.Once
}

func (in *instance) Handle(ctx context.Context, req *channels.Request) (*api.Command, error) {
	switch body := req.Command.Body.(type) {
	case *api.Command_Exec:
		return nil, in.exec(req, body.Exec)
	case *api.Command_Input:
		err := in.input(ctx, body.Input)
		if req.Command.Ref == "" {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}}, nil
	default:
		return nil, channels.Unsupported(req.Command)
	}
}

// exec queues one request; its goroutine replies.
func (in *instance) exec(req *channels.Request, e *api.Exec) error {
	if len(e.GetArgs()) == 0 {
		return errNoCommand
	}
	env := proc.Environ(e.GetEnv())
	if _, err := proc.LookPath(e.Args[0], env); err != nil {
		return err
	}
	stdin := e.GetLifecycle() == api.Exec_STDIN
	serial := e.GetBlocking() || e.GetLifecycle() == api.Exec_BLOCKING || stdin
	j := &job{req: req, args: e.Args, env: env, split: e.GetSplitStderr(), finished: make(chan struct{})}
	if stdin {
		r, w, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("exec: stdin: %w", err)
		}
		j.stdinR, j.stdinW = r, w
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		if stdin {
			j.stdinR.Close()
			j.stdinW.Close()
		}
		return errCanceled
	}
	j.ctx, j.cancel = context.WithCancel(in.ctx)
	if serial {
		j.after = in.lastSerial
		in.lastSerial = j
	}
	if stdin {
		in.stdinJobs = append(in.stdinJobs, j)
	}
	in.jobs[j] = struct{}{}
	in.wg.Add(1)
	go in.run(j)
	return nil
}

// input writes text to the stdin of the oldest unfinished STDIN request;
// empty text closes it.
func (in *instance) input(ctx context.Context, text string) error {
	in.mu.Lock()
	var j *job
	if len(in.stdinJobs) > 0 {
		j = in.stdinJobs[0]
	}
	in.mu.Unlock()
	if j == nil {
		return errNoStdin
	}
	if text == "" {
		j.closeStdin()
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, in.svc.opts.InputWait)
	defer cancel()
	return j.writeStdin(ctx, text)
}

func (j *job) writeStdin(ctx context.Context, text string) error {
	j.stdinMu.Lock()
	defer j.stdinMu.Unlock()
	deadline, _ := ctx.Deadline()
	_ = j.stdinW.SetWriteDeadline(deadline)
	if _, err := io.WriteString(j.stdinW, text); err != nil {
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return errors.New("exec: the process does not read its input")
		case errors.Is(err, os.ErrClosed):
			return errors.New("exec: stdin is closed")
		}
		return fmt.Errorf("exec: stdin: %w", err)
	}
	return nil
}

// closeStdin closes the writing end of a STDIN request's stdin: the
// process reads end-of-file once it has read what was written.
func (j *job) closeStdin() {
	if j.stdinW != nil {
		j.stdinCloseOnce.Do(func() { _ = j.stdinW.Close() })
	}
}

// Detach stops the requests of a session that left a named channel.
func (in *instance) Detach(s *channels.Session) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for j := range in.jobs {
		if j.req.Session == s {
			j.cancel()
		}
	}
}

// Close stops every process group of the channel and waits for the jobs.
func (in *instance) Close(ctx context.Context) error {
	in.mu.Lock()
	in.closed = true
	in.mu.Unlock()
	in.cancel()
	done := make(chan struct{})
	go func() {
		in.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		<-done // the groups are being killed; it does not take long
		return fmt.Errorf("exec: close: %w", ctx.Err())
	}
}

// finish forgets j.
func (in *instance) finish(j *job) {
	in.mu.Lock()
	defer in.mu.Unlock()
	delete(in.jobs, j)
	if in.lastSerial == j {
		in.lastSerial = nil
	}
	for i, other := range in.stdinJobs {
		if other == j {
			in.stdinJobs = append(in.stdinJobs[:i], in.stdinJobs[i+1:]...)
			break
		}
	}
}

// run is a job's goroutine: it waits for its turn, runs the process,
// streams its output and replies.
func (in *instance) run(j *job) {
	defer in.wg.Done()
	defer close(j.finished)
	defer in.finish(j)
	defer j.cancel()
	defer j.closeStdin()
	if j.stdinR != nil {
		defer j.stdinR.Close()
	}
	if j.after != nil {
		select {
		case <-j.after.finished:
		case <-j.ctx.Done():
			j.req.Fail(errCanceled)
			return
		}
	}
	status, err := in.runProcess(j)
	switch {
	case err != nil:
		j.req.Fail(err)
	case status.Code == 0 && !status.Signaled():
		j.req.Reply(&api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}})
	default:
		j.req.Fail(errors.New(status.String()))
	}
}

// runProcess starts the process and streams its output until it has
// exited and its output is drained.
func (in *instance) runProcess(j *job) (pty.ExitStatus, error) {
	path, err := proc.LookPath(j.args[0], j.env)
	if err != nil {
		return pty.ExitStatus{}, err
	}
	cmd := exec.Command(path)
	cmd.Args = j.args
	cmd.Dir = proc.Dir(in.svc.workspace)
	cmd.Env = j.env
	if j.stdinR != nil {
		cmd.Stdin = j.stdinR
	}

	var streams []*stream
	var childEnds []*os.File
	closeAll := func() {
		for _, f := range childEnds {
			_ = f.Close()
		}
		for _, s := range streams {
			_ = s.r.Close()
		}
	}
	newStream := func(stderr bool) (*os.File, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("exec: pipe: %w", err)
		}
		setPipeSize(w, in.svc.opts.PipeBytes)
		streams = append(streams, &stream{r: r, stderr: stderr})
		childEnds = append(childEnds, w)
		return w, nil
	}
	out, err := newStream(false)
	if err != nil {
		closeAll()
		return pty.ExitStatus{}, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	if j.split {
		if cmd.Stderr, err = newStream(true); err != nil {
			closeAll()
			return pty.ExitStatus{}, err
		}
	}

	p, err := proc.StartProcess(j.ctx, cmd, in.svc.opts.KillGrace)
	for _, f := range childEnds {
		_ = f.Close() // the child has its own copies
	}
	childEnds = nil
	if err != nil {
		closeAll()
		return pty.ExitStatus{}, err
	}
	if j.stdinR != nil {
		_ = j.stdinR.Close() // likewise
	}
	defer closeAll()

	in.sendTo(j, &api.Command{Body: &api.Command_State{State: api.State_Running}})

	var exited atomic.Bool
	var readers sync.WaitGroup
	for _, st := range streams {
		readers.Add(1)
		go func() {
			defer readers.Done()
			in.stream(j, st, &exited)
		}()
	}
	<-p.Done()
	// Processes that left the group may hold the pipes open: stop
	// waiting for them once they are silent for the drain timeout.
	exited.Store(true)
	for _, st := range streams {
		_ = st.r.SetReadDeadline(time.Now().Add(in.svc.opts.DrainTimeout))
	}
	readers.Wait()
	st, _ := p.Wait(context.Background())
	in.sendTo(j, &api.Command{Body: &api.Command_State{State: api.State_Stopped}})
	return st, nil
}

// stream is one output pipe of a process.
type stream struct {
	r      *os.File
	stderr bool
}

// stream copies one pipe to the requesting session at the pace of its
// write queue, until the pipe's end (or, once the process has exited,
// DrainTimeout of silence), or until the job ends.
func (in *instance) stream(j *job, st *stream, exited *atomic.Bool) {
	buf := make([]byte, in.svc.opts.ReadBytes)
	var dec proc.TextDecoder
	send := func(text string) bool {
		if text == "" {
			return true
		}
		cmd := &api.Command{Body: &api.Command_Output{Output: text}}
		if st.stderr {
			cmd = &api.Command{Body: &api.Command_Stderr{Stderr: text}}
		}
		return in.paced(j, cmd)
	}
	for {
		if exited.Load() {
			_ = st.r.SetReadDeadline(time.Now().Add(in.svc.opts.DrainTimeout))
		}
		n, err := st.r.Read(buf)
		if n > 0 && !send(dec.Decode(buf[:n])) {
			return
		}
		if err != nil {
			send(dec.Flush())
			return
		}
	}
}

// paced waits until the requesting session's queue is at most half full,
// then sends cmd to it. It reports false when the job or the session has
// ended.
func (in *instance) paced(j *job, cmd *api.Command) bool {
	s := j.req.Session
	if err := s.WaitQueueBelow(j.ctx, s.QueueLimit()/2); err != nil {
		return false
	}
	in.ch.SendTo(s, cmd)
	return true
}

// sendTo sends cmd to the requesting session without pacing (small state
// messages).
func (in *instance) sendTo(j *job, cmd *api.Command) {
	in.ch.SendTo(j.req.Session, cmd)
}

// setPipeSize asks for a larger pipe: fewer wake-ups per megabyte.
func setPipeSize(f *os.File, size int) {
	if conn, err := f.SyscallConn(); err == nil {
		_ = conn.Control(func(fd uintptr) {
			_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size)
		})
	}
}
