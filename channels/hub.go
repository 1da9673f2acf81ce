package channels

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/conman-dev/conman/api"
)

// Options configures a [Hub]. Zero values mean the documented defaults.
type Options struct {
	// Registry holds the services channels can open. Required.
	Registry *Registry
	// Logger receives the hub's log; default slog.Default().
	Logger *slog.Logger
	// Metrics receives counts; default none.
	Metrics Metrics
	// WriteQueueBytes bounds each session's outgoing queue (default 8 MiB).
	// A session that would exceed it is closed.
	WriteQueueBytes int
	// ChannelQueueBytes bounds each channel's inbox (default 4 MiB). A full
	// inbox makes the sending session's read loop wait.
	ChannelQueueBytes int
	// PingInterval is how often each session's transport is pinged
	// (default 25 s; negative disables).
	PingInterval time.Duration
	// FlushTimeout bounds how long a closing session may take to write
	// what is queued for it (default 5 s).
	FlushTimeout time.Duration
	// CloseTimeout bounds a service instance's Close outside shutdown
	// (default 10 s).
	CloseTimeout time.Duration
}

// Defaults.
const (
	DefaultWriteQueueBytes   = 8 << 20
	DefaultChannelQueueBytes = 4 << 20
	DefaultPingInterval      = 25 * time.Second
	DefaultFlushTimeout      = 5 * time.Second
	DefaultCloseTimeout      = 10 * time.Second
)

func (o *Options) setDefaults() {
	if o.Registry == nil {
		panic("channels: Options.Registry is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = nopMetrics{}
	}
	if o.WriteQueueBytes <= 0 {
		o.WriteQueueBytes = DefaultWriteQueueBytes
	}
	if o.ChannelQueueBytes <= 0 {
		o.ChannelQueueBytes = DefaultChannelQueueBytes
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = DefaultFlushTimeout
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = DefaultCloseTimeout
	}
}

// Metrics receives the hub's counts. conman backs it with Prometheus.
type Metrics interface {
	SessionOpened()
	SessionClosed(reason CloseReason)
	QueueOverflow()
	ChannelOpened(service string)
	ChannelClosed(service string)
	// Service returns the counters of one service; it is called once per
	// channel, not per frame. Channel 0 is counted as "chan0", frames that
	// belong to no channel as "unknown".
	Service(name string) ServiceMetrics
}

// ServiceMetrics counts the traffic of one service.
type ServiceMetrics interface {
	FramesIn(n, bytes int)
	FramesOut(n, bytes int)
	Handled(d time.Duration)
}

type nopMetrics struct{}

func (nopMetrics) SessionOpened()                {}
func (nopMetrics) SessionClosed(CloseReason)     {}
func (nopMetrics) QueueOverflow()                {}
func (nopMetrics) ChannelOpened(string)          {}
func (nopMetrics) ChannelClosed(string)          {}
func (nopMetrics) Service(string) ServiceMetrics { return nopMetrics{} }
func (nopMetrics) FramesIn(int, int)             {}
func (nopMetrics) FramesOut(int, int)            {}
func (nopMetrics) Handled(time.Duration)         {}

// Identity is who a session acts for, as its token says.
type Identity struct {
	UserID      uint32
	UserName    string
	ReadOnly    bool
	Roles       []string // extra permissions, such as "debug" or "admin"
	WorkspaceID string
	TokenID     string
}

// HasRole reports whether the identity carries role.
func (id Identity) HasRole(role string) bool {
	for _, r := range id.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Channel0Handler serves one body on channel 0. It runs in the session's
// read loop, so it must be quick. A non-nil reply gets the request's ref; an
// error becomes an `error` reply.
type Channel0Handler func(ctx context.Context, s *Session, cmd *api.Command) (*api.Command, error)

// ErrShuttingDown refuses new sessions while the hub shuts down.
var ErrShuttingDown = errors.New("the daemon is shutting down")

// Hub is the registry of live sessions and channels.
type Hub struct {
	opts     Options
	log      *slog.Logger
	metrics  Metrics
	chan0    ServiceMetrics
	unknown  ServiceMetrics
	ctx      context.Context // canceled at the end of Shutdown
	cancel   context.CancelFunc
	lastID   atomic.Int32
	channel0 map[protoreflect.FieldNumber]Channel0Handler
	starters []func(*Session) // set before serving, read-only afterwards

	sessionsWG sync.WaitGroup // one per live session
	channelsWG sync.WaitGroup // one per channel goroutine

	// mu guards the following.
	mu       sync.Mutex
	sessions map[int32]*Session
	named    map[namedKey]*Channel
	channels map[*Channel]struct{}
	draining bool
}

type namedKey struct{ service, name string }

// NewHub returns a hub serving the services of opts.Registry.
func NewHub(opts Options) *Hub {
	opts.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		opts:     opts,
		log:      opts.Logger,
		metrics:  opts.Metrics,
		chan0:    opts.Metrics.Service("chan0"),
		unknown:  opts.Metrics.Service("unknown"),
		ctx:      ctx,
		cancel:   cancel,
		channel0: make(map[protoreflect.FieldNumber]Channel0Handler),
		sessions: make(map[int32]*Session),
		named:    make(map[namedKey]*Channel),
		channels: make(map[*Channel]struct{}),
	}
	h.lastID.Store(1) // session ids start at 2; 0 and 1 are reserved
	return h
}

// HandleChannel0 serves body (a field name of the Command oneof, such as
// "readMeta") on channel 0. It must be called before the hub serves anyone;
// openChan, closeChan and ping are built in.
func (h *Hub) HandleChannel0(body string, fn Channel0Handler) {
	fd := bodyOneof.Fields().ByName(protoreflect.Name(body))
	if fd == nil {
		panic(fmt.Sprintf("channels: %q is not a body of api.Command", body))
	}
	switch body {
	case "openChan", "closeChan", "ping":
		panic(fmt.Sprintf("channels: %q is built in", body))
	}
	if _, dup := h.channel0[fd.Number()]; dup {
		panic(fmt.Sprintf("channels: channel-0 handler for %q registered twice", body))
	}
	h.channel0[fd.Number()] = fn
}

// OnSessionStart registers fn to run for every new session once its
// handshake (bootStatus, then containerState READY) is queued, before any of
// its frames is read: the place to greet a session on channel 0 with state
// it has not asked for (the open ports, say). fn runs in the goroutine that
// called [Hub.NewSession], so it must be quick; a panic is logged. Like
// [Hub.HandleChannel0], it must be called before the hub serves anyone.
func (h *Hub) OnSessionStart(fn func(*Session)) {
	if fn == nil {
		panic("channels: OnSessionStart with a nil function")
	}
	h.starters = append(h.starters, fn)
}

// Registry returns the services the hub serves.
func (h *Hub) Registry() *Registry { return h.opts.Registry }

// NewSession starts a session on conn for id: it registers the session,
// starts its writer and queues the handshake (bootStatus COMPLETE, then
// containerState READY). The caller runs the read loop, feeding
// [Session.HandleFrame], and calls [Session.Close] when it ends.
func (h *Hub) NewSession(conn Conn, id Identity) (*Session, error) {
	h.mu.Lock()
	if h.draining {
		h.mu.Unlock()
		return nil, ErrShuttingDown
	}
	s := newSession(h, h.lastID.Add(1), conn, id)
	h.sessions[s.id] = s
	h.sessionsWG.Add(1)
	h.mu.Unlock()

	h.metrics.SessionOpened()
	go s.writeLoop(h.opts.PingInterval)
	s.Send0(&api.Command{Body: &api.Command_BootStatus{BootStatus: &api.BootStatus{Stage: api.BootStatus_COMPLETE}}})
	s.Send0(&api.Command{Body: &api.Command_ContainerState{ContainerState: &api.ContainerState{State: api.ContainerState_READY}}})
	for _, fn := range h.starters {
		s.runStarter(fn)
	}
	s.log.Debug("session opened", "user", id.UserName, "read_only", id.ReadOnly)
	return s, nil
}

// runStarter runs one OnSessionStart function, logging a panic instead of
// crashing.
func (s *Session) runStarter(fn func(*Session)) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("session start hook panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	fn(s)
}

func (h *Hub) removeSession(s *Session) {
	h.mu.Lock()
	delete(h.sessions, s.id)
	h.mu.Unlock()
	h.sessionsWG.Done()
}

// Sessions returns the live sessions.
func (h *Hub) Sessions() []*Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Session, 0, len(h.sessions))
	for _, s := range h.sessions {
		out = append(out, s)
	}
	return out
}

// Session returns the live session with id.
func (h *Hub) Session(id int32) (*Session, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.sessions[id]
	return s, ok
}

// Broadcast0 sends cmd on channel 0 to every live session (toasts,
// redirects, ports).
func (h *Hub) Broadcast0(cmd *api.Command) {
	for _, s := range h.Sessions() {
		s.Send0(cmd)
	}
}

// Toast shows text to every session.
func (h *Hub) Toast(text string) {
	h.Broadcast0(&api.Command{Body: &api.Command_Toast{Toast: &api.Toast{Text: text}}})
}

// Redirect tells every session to reconnect through url.
func (h *Hub) Redirect(url string) {
	h.Broadcast0(&api.Command{Body: &api.Command_Redirect{Redirect: &api.Redirect{Url: url}}})
}

// Shutdown stops the hub in two stages. Gracefully: it refuses new
// sessions, stops reading from the live ones, ends every channel (services
// flush, bounded by ctx) and closes every session with 1001 after writing
// what is queued for it. When ctx expires first, whatever is left is cut off
// at once. Shutdown returns when every goroutine of the hub has ended.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.draining = true
	sessions := make([]*Session, 0, len(h.sessions))
	for _, s := range h.sessions {
		sessions = append(sessions, s)
	}
	h.mu.Unlock()

	for _, s := range sessions {
		s.stopReading()
	}

	// End every channel quietly: the sessions are about to go, and a
	// client that reconnects re-opens its channels itself.
	h.mu.Lock()
	type ending struct {
		ch      *Channel
		members []member
	}
	var ends []ending
	for ch := range h.channels {
		ch.mu.Lock()
		if members, ok := ch.endLocked(); ok {
			ends = append(ends, ending{ch, members})
		}
		ch.mu.Unlock()
	}
	h.mu.Unlock()
	for _, e := range ends {
		e.ch.finish(e.members, false, ctx)
	}
	err := waitCtx(ctx, &h.channelsWG)

	for _, s := range sessions {
		s.queue.close(ReasonShutdown, true)
	}
	if werr := waitCtx(ctx, &h.sessionsWG); werr != nil {
		// Hard stage: cut the transports and end the sessions here
		// rather than wait for their read loops to notice.
		err = werr
		var closing sync.WaitGroup
		for _, s := range h.Sessions() {
			s.conn.Close(ReasonShutdown.Code, ReasonShutdown.Text)
			closing.Add(1)
			go func() {
				defer closing.Done()
				s.Close(ReasonShutdown)
			}()
		}
		closing.Wait()
		h.sessionsWG.Wait()
	}
	h.channelsWG.Wait()
	h.cancel()
	return err
}

// waitCtx waits for wg or ctx, whichever comes first.
func waitCtx(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
