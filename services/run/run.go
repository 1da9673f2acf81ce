// Package run is the run button: the services `shellrun2` (whose channel
// clients name `shellrunner`), `run2` and `interp2`, which behave alike.
//
// It owns, per channel, the project's run command while it runs in a
// pseudo-terminal, the output of the latest run (its scrollback), and the
// Running/Stopped state the attached sessions are shown. It must not keep
// a process running after `clear` or after the channel ends, and it does
// not restart a program that exited on its own.
//
// On a run channel:
//   - a joining session first receives `state` (Running or Stopped), then
//     what the scrollback of the latest run holds, then live output; every
//     later start and end of a run is sent as `state` too, in order with
//     the output;
//   - `runMain` starts the project's run command (see [CommandFor]: the
//     language pid1Config set is preferred), in the workspace or the
//     directory pid1Config chose there, with pid1Config's env; while a
//     run is going it is stopped first (SIGHUP, SIGTERM, then SIGKILL after
//     the grace) and started again. It is answered `ok` once the new run
//     has started, or `error` saying why nothing could be run;
//   - `clear` stops the run the same way and answers `ok` once it has
//     ended;
//   - `input`, `resizeTerm`, `saneTerm` and `PTYConfig` act on the
//     terminal as on a shell channel (see the shell service);
//   - a named channel with no session attached keeps its run going for a
//     grace period (1 h by default), so that a page reload does not stop
//     a running server.
//
// Output flow control is [proc.Console]'s, the same as the shell's.
//
// # Goroutines
//
// The console owns one pump goroutine per attached session; commands run
// on the channel's goroutine. Close stops the run and waits for the pumps.
package run

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/pty"
	"github.com/conman-dev/conman/services"
	"github.com/conman-dev/conman/services/proc"
)

// Names are the wire names of the service.
var Names = []string{"shellrun2", "run2", "interp2"}

// Defaults for the zero values of Options.
const (
	DefaultGrace     = time.Hour
	DefaultInputWait = 10 * time.Second
	DefaultStopWait  = 30 * time.Second
)

// Options configures the service. Zero values mean the defaults.
type Options struct {
	// Grace is how long a named run channel with no session attached
	// keeps its run going (default 1 h); negative ends it with its last
	// session.
	Grace time.Duration
	// ScrollbackBytes, QueueBytes and KillGrace are passed to the pty
	// package (defaults 1 MiB, 1 MiB and 2 s).
	ScrollbackBytes int
	QueueBytes      int
	KillGrace       time.Duration
	// InputWait bounds how long one `input` may wait for a program that
	// does not read (default 10 s).
	InputWait time.Duration
	// StopWait bounds how long runMain and clear wait for a run to end
	// (default 30 s; the group is SIGKILLed after KillGrace anyway).
	StopWait time.Duration
}

func init() {
	for _, name := range Names {
		services.Register(name, func(env services.Env) (channels.Service, error) {
			svc := New(env, Options{})
			detached := prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "conman_run_detached_total",
				Help: "Run-output attachments detached because their session fell too far behind.",
			}, []string{"service"})
			if env.Metrics != nil {
				// The three names share one family in each registry.
				if err := env.Metrics.Register(detached); err != nil {
					var already prometheus.AlreadyRegisteredError
					if !errors.As(err, &already) {
						return nil, fmt.Errorf("run metrics: %w", err)
					}
					detached = already.ExistingCollector.(*prometheus.CounterVec)
				}
			}
			svc.detached = detached.WithLabelValues(name)
			return svc, nil
		})
	}
}

// Service makes run instances.
type Service struct {
	workspace string
	opts      Options
	detached  prometheus.Counter // may be nil
}

// New returns the service for env.
func New(env services.Env, opts Options) *Service {
	if opts.Grace == 0 {
		opts.Grace = DefaultGrace
	}
	if opts.InputWait <= 0 {
		opts.InputWait = DefaultInputWait
	}
	if opts.StopWait <= 0 {
		opts.StopWait = DefaultStopWait
	}
	return &Service{workspace: env.Workspace, opts: opts}
}

// Open returns a new, stopped run channel.
func (svc *Service) Open(ch *channels.Channel) (channels.Handler, error) {
	ctx, cancel := context.WithCancel(context.Background())
	opts := proc.ConsoleOptions{States: true}
	if svc.detached != nil {
		opts.OnDetached = svc.detached.Inc
	}
	return &instance{svc: svc, ctx: ctx, cancel: cancel, console: proc.NewConsole(ch, opts)}, nil
}

// instance is one run channel. Its commands run on the channel's
// goroutine, one at a time, so starting and stopping need no lock of
// their own; the console guards what the pumps share.
type instance struct {
	svc     *Service
	ctx     context.Context // ends with Close; bounds every run
	cancel  context.CancelFunc
	console *proc.Console
}

var (
	_ channels.Attacher = (*instance)(nil)
	_ channels.Detacher = (*instance)(nil)
	_ channels.Lingerer = (*instance)(nil)
)

func (r *instance) Attach(s *channels.Session) { r.console.Attach(s) }
func (r *instance) Detach(s *channels.Session) { r.console.Detach(s) }
func (r *instance) Linger() time.Duration      { return r.svc.opts.Grace }

func (r *instance) Handle(ctx context.Context, req *channels.Request) (*api.Command, error) {
	ok := &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}}
	var err error
	switch body := req.Command.Body.(type) {
	case *api.Command_RunMain:
		if err := r.runMain(ctx); err != nil {
			return nil, err
		}
		return ok, nil
	case *api.Command_Clear:
		if err := r.stop(ctx); err != nil {
			return nil, err
		}
		return ok, nil
	case *api.Command_Input:
		ictx, cancel := context.WithTimeout(ctx, r.svc.opts.InputWait)
		err = r.console.Input(ictx, body.Input)
		cancel()
	case *api.Command_ResizeTerm:
		err = r.console.Resize(req.Session, body.ResizeTerm.GetRows(), body.ResizeTerm.GetCols())
	case *api.Command_SaneTerm:
		err = r.console.Sane()
	case *api.Command_PTYConfig:
		err = r.console.SetPipeMode(body.PTYConfig.GetPipeMode())
	default:
		return nil, channels.Unsupported(req.Command)
	}
	if req.Command.Ref == "" {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ok, nil
}

// runMain stops the current run, if any, and starts the run command.
func (r *instance) runMain(ctx context.Context) error {
	argv, err := CommandFor(r.svc.workspace, proc.CurrentDefaults().Language)
	if err != nil {
		return err
	}
	if err := r.stop(ctx); err != nil {
		return err
	}
	rows, cols := r.console.Size()
	term, err := proc.StartPTY(r.ctx, pty.Options{
		Argv:            argv,
		Dir:             proc.Dir(r.svc.workspace),
		Env:             proc.TerminalEnviron(nil),
		Rows:            rows,
		Cols:            cols,
		ScrollbackBytes: r.svc.opts.ScrollbackBytes,
		QueueBytes:      r.svc.opts.QueueBytes,
		KillGrace:       r.svc.opts.KillGrace,
	})
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if !r.console.Replace(term, "") {
		return errors.New("run: the channel is closing")
	}
	return nil
}

// stop ends the current run and waits until its output is complete.
func (r *instance) stop(ctx context.Context) error {
	term := r.console.Current()
	if term == nil {
		return nil
	}
	term.Kill()
	ctx, cancel := context.WithTimeout(ctx, r.svc.opts.StopWait)
	defer cancel()
	select {
	case <-term.Done():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("run: stop: %w", ctx.Err())
	}
}

// Close stops the run and waits for the pumps.
func (r *instance) Close(ctx context.Context) error {
	r.cancel()
	r.console.Close()
	return nil
}
