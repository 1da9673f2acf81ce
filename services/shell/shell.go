// Package shell is the `shell` service: an interactive login shell in a
// pseudo-terminal, shared by every session attached to the same channel
// name.
//
// It owns, per channel: the shell process (restarted when it exits), its
// scrollback, the terminal size negotiated among the attached sessions,
// and the grace period during which a shell with no session attached
// keeps running (a page reload must not kill it). It must not decide what
// a run button runs (the run service does) nor run commands without a
// terminal (the exec service does).
//
// On a shell channel:
//   - a joining session first receives what the scrollback holds (1 MiB
//     by default), then live output, with no gap and nothing twice;
//   - `input` is typed into the terminal (refused to read-only sessions by
//     the channel layer);
//   - `resizeTerm{rows, cols}` records the session's size; the terminal
//     takes the smallest rows and the smallest columns among the
//     read-write sessions that sent one, like tmux;
//   - `saneTerm` restores sane modes; `PTYConfig{pipeMode}` switches raw,
//     no-echo mode on or off;
//   - a shell starts in the workspace, or in the directory there that
//     pid1Config chose, with pid1Config's env (see [proc.Defaults]); a
//     change reaches the shells started after it;
//   - when the shell exits a new one is started, and every attached
//     session is told so in the output; shells that keep exiting at once
//     are restarted ever more slowly, up to once every 30 s;
//   - a command with a ref is answered with `ok` (or `error`), one without
//     gets no reply.
//
// Flow control is the pty package's: each session's pump reads its own
// attachment at the pace of the session's write queue; the shell is read
// more slowly only when every attached session is behind, and a session
// that falls too far behind is detached and later resumed (see
// [proc.Console]).
//
// # Goroutines
//
// Each channel has a supervisor goroutine that starts and restarts the
// shell, and one pump per attached session (owned by the console). Close
// stops them and waits for them.
package shell

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/pty"
	"github.com/conman-dev/conman/services"
	"github.com/conman-dev/conman/services/proc"
)

// Name is the service's wire name.
const Name = "shell"

// Defaults for the zero values of Options.
const (
	DefaultGrace       = time.Hour
	DefaultInputWait   = 10 * time.Second
	quickExit          = 5 * time.Second  // a shell that lived less exited "at once"
	maxRestartDelay    = 30 * time.Second // the slowest restart pace
	firstRestartDelay  = 250 * time.Millisecond
	restartLogInterval = time.Minute
)

// Options configures the service. Zero values mean the defaults.
type Options struct {
	// Grace is how long a shell with no session attached keeps running
	// (default 1 h); a negative value ends it with its last session.
	Grace time.Duration
	// Argv is the shell to run; default: $SHELL, else bash, else sh.
	Argv []string
	// ScrollbackBytes, QueueBytes and KillGrace are passed to the pty
	// package (defaults 1 MiB, 1 MiB and 2 s).
	ScrollbackBytes int
	QueueBytes      int
	KillGrace       time.Duration
	// InputWait bounds how long one `input` may wait for a shell that
	// does not read (default 10 s).
	InputWait time.Duration
}

var (
	configMu sync.Mutex
	config   Options
)

// Configure sets the options of shell services built from now on. The
// daemon's command line calls it (for --shell-grace) before building the
// daemon; services.Env carries no per-service settings.
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

// Service makes shell instances.
type Service struct {
	env      services.Env
	opts     Options
	detached prometheus.Counter
	restarts prometheus.Counter
}

// New returns the service for env.
func New(env services.Env, opts Options) (*Service, error) {
	if opts.Grace == 0 {
		opts.Grace = DefaultGrace
	}
	if opts.InputWait <= 0 {
		opts.InputWait = DefaultInputWait
	}
	if len(opts.Argv) == 0 {
		opts.Argv = []string{LoginShell()}
	}
	svc := &Service{
		env:  env,
		opts: opts,
		detached: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conman_shell_detached_total",
			Help: "Shell attachments detached because their session fell too far behind.",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conman_shell_restarts_total",
			Help: "Shells started again after they exited.",
		}),
	}
	if env.Metrics != nil {
		for _, c := range []prometheus.Collector{svc.detached, svc.restarts} {
			if err := env.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("shell metrics: %w", err)
			}
		}
	}
	return svc, nil
}

// LoginShell returns the user's shell: $SHELL if it names an executable,
// else bash, else sh.
func LoginShell() string {
	if sh := os.Getenv("SHELL"); sh != "" {
		if path, err := exec.LookPath(sh); err == nil {
			return path
		}
	}
	for _, name := range []string{"bash", "sh"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	return "/bin/sh"
}

// Open starts the channel's shell. A shell that cannot start is reported
// in the output and retried; the channel opens regardless.
func (svc *Service) Open(ch *channels.Channel) (channels.Handler, error) {
	ctx, cancel := context.WithCancel(context.Background())
	sh := &instance{
		svc:     svc,
		ch:      ch,
		log:     ch.Logger(),
		ctx:     ctx,
		cancel:  cancel,
		console: proc.NewConsole(ch, proc.ConsoleOptions{OnDetached: svc.detached.Inc}),
		done:    make(chan struct{}),
	}
	// The first shell starts here, so that input sent right after the
	// channel opens has somewhere to go.
	term, err := sh.start()
	if err == nil {
		sh.console.Replace(term, "")
	}
	go sh.supervise(term, err)
	return sh, nil
}

// instance is one shell channel.
type instance struct {
	svc     *Service
	ch      *channels.Channel
	log     *slog.Logger
	ctx     context.Context // ends with Close
	cancel  context.CancelFunc
	console *proc.Console
	done    chan struct{} // closed when supervise returns
}

var (
	_ channels.Attacher = (*instance)(nil)
	_ channels.Detacher = (*instance)(nil)
	_ channels.Lingerer = (*instance)(nil)
)

func (sh *instance) Attach(s *channels.Session) { sh.console.Attach(s) }
func (sh *instance) Detach(s *channels.Session) { sh.console.Detach(s) }
func (sh *instance) Linger() time.Duration      { return sh.svc.opts.Grace }

func (sh *instance) start() (*pty.Session, error) {
	rows, cols := sh.console.Size()
	return proc.StartPTY(sh.ctx, pty.Options{
		Argv:            sh.svc.opts.Argv,
		Dir:             proc.Dir(sh.svc.env.Workspace),
		Env:             proc.TerminalEnviron(nil),
		Rows:            rows,
		Cols:            cols,
		ScrollbackBytes: sh.svc.opts.ScrollbackBytes,
		QueueBytes:      sh.svc.opts.QueueBytes,
		KillGrace:       sh.svc.opts.KillGrace,
	})
}

// supervise keeps a shell running until the instance closes. It starts
// with the first shell Open started (or failed to start).
func (sh *instance) supervise(term *pty.Session, err error) {
	defer close(sh.done)
	banner := ""
	quickExits := 0
	var lastLog time.Time
	started := time.Now()
	for {
		if err != nil {
			if time.Since(lastLog) > restartLogInterval {
				sh.log.Warn("shell did not start", "argv", sh.svc.opts.Argv, "err", err)
				lastLog = time.Now()
			}
			quickExits++
			if !sh.pause(restartDelay(quickExits)) {
				return
			}
			banner = fmt.Sprintf("\r\n[conman: the shell did not start: %v]\r\n", err)
		} else {
			select {
			case <-term.Done():
			case <-sh.ctx.Done():
				return // Close closes the console and with it the shell
			}
			status, _ := term.Wait(sh.ctx)
			sh.svc.restarts.Inc()
			banner = fmt.Sprintf("\r\n[conman: the shell exited (%s); a new one is starting]\r\n", status)
			if time.Since(started) < quickExit {
				quickExits++
			} else {
				quickExits = 0
			}
			if !sh.pause(restartDelay(quickExits)) {
				return
			}
		}
		started = time.Now()
		term, err = sh.start()
		if err == nil && !sh.console.Replace(term, banner) {
			return
		}
	}
}

// restartDelay is how long to wait before the next start after n quick
// exits in a row: none after the first, then doubling up to the maximum.
func restartDelay(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	d := firstRestartDelay << min(n-2, 16)
	return min(d, maxRestartDelay)
}

// pause waits d; it reports false when the instance closes first.
func (sh *instance) pause(d time.Duration) bool {
	if d <= 0 {
		return sh.ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-sh.ctx.Done():
		return false
	}
}

func (sh *instance) Handle(ctx context.Context, req *channels.Request) (*api.Command, error) {
	var err error
	switch body := req.Command.Body.(type) {
	case *api.Command_Input:
		ictx, cancel := context.WithTimeout(ctx, sh.svc.opts.InputWait)
		err = sh.console.Input(ictx, body.Input)
		cancel()
	case *api.Command_ResizeTerm:
		err = sh.console.Resize(req.Session, body.ResizeTerm.GetRows(), body.ResizeTerm.GetCols())
	case *api.Command_SaneTerm:
		err = sh.console.Sane()
	case *api.Command_PTYConfig:
		err = sh.console.SetPipeMode(body.PTYConfig.GetPipeMode())
	default:
		return nil, channels.Unsupported(req.Command)
	}
	return ack(req, err)
}

// ack answers a fire-and-forget command only when it carried a ref.
func ack(req *channels.Request, err error) (*api.Command, error) {
	if req.Command.Ref == "" {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}}, nil
}

// Close stops the shell (SIGHUP, SIGTERM, then SIGKILL after the grace)
// and waits for the supervisor and the pumps.
func (sh *instance) Close(ctx context.Context) error {
	sh.cancel()
	sh.console.Close()
	<-sh.done
	return nil
}
