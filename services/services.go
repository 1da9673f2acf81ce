// Package services holds what every service shares: the environment a
// service is built in and the registry of service constructors, filled by
// each service package's init (as caddy's modules and database/sql's
// drivers register themselves).
//
// Service packages import this package and channels, never each other.
package services

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conman-dev/conman/channels"
)

// Env is what a service is built with.
type Env struct {
	// Workspace is the absolute path of the workspace root.
	Workspace string
	// DataDir is the daemon's own directory (never served to clients). A
	// service keeps its state in DataDir/<its name>.
	DataDir string
	// Logger is the daemon's logger.
	Logger *slog.Logger
	// Hub is the daemon's session hub: channel-0 handlers, broadcasts to
	// every session.
	Hub *channels.Hub
	// Metrics is where a service registers its own collectors.
	Metrics prometheus.Registerer
}

// Stopper is implemented by services that hold resources beyond their
// channels (a watcher, a supervisor, a store). Stop is called once at
// shutdown, after every channel has ended, in the reverse order of
// registration; ctx bounds it.
type Stopper interface {
	Stop(ctx context.Context) error
}

// Constructor builds a service for env.
type Constructor func(env Env) (channels.Service, error)

var (
	mu           sync.Mutex
	constructors = make(map[string]Constructor)
)

// Register makes a service available under its wire name. It is called from
// init; registering a name twice panics, so the mistake shows at start-up.
func Register(name string, c Constructor) {
	mu.Lock()
	defer mu.Unlock()
	if c == nil {
		panic(fmt.Sprintf("services: %q registered with a nil constructor", name))
	}
	if _, dup := constructors[name]; dup {
		panic(fmt.Sprintf("services: %q registered twice", name))
	}
	constructors[name] = c
}

// Names lists the registered services, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	names := make([]string, 0, len(constructors))
	for name := range constructors {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Build constructs every registered service for env into reg, in name
// order. It returns the services that need stopping, in the order they
// should stop (the reverse of construction).
func Build(env Env, reg *channels.Registry) ([]Stopper, error) {
	var stoppers []Stopper
	for _, name := range Names() {
		mu.Lock()
		c := constructors[name]
		mu.Unlock()
		svc, err := c(env)
		if err != nil {
			for _, s := range stoppers {
				s.Stop(context.Background())
			}
			return nil, fmt.Errorf("service %s: %w", name, err)
		}
		reg.Register(name, svc)
		if s, ok := svc.(Stopper); ok {
			stoppers = append([]Stopper{s}, stoppers...)
		}
	}
	return stoppers, nil
}
