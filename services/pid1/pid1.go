// Package pid1 serves pid1Config: an administrator changes, at run time,
// the working directory, environment and language of the workspace
// processes the daemon starts from then on.
//
// pid1Config{cwd, env, language} is served on channel 0 and on channels of
// the `pid1` service alike. It replaces the settings as a whole (a field
// left empty returns to the daemon's own behaviour; an empty pid1Config
// restores it entirely) and is answered `ok` once they apply:
//
//   - cwd is a directory of the workspace, relative to its root (a leading
//     "/" means the root, as everywhere in the protocol); it must exist.
//     exec, the shell and the run button start their processes there
//     instead of at the root (tasks and supervised services start at the
//     root; contained tests in their scratch directory). Errors read
//     `pid1Config: cwd "x": ...` with the workspace's texts ("no such file
//     or directory", "not a directory", refusals of paths that leave the
//     workspace);
//   - env is set on top of the daemon's environment (minus its secrets) and
//     under the env of each request (exec{env}, taskSubmit{env}, ...), for
//     every process started through [proc.Environ]: exec, shell, run,
//     tasks, supervised services, contained tests (not the package
//     managers of packager3, which build their own environment);
//   - language ("go", "python", "nodejs", or the names .replit uses for
//     them, such as "python3" or "golang") is preferred where a service
//     must pick one: the run command when .replit has none, and the test
//     runner of contained tests.
//
// Processes already running keep what they started with; a shell picks
// the change up when it is next started.
//
// Only sessions whose token carries the role "admin" may send it; others,
// and read-only sessions, are answered `error "permission denied"`.
//
// The settings live in [proc.Defaults], process-wide; the package owns
// nothing else and never imports another service. When the daemon stops,
// the settings it changed are reset.
package pid1

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services"
	"github.com/conman-dev/conman/services/proc"
	"github.com/conman-dev/conman/services/workspace"
)

// Name is the wire name of the service.
const Name = "pid1"

// AdminRole is the token role pid1Config needs.
const AdminRole = "admin"

func init() {
	services.Register(Name, func(env services.Env) (channels.Service, error) {
		return New(env)
	})
}

// Service serves pid1Config for one daemon.
type Service struct {
	fs      *workspace.FS
	env     services.Env
	changed atomic.Bool // the defaults were set through this service
}

var (
	_ channels.Service = (*Service)(nil)
	_ services.Stopper = (*Service)(nil)
)

// New builds the service and registers pid1Config on channel 0 with
// env.Hub (when there is one).
func New(env services.Env) (*Service, error) {
	fsys, err := workspace.Open(workspace.Options{Root: env.Workspace, DataDir: env.DataDir})
	if err != nil {
		return nil, fmt.Errorf("pid1: %w", err)
	}
	svc := &Service{fs: fsys, env: env}
	if env.Hub != nil {
		env.Hub.HandleChannel0("pid1Config", svc.handle0)
	}
	return svc, nil
}

// Stop resets the defaults when this service changed them, and releases
// the workspace.
func (svc *Service) Stop(context.Context) error {
	if svc.changed.Load() {
		_ = proc.SetDefaults(proc.Defaults{})
	}
	return svc.fs.Close()
}

// Open starts a pid1 channel.
func (svc *Service) Open(*channels.Channel) (channels.Handler, error) {
	return handler{svc}, nil
}

type handler struct{ svc *Service }

func (h handler) Handle(_ context.Context, req *channels.Request) (*api.Command, error) {
	return h.svc.serve(req.Session, req.Command)
}

func (handler) Close(context.Context) error { return nil }

// handle0 serves pid1Config on channel 0.
func (svc *Service) handle0(_ context.Context, s *channels.Session, cmd *api.Command) (*api.Command, error) {
	return svc.serve(s, cmd)
}

func (svc *Service) serve(s *channels.Session, cmd *api.Command) (*api.Command, error) {
	body, ok := cmd.Body.(*api.Command_Pid1Config)
	if !ok {
		return nil, channels.Unsupported(cmd)
	}
	if s.ReadOnly() || !s.Identity().HasRole(AdminRole) {
		return nil, channels.ErrPermissionDenied
	}
	if err := svc.configure(body.Pid1Config); err != nil {
		return nil, fmt.Errorf("pid1Config: %w", err)
	}
	log := svc.env.Logger
	if log != nil {
		c := body.Pid1Config
		names := slices.Sorted(maps.Keys(c.GetEnv()))
		// Values stay out of the log: they may be credentials.
		log.Info("process defaults changed", "session", s.ID(), "user", s.Identity().UserName,
			"cwd", c.GetCwd(), "language", c.GetLanguage(), "env", names)
	}
	return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}}, nil
}

// configure checks c and makes it the process defaults.
func (svc *Service) configure(c *api.Pid1Config) error {
	cwd := c.GetCwd()
	if cwd != "" {
		rel, err := svc.fs.Resolve(cwd)
		if err != nil {
			return fmt.Errorf("cwd %q: %w", cwd, reason(err))
		}
		e, exists, err := svc.fs.Stat(cwd)
		switch {
		case err != nil:
			return fmt.Errorf("cwd %q: %w", cwd, reason(err))
		case !exists:
			return fmt.Errorf("cwd %q: no such file or directory", cwd)
		case !e.Dir:
			return fmt.Errorf("cwd %q: not a directory", cwd)
		}
		// The resolved path: links inside the workspace are followed
		// once, here, so a process starts where the check looked.
		cwd = rel
	}
	if err := proc.SetDefaults(proc.Defaults{Cwd: cwd, Env: c.GetEnv(), Language: c.GetLanguage()}); err != nil {
		return err
	}
	svc.changed.Store(true)
	return nil
}

// reason is the reason of a workspace error, without its op and path.
func reason(err error) error {
	var we *workspace.Error
	if errors.As(err, &we) {
		return we.Err
	}
	return err
}
