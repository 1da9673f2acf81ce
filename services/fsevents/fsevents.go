// Package fsevents is the fsevents service: it tells clients what changes
// in the parts of the workspace they watch.
//
// On an fsevents channel a client sends subscribeFile{files} (without a
// ref, and again after every reconnect: subscribing twice is a no-op). Each
// path names a directory, whose direct children are watched, or a file. The
// channel then receives fileEvent{file{path, type}, op} with op Create,
// Modify, Remove or Move (then dest{path, type} is the new name), for every
// change, with full workspace-relative paths spelled from the path the
// client subscribed. A subscribeFile that carries a ref is answered ok; a
// path that cannot be watched is answered `error "subscribe <path>:
// <reason>"` (without a ref when the request had none).
//
// Changes made through the daemon (the files service) are reported like any
// other, so every other client sees them; the daemon's data dir and its
// temporary files never are.
//
// # How changes are computed
//
// One inotify watcher (fsnotify) serves the whole daemon. Each watched
// directory is watched once, however many subscriptions need it (a file is
// watched through its directory), and released when the last subscription
// that needs it ends, which is when its channel closes. The number of
// watched directories is bounded (Options.MaxWatches); a subscription over
// the bound is refused with an error.
//
// Raw events are only hints: they mark names as touched. Events are
// gathered for Options.Coalesce after the first one of a burst (25 ms by
// default), then the touched names are looked up and compared with the
// listing kept for each watched directory. That makes a burst one event per
// name (an editor's save that writes a temporary file, renames it over the
// original and changes its mode is one Modify), recognises moves (a renamed
// file keeps its serial number), and makes the events listing-consistent:
// applied in order to the previous listing they give the current one. When
// the kernel's queue overflows (fsnotify.ErrEventOverflow) every watched
// directory is listed again and compared with its last listing, so no
// change is lost silently.
//
// A watched directory that is removed or renamed away ends its
// subscriptions with a Remove of the directory; subscribing again after it
// is back starts over.
package fsevents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services"
	"github.com/conman-dev/conman/services/workspace"
)

// Name is the service's wire name.
const Name = "fsevents"

// Defaults of [Options].
const (
	DefaultMaxWatches = 8192
	DefaultCoalesce   = 25 * time.Millisecond
)

// Options configures a [Service]. Zero values mean the defaults.
type Options struct {
	// MaxWatches bounds the directories watched at once, across every
	// channel (default DefaultMaxWatches).
	MaxWatches int
	// Coalesce is how long events are gathered after the first one of a
	// burst before they are reported (default DefaultCoalesce).
	Coalesce time.Duration
}

func (o *Options) setDefaults() {
	if o.MaxWatches <= 0 {
		o.MaxWatches = DefaultMaxWatches
	}
	if o.Coalesce <= 0 {
		o.Coalesce = DefaultCoalesce
	}
}

// defaultOptions are the options of the registered service.
var defaultOptions Options

func init() {
	services.Register(Name, func(env services.Env) (channels.Service, error) {
		return New(env, defaultOptions)
	})
}

// Service is the fsevents service of one workspace.
type Service struct {
	fs        *workspace.FS
	opts      Options
	log       *slog.Logger
	watches   prometheus.Gauge
	overflows prometheus.Counter
	events    prometheus.Counter
	warnings  limiter

	stop     chan struct{} // closed by Stop
	loopDone chan struct{} // closed when the event loop ends; nil until it starts

	// mu guards the following, and the subscriptions of every instance.
	mu      sync.Mutex
	watcher *fsnotify.Watcher // nil until the first subscription
	stopped bool
	dirs    map[string]*dirWatch // by canonical path
	byHost  map[string]*dirWatch // by host path, as fsnotify names them
}

var (
	_ channels.Service = (*Service)(nil)
	_ services.Stopper = (*Service)(nil)
)

// New builds the service for env's workspace. The watcher starts with the
// first subscription.
func New(env services.Env, opts Options) (*Service, error) {
	opts.setDefaults()
	fsys, err := workspace.Open(workspace.Options{Root: env.Workspace, DataDir: env.DataDir})
	if err != nil {
		return nil, fmt.Errorf("fsevents: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Service{
		fs:   fsys,
		opts: opts,
		log:  log.With("service", Name),
		watches: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "conman_fsevents_watches", Help: "Directories watched for change events.",
		}),
		overflows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conman_fsevents_overflows_total", Help: "Kernel event queue overflows, each followed by a rescan.",
		}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conman_fsevents_events_total", Help: "File events sent to channels.",
		}),
		warnings: limiter{every: 10 * time.Second},
		stop:     make(chan struct{}),
		dirs:     make(map[string]*dirWatch),
		byHost:   make(map[string]*dirWatch),
	}
	if env.Metrics != nil {
		for _, c := range []prometheus.Collector{s.watches, s.overflows, s.events} {
			if err := env.Metrics.Register(c); err != nil {
				fsys.Close()
				return nil, fmt.Errorf("fsevents: metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Open implements channels.Service.
func (s *Service) Open(ch *channels.Channel) (channels.Handler, error) {
	return &instance{svc: s, ch: ch, subs: make(map[subKey]*subscription)}, nil
}

// Stop ends the watcher and waits for its goroutine.
func (s *Service) Stop(context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	w := s.watcher
	done := s.loopDone
	s.mu.Unlock()
	close(s.stop)
	var err error
	if w != nil {
		err = w.Close()
	}
	if done != nil {
		<-done
	}
	if cerr := s.fs.Close(); err == nil {
		err = cerr
	}
	return err
}

// dirWatch is one watched directory.
type dirWatch struct {
	rel     string // canonical
	host    string
	ino     uint64
	listing map[string]workspace.Entry
	subs    map[*subscription]struct{}
}

// subscription is one path one channel watches: every child of dir, or the
// child name only.
type subscription struct {
	owner  *instance
	dir    *dirWatch
	name   string // "" for every child
	prefix string // how the owner spells dir ("" for the root)
}

// subKey identifies a subscription within its channel.
type subKey struct {
	dir, name, prefix string
}

// spell is the path of child name as sub's owner spells it.
func (sub *subscription) spell(name string) string {
	if sub.prefix == "" {
		return name
	}
	return sub.prefix + "/" + name
}

// sees reports whether sub covers child name of its directory.
func (sub *subscription) sees(name string) bool { return sub.name == "" || sub.name == name }

// errTooManyWatches refuses a subscription over the bound.
func (s *Service) errTooManyWatches() error {
	return workspace.Invalid(fmt.Sprintf("too many watched directories (at most %d)", s.opts.MaxWatches))
}

// subscribe makes owner watch p. Subscribing again is a no-op.
func (s *Service) subscribe(owner *instance, p string) error {
	key, err := s.target(p)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if owner.closed || s.stopped {
		return nil
	}
	if owner.subs[key] != nil {
		return nil
	}
	d, err := s.watchLocked(key.dir)
	if err != nil {
		return err
	}
	sub := &subscription{owner: owner, dir: d, name: key.name, prefix: key.prefix}
	d.subs[sub] = struct{}{}
	owner.subs[key] = sub
	return nil
}

// target resolves p into the directory to watch, the child to watch in it
// ("" for all), and the owner's spelling of that directory.
func (s *Service) target(p string) (subKey, error) {
	spelled := path.Clean(strings.TrimLeft(p, "/"))
	if spelled == "." {
		spelled = ""
	}
	rel, err := s.fs.ResolveNoFollow(p)
	if err != nil {
		return subKey{}, err
	}
	if e, exists, err := s.fs.Stat(rel); err != nil {
		return subKey{}, err
	} else if exists && e.Dir {
		dir, err := s.fs.Resolve(rel)
		if err != nil {
			return subKey{}, err
		}
		return subKey{dir: dir, prefix: spelled}, nil
	}
	// A file, or a name not there yet: watch its directory for it.
	dir, name := path.Dir(rel), path.Base(rel)
	if e, exists, err := s.fs.Stat(dir); err != nil {
		return subKey{}, err
	} else if !exists {
		return subKey{}, syscall.ENOENT
	} else if !e.Dir {
		return subKey{}, syscall.ENOTDIR
	}
	prefix := path.Dir(spelled)
	if prefix == "." {
		prefix = ""
	}
	return subKey{dir: dir, name: name, prefix: prefix}, nil
}

// watchLocked returns the watch of the canonical directory rel, adding it
// when needed.
func (s *Service) watchLocked(rel string) (*dirWatch, error) {
	if d := s.dirs[rel]; d != nil {
		return d, nil
	}
	if len(s.dirs) >= s.opts.MaxWatches {
		return nil, s.errTooManyWatches()
	}
	if err := s.startLocked(); err != nil {
		return nil, err
	}
	host := s.fs.HostPath(rel)
	if err := s.watcher.Add(host); err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return nil, errors.New("the system's inotify watch limit is reached (fs.inotify.max_user_watches)")
		}
		return nil, err
	}
	// Listing after adding the watch: a change in between is in the
	// listing and shows as an event that changes nothing, never lost.
	entries, err := s.fs.List(rel)
	if err == nil && !s.fs.SameAsHost(rel) {
		err = errors.New("directory changed while being watched")
	}
	var self workspace.Entry
	if err == nil {
		self, _, err = s.fs.Stat(rel)
	}
	if err != nil {
		s.watcher.Remove(host)
		return nil, err
	}
	d := &dirWatch{rel: rel, host: host, ino: self.Ino, listing: make(map[string]workspace.Entry, len(entries)), subs: make(map[*subscription]struct{})}
	for _, e := range entries {
		d.listing[e.Name] = e
	}
	s.dirs[rel] = d
	s.byHost[host] = d
	s.watches.Set(float64(len(s.dirs)))
	return d, nil
}

// startLocked creates the watcher and its goroutine on first use.
func (s *Service) startLocked() error {
	if s.watcher != nil {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	s.watcher = w
	s.loopDone = make(chan struct{})
	go s.loop(w, s.loopDone)
	return nil
}

// dropLocked forgets sub; the directory's watch goes with its last
// subscription.
func (s *Service) dropLocked(sub *subscription) {
	d := sub.dir
	delete(d.subs, sub)
	if len(d.subs) == 0 && s.dirs[d.rel] == d {
		s.unwatchLocked(d)
	}
}

func (s *Service) unwatchLocked(d *dirWatch) {
	delete(s.dirs, d.rel)
	delete(s.byHost, d.host)
	if s.watcher != nil {
		// The kernel may have dropped it already (the directory is gone).
		s.watcher.Remove(d.host)
	}
	s.watches.Set(float64(len(s.dirs)))
}

// instance is one fsevents channel.
type instance struct {
	svc *Service
	ch  *channels.Channel

	// These are guarded by svc.mu.
	subs   map[subKey]*subscription
	closed bool
}

var _ channels.MutationPolicy = (*instance)(nil)

// Mutates reports false: watching changes nothing, so read-only sessions
// may watch too.
func (in *instance) Mutates(*api.Command) bool { return false }

// Handle implements channels.Handler.
func (in *instance) Handle(_ context.Context, req *channels.Request) (*api.Command, error) {
	sub, ok := req.Command.Body.(*api.Command_SubscribeFile)
	if !ok {
		return nil, channels.Unsupported(req.Command)
	}
	var first error
	failed := 0
	for _, f := range sub.SubscribeFile.GetFiles() {
		if err := in.svc.subscribe(in, f.GetPath()); err != nil {
			failed++
			if first == nil {
				first = subscribeError(f.GetPath(), err)
			}
		}
	}
	if first != nil {
		in.ch.Logger().Debug("subscribe failed", "failed", failed, "err", first)
		if failed > 1 {
			return nil, fmt.Errorf("%w (and %d more paths)", first, failed-1)
		}
		return nil, first
	}
	if req.Command.Ref == "" {
		return nil, nil
	}
	return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}}, nil
}

// subscribeError presents err as a failure to subscribe to p.
func subscribeError(p string, err error) error {
	var e *workspace.Error
	if errors.As(err, &e) {
		return &workspace.Error{Op: "subscribe", Path: p, Err: e.Err}
	}
	return &workspace.Error{Op: "subscribe", Path: p, Err: err}
}

// Close implements channels.Handler: the channel's subscriptions end.
func (in *instance) Close(context.Context) error {
	s := in.svc
	s.mu.Lock()
	defer s.mu.Unlock()
	in.closed = true
	for key, sub := range in.subs {
		delete(in.subs, key)
		s.dropLocked(sub)
	}
	return nil
}

// limiter paces a log line.
type limiter struct {
	every time.Duration

	// mu guards the following.
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now, and how many were held back since.
func (l *limiter) allow() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.last) >= l.every {
		n := l.suppressed
		l.last, l.suppressed = now, 0
		return true, n
	}
	l.suppressed++
	return false, 0
}
