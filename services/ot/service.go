package ot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services"
	"github.com/conman-dev/conman/services/workspace"
)

// Name is the service's wire name.
const Name = "ot"

// Defaults for the zero values of Options.
const (
	DefaultDebounce      = 300 * time.Millisecond
	DefaultIdleTimeout   = time.Minute
	DefaultCoalesce      = 30 * time.Millisecond
	DefaultWindow        = 1024
	DefaultWriteTimeout  = 30 * time.Second
	DefaultMaxCursors    = 1024
	DefaultMaxFetchBytes = 8 << 20
)

// warnEvery bounds how often the service logs warnings about the disk.
const warnEvery = 10 * time.Second

// Options configures the service. Zero values mean the defaults.
type Options struct {
	// Debounce is how long after a change the file is written (default
	// DefaultDebounce); a flush writes at once.
	Debounce time.Duration
	// IdleTimeout is how long a document nobody holds stays in memory
	// (default DefaultIdleTimeout).
	IdleTimeout time.Duration
	// Coalesce is how long the watcher lets a burst of outside writes to
	// a file settle before reading it (default DefaultCoalesce).
	Coalesce time.Duration
	// Window is how many recent packets of a document stay decoded in
	// memory (default DefaultWindow); older ones are read from the log.
	Window int
	// MaxDocBytes bounds a document (default
	// workspace.DefaultMaxReadSize, so that otstatus fits in a frame).
	MaxDocBytes int
	// WriteTimeout bounds how long a write through the files service to
	// a file being edited waits for the edit to reach the disk (default
	// DefaultWriteTimeout).
	WriteTimeout time.Duration
	// MaxCursors bounds the cursors of one document (default
	// DefaultMaxCursors).
	MaxCursors int
	// MaxFetchBytes bounds one otFetchResponse (default
	// DefaultMaxFetchBytes); a longer range is answered with its
	// beginning.
	MaxFetchBytes int
}

func (o *Options) setDefaults() {
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.Coalesce <= 0 {
		o.Coalesce = DefaultCoalesce
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.MaxDocBytes <= 0 {
		o.MaxDocBytes = workspace.DefaultMaxReadSize
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.MaxCursors <= 0 {
		o.MaxCursors = DefaultMaxCursors
	}
	if o.MaxFetchBytes <= 0 {
		o.MaxFetchBytes = DefaultMaxFetchBytes
	}
}

var (
	configMu sync.Mutex
	config   Options
)

// Configure sets the options of ot services built from now on (services.Env
// carries no per-service settings).
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

// Service is the ot service of one workspace: the registry of loaded
// documents, the watcher of their files and the reaper of idle ones.
//
// It starts three goroutines, all ended and waited for in Stop: the
// reaper, the watcher's event loop, and the recovery pass that brings the
// files of every history up to date after a start (a crash may have left a
// file behind its history, or someone may have changed it meanwhile).
type Service struct {
	fs      *workspace.FS
	dir     string // the histories: DataDir/ot
	opts    Options
	log     *slog.Logger
	metrics *metrics
	watcher *fsnotify.Watcher // nil when inotify is unavailable

	stop      chan struct{}
	reap      chan struct{} // capacity 1
	recovered chan struct{} // closed when the recovery pass has ended
	wg        sync.WaitGroup

	warnMu     sync.Mutex
	lastWarn   time.Time
	suppressed int

	// mu guards the following.
	mu      sync.Mutex
	docs    map[string]*document // by canonical path: loading, loaded or closing
	byHost  map[string]*document // loaded documents by host path
	dirs    map[string]int       // watched directories and how many documents are in each
	stopped bool
}

var (
	_ channels.Service = (*Service)(nil)
	_ services.Stopper = (*Service)(nil)
)

// errStopped refuses documents after Stop.
var errStopped = errors.New("ot service stopped")

// New opens env's workspace and the history directory DataDir/ot.
func New(env services.Env, opts Options) (*Service, error) {
	opts.setDefaults()
	if env.DataDir == "" {
		return nil, errors.New("ot: no data dir")
	}
	fsys, err := workspace.Open(workspace.Options{Root: env.Workspace, DataDir: env.DataDir, MaxReadSize: int64(opts.MaxDocBytes)})
	if err != nil {
		return nil, fmt.Errorf("ot: %w", err)
	}
	dir := filepath.Join(env.DataDir, Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fsys.Close()
		return nil, fmt.Errorf("ot: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("service", Name)
	m := newMetrics()
	if env.Metrics != nil {
		if err := m.register(env.Metrics); err != nil {
			fsys.Close()
			return nil, fmt.Errorf("ot metrics: %w", err)
		}
	}
	svc := &Service{
		fs:        fsys,
		dir:       dir,
		opts:      opts,
		log:       log,
		metrics:   m,
		stop:      make(chan struct{}),
		reap:      make(chan struct{}, 1),
		recovered: make(chan struct{}),
		docs:      make(map[string]*document),
		byHost:    make(map[string]*document),
		dirs:      make(map[string]int),
	}
	if w, err := fsnotify.NewWatcher(); err != nil {
		log.Warn("outside changes to files being edited will be seen only when they are next opened", "err", err)
	} else {
		svc.watcher = w
		svc.wg.Add(1)
		go svc.watchLoop()
	}
	svc.wg.Add(2)
	go svc.reapLoop()
	go svc.recover()
	return svc, nil
}

// Open implements channels.Service. A channel named "ot:<path>" whose file
// has a history is linked to it at once; otherwise it waits for otLinkFile.
func (svc *Service) Open(ch *channels.Channel) (channels.Handler, error) {
	inst := &instance{svc: svc, ch: ch, sessions: make(map[int32]*member)}
	p, ok := strings.CutPrefix(ch.Name(), Name+":")
	if !ok || p == "" {
		return inst, nil
	}
	rel, err := svc.fs.Resolve(p)
	if err != nil {
		return inst, nil
	}
	d, err := svc.acquire(rel, false)
	if err != nil {
		if !errors.Is(err, errNoHistory) {
			ch.Logger().Debug("document not loaded", "err", err)
		}
		return inst, nil
	}
	d.mu.Lock()
	inst.mu.Lock()
	inst.doc, inst.linkPath = d, p
	inst.mu.Unlock()
	d.instances[inst] = struct{}{}
	d.mu.Unlock()
	return inst, nil
}

// Stop unloads every document (writing their files) and ends the service's
// goroutines.
func (svc *Service) Stop(ctx context.Context) error {
	svc.mu.Lock()
	svc.stopped = true
	var open, closing []*document
	for _, d := range svc.docs {
		select {
		case <-d.ready:
		default:
			continue // its loader sees stopped and gives up
		}
		if d.closing {
			closing = append(closing, d)
			continue
		}
		d.closing = true
		open = append(open, d)
	}
	svc.mu.Unlock()
	close(svc.stop)
	svc.wg.Wait()
	for _, d := range open {
		svc.unload(d)
	}
	for _, d := range closing {
		select {
		case <-d.closed:
		case <-ctx.Done():
		}
	}
	if svc.watcher != nil {
		svc.watcher.Close()
	}
	return svc.fs.Close()
}

// acquire returns the loaded document of the canonical path rel, loading
// it first if needed (see document.load for create). The caller holds it
// until release.
func (svc *Service) acquire(rel string, create bool) (*document, error) {
	for {
		svc.mu.Lock()
		if svc.stopped {
			svc.mu.Unlock()
			return nil, errStopped
		}
		d := svc.docs[rel]
		if d == nil {
			d = svc.newDocument(rel)
			d.refs = 1
			svc.docs[rel] = d
			svc.mu.Unlock()
			if err := svc.finishLoad(d, d.load(create)); err != nil {
				return nil, err
			}
			return d, nil
		}
		if d.closing {
			svc.mu.Unlock()
			<-d.closed
			continue
		}
		d.refs++
		svc.mu.Unlock()
		<-d.ready
		if d.loadErr != nil {
			if errors.Is(d.loadErr, errNoHistory) && create {
				continue // the one who loaded it only looked
			}
			return nil, d.loadErr
		}
		if d.dead.Load() {
			svc.release(d)
			<-d.closed
			continue
		}
		return d, nil
	}
}

// finishLoad makes a loaded document available, or forgets one that
// failed to load (or loaded as the service stopped).
func (svc *Service) finishLoad(d *document, err error) error {
	if err == nil {
		if err = svc.fs.Interceptors().Register(d.rel, d); err != nil {
			err = fmt.Errorf("claim writes: %w", err)
			d.shutdown()
		}
	}
	svc.mu.Lock()
	if err == nil && !svc.stopped {
		svc.byHost[d.host] = d
		svc.watchLocked(filepath.Dir(d.host), +1)
		svc.metrics.docs.Inc()
		close(d.ready)
		svc.mu.Unlock()
		return nil
	}
	delete(svc.docs, d.rel)
	svc.mu.Unlock()
	if err == nil {
		d.shutdown()
		err = errStopped
	}
	d.loadErr = err
	close(d.ready)
	close(d.closed)
	return err
}

func (svc *Service) newDocument(rel string) *document {
	return &document{
		svc:       svc,
		rel:       rel,
		host:      svc.fs.HostPath(rel),
		logPath:   filepath.Join(svc.dir, logName(rel)),
		ready:     make(chan struct{}),
		closed:    make(chan struct{}),
		instances: make(map[*instance]struct{}),
		cursors:   make(map[string]*cursor),
	}
}

// hold takes another hold of a loaded document; it reports false (after
// the document is unloaded) when it is on its way out.
func (svc *Service) hold(d *document) bool {
	svc.mu.Lock()
	if d.closing {
		svc.mu.Unlock()
		<-d.closed
		return false
	}
	d.refs++
	svc.mu.Unlock()
	return true
}

// release gives back a hold of acquire or hold.
func (svc *Service) release(d *document) {
	svc.mu.Lock()
	d.refs--
	if d.refs == 0 {
		d.idleSince = time.Now()
	}
	svc.mu.Unlock()
	if d.dead.Load() {
		svc.kickReaper()
	}
}

// watchLocked adds (+1) or drops (-1) a document in dir to the watcher.
func (svc *Service) watchLocked(dir string, delta int) {
	if svc.watcher == nil {
		return
	}
	n := svc.dirs[dir] + delta
	switch {
	case n <= 0:
		delete(svc.dirs, dir)
		svc.watcher.Remove(dir)
	case n == 1 && delta > 0:
		svc.dirs[dir] = n
		if err := svc.watcher.Add(dir); err != nil {
			svc.warn("cannot watch for outside changes", "dir", dir, "err", err)
		}
	default:
		svc.dirs[dir] = n
	}
}

// watchLoop is the watcher's goroutine: it tells documents their file
// changed.
func (svc *Service) watchLoop() {
	defer svc.wg.Done()
	for {
		select {
		case ev, ok := <-svc.watcher.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			svc.mu.Lock()
			d := svc.byHost[ev.Name]
			svc.mu.Unlock()
			if d != nil {
				d.noteChange(time.Now())
			}
		case err, ok := <-svc.watcher.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Events were lost: look at every file.
				svc.mu.Lock()
				docs := make([]*document, 0, len(svc.byHost))
				for _, d := range svc.byHost {
					docs = append(docs, d)
				}
				svc.mu.Unlock()
				for _, d := range docs {
					d.noteChange(time.Now())
				}
				continue
			}
			svc.warn("watcher error", "err", err)
		case <-svc.stop:
			return
		}
	}
}

func (svc *Service) kickReaper() { kick(svc.reap) }

// reapLoop is the reaper's goroutine: it ends the channels of documents
// that failed and unloads documents nobody has held for IdleTimeout.
func (svc *Service) reapLoop() {
	defer svc.wg.Done()
	period := min(max(svc.opts.IdleTimeout/4, 10*time.Millisecond), 10*time.Second)
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
		case <-svc.reap:
		case <-svc.stop:
			return
		}
		svc.reapOnce(time.Now())
	}
}

// reapOnce does one round of the reaper.
func (svc *Service) reapOnce(now time.Time) {
	svc.mu.Lock()
	var dead, idle []*document
	for _, d := range svc.docs {
		select {
		case <-d.ready:
		default:
			continue
		}
		if d.closing || d.loadErr != nil {
			continue
		}
		switch {
		case d.refs == 0 && (d.dead.Load() || now.Sub(d.idleSince) >= svc.opts.IdleTimeout):
			d.closing = true
			idle = append(idle, d)
		case d.dead.Load():
			dead = append(dead, d)
		}
	}
	svc.mu.Unlock()
	for _, d := range dead {
		d.mu.Lock()
		chans := make([]*channels.Channel, 0, len(d.instances))
		for inst := range d.instances {
			chans = append(chans, inst.ch)
		}
		d.mu.Unlock()
		for _, ch := range chans {
			ch.Close()
		}
	}
	for _, d := range idle {
		svc.unload(d)
	}
}

// unload closes a document marked closing and forgets it.
func (svc *Service) unload(d *document) {
	svc.mu.Lock()
	delete(svc.byHost, d.host)
	svc.watchLocked(filepath.Dir(d.host), -1)
	svc.mu.Unlock()
	d.shutdown()
	svc.mu.Lock()
	delete(svc.docs, d.rel)
	svc.metrics.docs.Dec()
	svc.mu.Unlock()
	close(d.closed)
}

// recover is the recovery pass: every history whose file is not known to
// be up to date is loaded, reconciled and written out.
func (svc *Service) recover() {
	defer svc.wg.Done()
	defer close(svc.recovered)
	entries, err := os.ReadDir(svc.dir)
	if err != nil {
		svc.warn("cannot list histories", "err", err)
		return
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		select {
		case <-svc.stop:
			return
		default:
		}
		rel, clean, err := svc.inspect(filepath.Join(svc.dir, e.Name()))
		if err != nil {
			svc.log.Debug("history not recovered", "log", e.Name(), "err", err)
			continue
		}
		if clean {
			continue
		}
		d, err := svc.acquire(rel, false)
		if err != nil {
			svc.log.Debug("history not recovered", "path", rel, "err", err)
			continue
		}
		done := make(chan error, 1)
		d.mu.Lock()
		d.flushLocked(func(err error) { done <- err })
		d.mu.Unlock()
		select {
		case err = <-done:
		case <-svc.stop:
		}
		if err != nil {
			svc.log.Debug("history not recovered", "path", rel, "err", err)
		}
		svc.release(d)
	}
}

// inspect reads a log's framing, without decoding packets, and reports the
// path it is for and whether the file is known to hold its last version:
// the log ends cleanly with a disk mark of its last version whose CRC (or
// absence) the file matches.
func (svc *Service) inspect(logPath string) (rel string, clean bool, err error) {
	f, err := os.Open(logPath)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	rr, err := newRecordReader(f)
	if err != nil {
		return "", false, err
	}
	kind, body, _, err := rr.next()
	if err != nil || kind != kindHeader {
		return "", false, fmt.Errorf("no header: %v", err)
	}
	if rel, err = parseHeader(body); err != nil {
		return "", false, err
	}
	if filepath.Join(svc.dir, logName(rel)) != logPath {
		return "", false, errors.New("header names another file")
	}
	var packets uint32
	var mark diskMark
	for {
		kind, body, _, err := rr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return rel, false, nil // a torn tail: load cuts it off
		}
		switch kind {
		case kindPacket:
			packets++
		case kindDisk:
			if mark, err = parseDiskMark(body); err != nil {
				return rel, false, nil
			}
		}
	}
	if mark.version != packets {
		return rel, false, nil
	}
	content, err := svc.fs.Read(rel)
	if err != nil {
		return rel, !mark.exists && workspace.Code(err) == workspace.CodeNotFound, nil
	}
	return rel, mark.exists && crcOf(content) == mark.crc, nil
}

// warn logs a warning about the disk or the history, at most one per
// warnEvery; the next one counts those left out.
func (svc *Service) warn(msg string, args ...any) {
	svc.warnMu.Lock()
	now := time.Now()
	if now.Sub(svc.lastWarn) < warnEvery {
		svc.suppressed++
		svc.warnMu.Unlock()
		return
	}
	suppressed := svc.suppressed
	svc.lastWarn, svc.suppressed = now, 0
	svc.warnMu.Unlock()
	svc.log.Warn(msg, append(args, "suppressed", suppressed)...)
}

// metrics are the service's collectors.
type metrics struct {
	ops           prometheus.Counter
	outside       prometheus.Counter
	commitSeconds prometheus.Histogram
	ackSeconds    prometheus.Histogram
	docs          prometheus.Gauge
}

func newMetrics() *metrics {
	return &metrics{
		ops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conman_ot_ops_total",
			Help: "Versions made durable and sent, outside changes included.",
		}),
		outside: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conman_ot_outside_changes_total",
			Help: "Changes to files being edited, made by other processes or through the files service, turned into versions.",
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "conman_ot_commit_seconds",
			Help:    "Time to write and sync one batch of history records.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		ackSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "conman_ot_ack_seconds",
			Help:    "Time from an op's arrival to its packet being sent and the op answered (transform, apply, group commit).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		docs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "conman_ot_documents",
			Help: "Documents loaded in memory.",
		}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.ops, m.outside, m.commitSeconds, m.ackSeconds, m.docs} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
