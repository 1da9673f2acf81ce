// Package ports tells every session which TCP ports are listening inside
// the container.
//
// It polls /proc/net/tcp and /proc/net/tcp6 (every [DefaultInterval]) for
// listening sockets on any address. On channel 0 it sends every session
//
//   - portOpen{port, address, forwarded} when a port starts listening, and
//     once for every open port when the session connects (right after its
//     containerState READY);
//   - portClose{port, address} when it stops.
//
// address is the listening address as text ("0.0.0.0", "127.0.0.1", "::");
// forwarded is true when the address is not a loopback one, that is when
// the port can be reached (and forwarded) from outside the container, false
// for a port only the container itself can reach. The public record does
// not define forwarded; this is the project's reading.
//
// Sockets of the daemon's own process (its HTTP listener) are never
// reported: a listener whose socket inode is among the daemon's file
// descriptors is left out.
//
// The package registers the internal service `conman.ports`, which has no
// commands of its own (it exists so the daemon stops the poller at
// shutdown). It owns the poller and nothing else; it never imports another
// service.
//
// # Concurrency
//
// One poller goroutine per daemon, started by [New] and waited for by
// [Service.Stop]. Its mutex is held across each change of the port set and
// the messages it sends, and across the greeting of a new session, so a
// session sees every change exactly once: in its greeting or live. Lock
// order: the service's mutex, then the hub's (Hub.Sessions, to forget
// sessions that have ended).
package ports

import (
	"cmp"
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services"
)

// Name is the wire name of the (command-less) service.
const Name = "conman.ports"

// DefaultInterval is how often the listening sockets are read.
const DefaultInterval = time.Second

// Options configures the service. Zero values mean the defaults.
type Options struct {
	// Interval is how often the listening sockets are read (default
	// DefaultInterval).
	Interval time.Duration
	// ProcDir is where proc is mounted (default "/proc"); the daemon's own
	// sockets are found in ProcDir/self/fd.
	ProcDir string
}

func (o *Options) setDefaults() {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.ProcDir == "" {
		o.ProcDir = "/proc"
	}
}

var configured struct {
	mu   sync.Mutex
	opts Options
}

// Configure sets the options of the services built from now on.
func Configure(opts Options) {
	configured.mu.Lock()
	defer configured.mu.Unlock()
	configured.opts = opts
}

func init() {
	services.Register(Name, func(env services.Env) (channels.Service, error) {
		configured.mu.Lock()
		opts := configured.opts
		configured.mu.Unlock()
		return New(env, opts), nil
	})
}

// Service watches the listening ports of one daemon.
type Service struct {
	hub    *channels.Hub
	opts   Options
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	// Owned by the poller goroutine.
	own      map[uint64]bool // listener inodes known to be (not) the daemon's
	scanErrs int             // consecutive failed scans

	// mu guards the following.
	mu   sync.Mutex
	open map[netip.AddrPort]bool // the user's listening ports
	subs map[*channels.Session]struct{}
}

var (
	_ channels.Service = (*Service)(nil)
	_ services.Stopper = (*Service)(nil)
)

// New starts watching. It greets every new session of env.Hub with the
// open ports and tells every session of changes; Stop ends it.
func New(env services.Env, opts Options) *Service {
	opts.setDefaults()
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc := &Service{
		hub:    env.Hub,
		opts:   opts,
		log:    log.With("service", Name),
		cancel: cancel,
		done:   make(chan struct{}),
		own:    make(map[uint64]bool),
		open:   make(map[netip.AddrPort]bool),
		subs:   make(map[*channels.Session]struct{}),
	}
	svc.poll()
	if env.Hub != nil {
		env.Hub.OnSessionStart(svc.greet)
	}
	go svc.run(ctx)
	return svc
}

func (svc *Service) run(ctx context.Context) {
	defer close(svc.done)
	ticker := time.NewTicker(svc.opts.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			svc.poll()
		}
	}
}

// Stop ends the poller and waits for it.
func (svc *Service) Stop(ctx context.Context) error {
	svc.cancel()
	select {
	case <-svc.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Open serves a conman.ports channel, which has no commands.
func (svc *Service) Open(*channels.Channel) (channels.Handler, error) { return noCommands{}, nil }

type noCommands struct{}

func (noCommands) Handle(_ context.Context, req *channels.Request) (*api.Command, error) {
	return nil, channels.Unsupported(req.Command)
}
func (noCommands) Close(context.Context) error { return nil }

// Ports returns the open ports, sorted.
func (svc *Service) Ports() []netip.AddrPort {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return sortedKeys(svc.open)
}

func sortedKeys(set map[netip.AddrPort]bool) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(set))
	for ap := range set {
		out = append(out, ap)
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int {
		return cmp.Or(cmp.Compare(a.Port(), b.Port()), a.Addr().Compare(b.Addr()))
	})
	return out
}

func portOpen(ap netip.AddrPort) *api.Command {
	return &api.Command{Body: &api.Command_PortOpen{PortOpen: &api.PortOpen{
		Port:      uint32(ap.Port()),
		Address:   ap.Addr().String(),
		Forwarded: !ap.Addr().IsLoopback(),
	}}}
}

func portClose(ap netip.AddrPort) *api.Command {
	return &api.Command{Body: &api.Command_PortClose{PortClose: &api.PortClose{
		Port:    uint32(ap.Port()),
		Address: ap.Addr().String(),
	}}}
}

// greet sends a new session the open ports and subscribes it to changes.
func (svc *Service) greet(s *channels.Session) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	for _, ap := range sortedKeys(svc.open) {
		s.Send0(portOpen(ap))
	}
	svc.subs[s] = struct{}{}
}

// poll reads the listening sockets once and reports the changes. Only the
// poller goroutine (and New, before it starts) calls it.
func (svc *Service) poll() {
	listeners, err := scanListeners(svc.opts.ProcDir)
	if err != nil {
		// Log the first failure of a run, not every second of it.
		if svc.scanErrs == 0 {
			svc.log.Warn("cannot read the listening ports", "err", err)
		}
		svc.scanErrs++
		return
	}
	if svc.scanErrs > 0 {
		svc.log.Info("reading the listening ports again", "after_failures", svc.scanErrs)
		svc.scanErrs = 0
	}
	svc.classify(listeners)
	now := make(map[netip.AddrPort]bool, len(listeners))
	for _, l := range listeners {
		if !svc.own[l.inode] {
			now[l.addr] = true
		}
	}

	svc.mu.Lock()
	defer svc.mu.Unlock()
	// Forget sessions that have ended. The list is taken under mu: a
	// session greeted before is live in it.
	if svc.hub != nil {
		live := make(map[*channels.Session]bool, len(svc.subs))
		for _, s := range svc.hub.Sessions() {
			live[s] = true
		}
		for s := range svc.subs {
			if !live[s] {
				delete(svc.subs, s)
			}
		}
	}
	var changes []*api.Command
	for _, ap := range sortedKeys(svc.open) {
		if !now[ap] {
			changes = append(changes, portClose(ap))
		}
	}
	for _, ap := range sortedKeys(now) {
		if !svc.open[ap] {
			changes = append(changes, portOpen(ap))
		}
	}
	svc.open = now
	for _, cmd := range changes {
		for s := range svc.subs {
			s.Send0(cmd)
		}
	}
}

// classify records, for listeners not seen before, whether the daemon's
// own process holds them; it forgets listeners that are gone.
func (svc *Service) classify(listeners []listener) {
	current := make(map[uint64]bool, len(listeners))
	unknown := false
	for _, l := range listeners {
		current[l.inode] = true
		if _, ok := svc.own[l.inode]; !ok {
			unknown = true
		}
	}
	for inode := range svc.own {
		if !current[inode] {
			delete(svc.own, inode)
		}
	}
	if !unknown {
		return
	}
	mine, err := socketInodes(filepath.Join(svc.opts.ProcDir, "self", "fd"))
	if err != nil {
		mine = nil // nothing is known to be the daemon's
	}
	for _, l := range listeners {
		if _, ok := svc.own[l.inode]; !ok {
			svc.own[l.inode] = mine[l.inode]
		}
	}
}
