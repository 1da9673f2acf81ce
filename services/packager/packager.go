// Package packager is the packager3 service: searching registries, reading
// package information, listing a project's dependencies, and adding,
// removing and installing packages with the project's own package manager.
//
// On a packager3 channel:
//
//   - packageSearch{query} → packageSearchResp{results}: at most 20, best
//     match first;
//   - packageInfo{pkg{name}} → packageInfoResp{pkg} with what the registry
//     says about the latest version;
//   - packageListSpecfile{} → packageListSpecfileResp{pkgs}: what the
//     specfile lists, with specs;
//   - packageAdd{pkgs}, packageRemove{pkgs}, packageInstall{} and
//     ensurePackages{install} (install what the specfile lists; without
//     install it only checks the specfile can be read) are mutations. Each
//     streams `state Running`, an `output` line "--> <command>" before every
//     tool it runs, the tool's combined output (complete lines at once, a
//     partial line within 100 ms), `state Stopped`, and finally `ok` or
//     `error "<reason>"` carrying the request's ref. Streamed messages go
//     to every session on the channel and carry no ref.
//
// Mutations run one at a time per workspace, whichever channel sent them,
// in the order they arrived; the others wait their turn. Read-only
// sessions are refused mutations by the channel layer ("permission
// denied"). Names and specs are checked before anything runs; tools never
// run through a shell, get "--" before operands, and run in their own
// process group, which is killed when the requesting channel ends or the
// daemon stops.
//
// The language comes from CONMAN_PACKAGER_LANGUAGE, else .replit's
// [packager] language, else detection from the workspace's files (see
// detect.go and docs/packages.md). Each language sits behind
// [backend.Backend]: nodejs-npm, go, python-pip and system-apt.
//
// The service owns no state of its own on disk; it changes the workspace
// only through the package managers and the specfiles they keep. It never
// imports another service.
package packager

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services"
	"github.com/conman-dev/conman/services/packager/apt"
	"github.com/conman-dev/conman/services/packager/backend"
	"github.com/conman-dev/conman/services/packager/golang"
	"github.com/conman-dev/conman/services/packager/nodejs"
	"github.com/conman-dev/conman/services/packager/python"
)

// Name is the service's wire name.
const Name = "packager3"

func init() {
	services.Register(Name, func(env services.Env) (channels.Service, error) {
		return New(env, OptionsFromEnv(os.Getenv))
	})
}

// Environment variables read by [OptionsFromEnv].
const (
	EnvLanguage     = "CONMAN_PACKAGER_LANGUAGE"
	EnvAPT          = "CONMAN_PACKAGER_APT"
	EnvNPMRegistry  = "CONMAN_NPM_REGISTRY"
	EnvGoProxy      = "CONMAN_GOPROXY"
	EnvPipIndex     = "CONMAN_PIP_INDEX"
	EnvPipFindLinks = "CONMAN_PIP_FIND_LINKS"
	EnvPython       = "CONMAN_PYTHON"
)

// Options configures a [Service]. Zero values mean the defaults.
type Options struct {
	// Language, when set, is the language for every request, whatever
	// .replit or the workspace's files say.
	Language string
	// APT allows system-apt to install and remove packages; the daemon
	// must also run as root.
	APT bool
	// NPMRegistry is the npm registry's URL (default: npm's own setting
	// for npm, nodejs.DefaultRegistry for lookups).
	NPMRegistry string
	// GoProxy is GOPROXY for the go command and lookups (default: the
	// environment's GOPROXY, else golang.DefaultProxy).
	GoProxy string
	// PipIndex is the package index URL, or "off" for none (default:
	// PIP_INDEX_URL, else python.DefaultIndex).
	PipIndex string
	// PipFindLinks is given to pip as --find-links.
	PipFindLinks string
	// Python is the interpreter used without a .venv (default python3).
	Python string
	// Environ is the tools' environment (default os.Environ() at New).
	Environ []string
}

// OptionsFromEnv reads the options from the environment variables above.
func OptionsFromEnv(getenv func(string) string) Options {
	return Options{
		Language:     getenv(EnvLanguage),
		APT:          getenv(EnvAPT) == "1",
		NPMRegistry:  getenv(EnvNPMRegistry),
		GoProxy:      getenv(EnvGoProxy),
		PipIndex:     getenv(EnvPipIndex),
		PipFindLinks: getenv(EnvPipFindLinks),
		Python:       getenv(EnvPython),
	}
}

// Service is the packager of one workspace.
type Service struct {
	workspace string
	log       *slog.Logger
	backends  []backend.Backend
	language  string // the configured override, normalised
	queue     *queue
	closeHTTP func()
	logs      *logLimiter

	// mu guards the following.
	mu         sync.Mutex
	lastChoice string // the last detection logged
}

var (
	_ channels.Service = (*Service)(nil)
	_ services.Stopper = (*Service)(nil)
)

// New builds the service for env's workspace.
func New(env services.Env, opts Options) (*Service, error) {
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("service", Name)
	if opts.Environ == nil {
		opts.Environ = os.Environ()
	}
	client := backend.NewHTTPClient()
	s := &Service{
		workspace: env.Workspace,
		log:       log,
		closeHTTP: client.CloseIdleConnections,
		logs:      newLogLimiter(),
		// The order breaks ties in detection.
		backends: []backend.Backend{
			nodejs.New(nodejs.Config{Workspace: env.Workspace, Registry: opts.NPMRegistry, Environ: opts.Environ, HTTP: client}),
			python.New(python.Config{Workspace: env.Workspace, Index: opts.PipIndex, FindLinks: opts.PipFindLinks, Python: opts.Python, Environ: opts.Environ, HTTP: client}),
			golang.New(golang.Config{Workspace: env.Workspace, Proxy: opts.GoProxy, Environ: opts.Environ, HTTP: client}),
			apt.New(apt.Config{Workspace: env.Workspace, Enabled: opts.APT && os.Geteuid() == 0, Environ: opts.Environ}),
		},
	}
	if opts.Language != "" {
		b, err := s.backendFor(opts.Language)
		if err != nil {
			return nil, fmt.Errorf("packager: %s: %w", EnvLanguage, err)
		}
		s.language = b.Name()
	}
	s.queue = newQueue(s.runJob)
	return s, nil
}

// Open implements channels.Service.
func (s *Service) Open(ch *channels.Channel) (channels.Handler, error) {
	return &instance{svc: s, ch: ch}, nil
}

// Stop implements services.Stopper: it kills a running tool, drops queued
// mutations and waits for the queue's goroutine.
func (s *Service) Stop(ctx context.Context) error {
	err := s.queue.stop(ctx)
	s.closeHTTP()
	if err != nil {
		return fmt.Errorf("packager: stop: %w", err)
	}
	return nil
}
