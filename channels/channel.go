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

	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
)

// Channel is one service instance and the sessions attached to it. A named
// channel is shared by every session that attaches to its name; an anonymous
// one belongs to the session that created it and ends with it.
//
// Each member session knows the channel by its own id; the channel stamps
// that id on everything it sends to the session.
type Channel struct {
	hub     *Hub
	service string
	name    string
	stats   ServiceMetrics
	log     *slog.Logger
	ctx     context.Context // canceled when the channel ends
	cancel  context.CancelFunc
	inbox   *inbox
	ready   chan struct{} // closed once Open has returned
	done    chan struct{} // closed once the handler is closed

	// Set before ready is closed, read-only afterwards.
	handler Handler
	openErr error
	linger  time.Duration

	closeCtx context.Context // set by finish, before the inbox closes

	// mu guards the following.
	mu          sync.Mutex
	members     map[int32]member // joined: they receive what the channel sends
	pending     map[int32]member // opened but not yet joined (Attach running)
	ended       bool
	lingerTimer *time.Timer
}

type member struct {
	s  *Session
	id int32 // the channel's id in s
}

// leaveHow says how a session leaves a channel.
type leaveHow int

const (
	leaveDisconnect leaveHow = iota // closeChan DISCONNECT
	leaveTryClose                   // closeChan TRY_CLOSE
	leaveClose                      // closeChan CLOSE
	leaveVanish                     // the session's connection ended
)

var (
	errChannelEnded  = errors.New("channel ended")
	errSessionClosed = errors.New("session is closing")
	errWaitCanceled  = errors.New("wait canceled")
)

func (h *Hub) newChannel(service, name string) *Channel {
	ctx, cancel := context.WithCancel(h.ctx)
	log := h.log.With("service", service)
	if name != "" {
		log = log.With("channel", name)
	}
	return &Channel{
		hub:     h,
		service: service,
		name:    name,
		stats:   h.metrics.Service(service),
		log:     log,
		ctx:     ctx,
		cancel:  cancel,
		inbox:   newInbox(h.opts.ChannelQueueBytes),
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
		members: make(map[int32]member),
		pending: make(map[int32]member),
	}
}

// acquire finds or creates the channel an openChan asks for and binds it to
// s as pending. It returns the channel, its id in s and the state to report.
func (h *Hub) acquire(s *Session, service, name string, action api.OpenChannel_Action) (*Channel, int32, api.OpenChannelRes_State, error) {
	svc, ok := h.opts.Registry.Lookup(service)
	if !ok {
		return nil, 0, api.OpenChannelRes_ERROR, fmt.Errorf("unknown service %s", service)
	}
	if name == "" {
		if action == api.OpenChannel_ATTACH {
			return nil, 0, api.OpenChannelRes_ERROR, errors.New("ATTACH needs a channel name")
		}
		ch := h.newChannel(service, "")
		if err := ch.open(svc); err != nil {
			return nil, 0, api.OpenChannelRes_ERROR, err
		}
		id, err := ch.addPending(s)
		if err != nil {
			ch.Close()
			return nil, 0, api.OpenChannelRes_ERROR, err
		}
		return ch, id, api.OpenChannelRes_CREATED, nil
	}
	key := namedKey{service, name}
	for {
		h.mu.Lock()
		if h.draining {
			h.mu.Unlock()
			return nil, 0, api.OpenChannelRes_ERROR, ErrShuttingDown
		}
		ch := h.named[key]
		if ch == nil {
			if action == api.OpenChannel_ATTACH {
				h.mu.Unlock()
				return nil, 0, api.OpenChannelRes_ERROR, fmt.Errorf("no channel named %q on service %s", name, service)
			}
			ch = h.newChannel(service, name)
			h.named[key] = ch
			h.mu.Unlock()
			if err := ch.open(svc); err != nil {
				return nil, 0, api.OpenChannelRes_ERROR, err
			}
			id, err := ch.addPending(s)
			if err != nil {
				return nil, 0, api.OpenChannelRes_ERROR, err
			}
			return ch, id, api.OpenChannelRes_CREATED, nil
		}
		h.mu.Unlock()
		if action == api.OpenChannel_CREATE {
			return nil, 0, api.OpenChannelRes_ERROR, fmt.Errorf("channel %q already exists on service %s", name, service)
		}
		<-ch.ready
		if ch.openErr != nil {
			return nil, 0, api.OpenChannelRes_ERROR, ch.openErr
		}
		id, err := ch.addPending(s)
		if errors.Is(err, errChannelEnded) {
			// It ended after we found it; an ended channel is already
			// gone from the registry, so looking again makes progress.
			continue
		}
		if err != nil {
			return nil, 0, api.OpenChannelRes_ERROR, err
		}
		return ch, id, api.OpenChannelRes_ATTACHED, nil
	}
}

// open runs the service's Open and, on success, registers the channel and
// starts its goroutine. On failure a named channel leaves the registry and
// whoever waits on it sees the same error.
func (ch *Channel) open(svc Service) error {
	h := ch.hub
	handler, err := safeOpen(svc, ch)
	h.mu.Lock()
	if err == nil && h.draining {
		err = ErrShuttingDown
	}
	if err != nil {
		if ch.name != "" && h.named[namedKey{ch.service, ch.name}] == ch {
			delete(h.named, namedKey{ch.service, ch.name})
		}
		h.mu.Unlock()
		ch.openErr = err
		ch.cancel()
		close(ch.ready)
		close(ch.done)
		if handler != nil {
			ctx, cancel := context.WithTimeout(context.Background(), h.opts.CloseTimeout)
			handler.Close(ctx)
			cancel()
		}
		return err
	}
	ch.handler = handler
	if l, ok := handler.(Lingerer); ok && ch.name != "" {
		ch.linger = l.Linger()
	}
	h.channels[ch] = struct{}{}
	h.channelsWG.Add(1)
	h.mu.Unlock()
	h.metrics.ChannelOpened(ch.service)
	go ch.run()
	close(ch.ready)
	return nil
}

func safeOpen(svc Service, ch *Channel) (handler Handler, err error) {
	defer func() {
		if r := recover(); r != nil {
			ch.log.Error("service Open panicked", "panic", r, "stack", string(debug.Stack()))
			handler, err = nil, errors.New("internal error")
		}
	}()
	handler, err = svc.Open(ch)
	if err == nil && handler == nil {
		err = errors.New("internal error: service returned no handler")
	}
	return handler, err
}

// addPending binds the channel to s and records s as pending.
func (ch *Channel) addPending(s *Session) (int32, error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.ended {
		return 0, errChannelEnded
	}
	if m, ok := ch.members[s.id]; ok {
		return 0, fmt.Errorf("session already holds channel %q as id %d", ch.name, m.id)
	}
	if m, ok := ch.pending[s.id]; ok {
		return 0, fmt.Errorf("session already holds channel %q as id %d", ch.name, m.id)
	}
	id, ok := s.bind(ch)
	if !ok {
		return 0, errSessionClosed
	}
	ch.pending[s.id] = member{s, id}
	if ch.lingerTimer != nil {
		ch.lingerTimer.Stop()
		ch.lingerTimer = nil
	}
	return id, nil
}

// attach lets the handler greet a pending session, then makes sure it has
// joined.
func (ch *Channel) attach(s *Session) {
	if a, ok := ch.handler.(Attacher); ok {
		ch.guard("Attach", func() { a.Attach(s) })
	}
	ch.Join(s)
}

// guard runs a handler hook, logging a panic instead of crashing.
func (ch *Channel) guard(what string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			ch.log.Error("service "+what+" panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	fn()
}

// Join makes a pending session a member: initial is queued to it, and from
// this moment it receives everything the channel sends. It is meant to be
// called from [Attacher.Attach]; joining twice is a no-op.
func (ch *Channel) Join(s *Session, initial ...*api.Command) {
	bodies := make([][]byte, 0, len(initial))
	for _, cmd := range initial {
		if body, ok := ch.encode(cmd); ok {
			bodies = append(bodies, body)
		}
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	m, ok := ch.pending[s.id]
	if !ok {
		return
	}
	delete(ch.pending, s.id)
	ch.members[s.id] = m
	for _, body := range bodies {
		m.s.enqueue(outFrame{channel: m.id, body: body, stats: ch.stats})
	}
}

// leave removes s from the channel and ends the channel when how and the
// channel's kind say so. It reports whether the channel has ended.
func (ch *Channel) leave(s *Session, how leaveHow) bool {
	h := ch.hub
	h.mu.Lock()
	ch.mu.Lock()
	if ch.ended {
		ch.mu.Unlock()
		h.mu.Unlock()
		return true
	}
	_, joined := ch.members[s.id]
	_, pending := ch.pending[s.id]
	delete(ch.members, s.id)
	delete(ch.pending, s.id)
	empty := len(ch.members)+len(ch.pending) == 0
	var endNow bool
	switch {
	case how == leaveClose:
		endNow = true
	case !empty:
	case ch.name == "", how == leaveTryClose, ch.linger <= 0:
		endNow = true
	default:
		ch.startLingerLocked()
	}
	var members []member
	if endNow {
		members, _ = ch.endLocked()
	}
	ch.mu.Unlock()
	h.mu.Unlock()

	if endNow {
		ch.finish(members, true, nil)
		return true
	}
	if d, ok := ch.handler.(Detacher); ok && (joined || pending) {
		ch.guard("Detach", func() { d.Detach(s) })
	}
	return false
}

// startLingerLocked keeps an orphaned named channel for its linger time.
func (ch *Channel) startLingerLocked() {
	if ch.lingerTimer != nil {
		ch.lingerTimer.Stop()
	}
	ch.log.Debug("channel lingering", "for", ch.linger)
	ch.lingerTimer = time.AfterFunc(ch.linger, ch.lingerExpired)
}

func (ch *Channel) lingerExpired() {
	h := ch.hub
	h.mu.Lock()
	ch.mu.Lock()
	var members []member
	ended := false
	if len(ch.members)+len(ch.pending) == 0 {
		members, ended = ch.endLocked()
	}
	ch.mu.Unlock()
	h.mu.Unlock()
	if ended {
		ch.finish(members, true, nil)
	}
}

// endLocked marks the channel ended, takes it out of the hub and returns
// the sessions that still held it. Both h.mu and ch.mu must be held. It
// reports false when the channel had already ended.
func (ch *Channel) endLocked() ([]member, bool) {
	if ch.ended {
		return nil, false
	}
	ch.ended = true
	h := ch.hub
	if ch.name != "" && h.named[namedKey{ch.service, ch.name}] == ch {
		delete(h.named, namedKey{ch.service, ch.name})
	}
	delete(h.channels, ch)
	if ch.lingerTimer != nil {
		ch.lingerTimer.Stop()
		ch.lingerTimer = nil
	}
	members := make([]member, 0, len(ch.members)+len(ch.pending))
	for _, m := range ch.members {
		members = append(members, m)
	}
	for _, m := range ch.pending {
		members = append(members, m)
	}
	clear(ch.members)
	clear(ch.pending)
	return members, true
}

// finish completes the end of a channel outside the locks: sessions that
// still held it forget it (and, when notify, are told with an unsolicited
// closeChanRes{CLOSE}); commands already queued are still handled, then the
// handler is closed within closeCtx (nil: the hub's CloseTimeout).
func (ch *Channel) finish(members []member, notify bool, closeCtx context.Context) {
	for _, m := range members {
		m.s.unbind(m.id, ch)
		if notify {
			m.s.Send0(&api.Command{Body: &api.Command_CloseChanRes{CloseChanRes: &api.CloseChannelRes{Id: m.id, Status: api.CloseChannelRes_CLOSE}}})
		}
	}
	ch.closeCtx = closeCtx
	ch.cancel()
	ch.inbox.close()
	ch.hub.metrics.ChannelClosed(ch.service)
}

// Close ends the channel for every session attached to it; each is told with
// an unsolicited closeChanRes{CLOSE}. A service calls it when its instance
// is over (the process behind it exited for good, say).
func (ch *Channel) Close() {
	h := ch.hub
	h.mu.Lock()
	ch.mu.Lock()
	members, ended := ch.endLocked()
	ch.mu.Unlock()
	h.mu.Unlock()
	if ended {
		ch.finish(members, true, nil)
	}
}

// Done is closed once the channel has ended and its handler is closed.
func (ch *Channel) Done() <-chan struct{} { return ch.done }

// run is the channel's goroutine: it handles commands in order until the
// channel ends and its inbox is drained, then closes the handler.
func (ch *Channel) run() {
	defer ch.hub.channelsWG.Done()
	defer close(ch.done)
	for {
		req, ok := ch.inbox.pop()
		if !ok {
			break
		}
		ch.handle(req)
	}
	ctx := ch.closeCtx
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, ch.hub.opts.CloseTimeout)
	defer cancel()
	ch.guard("Close", func() {
		if err := ch.handler.Close(ctx); err != nil {
			ch.log.Warn("service close", "err", err)
		}
	})
}

// receive hands a command from s to the channel's goroutine.
func (ch *Channel) receive(s *Session, cmd *api.Command, size int) {
	req := &Request{Session: s, Command: cmd, ch: ch, received: time.Now(), size: size}
	if s.ReadOnly() && ch.mutates(cmd) {
		req.Fail(ErrPermissionDenied)
		ch.stats.Handled(time.Since(req.received))
		return
	}
	if err := ch.inbox.push(req, s.queue.closed); errors.Is(err, errInboxClosed) {
		s.protocolError(fmt.Sprintf("channel %d is closed", cmd.Channel))
	}
}

func (ch *Channel) mutates(cmd *api.Command) bool {
	if p, ok := ch.handler.(MutationPolicy); ok {
		return p.Mutates(cmd)
	}
	return IsMutation(cmd)
}

// handle runs one command through the handler and sends its reply.
func (ch *Channel) handle(req *Request) {
	defer func() { ch.stats.Handled(time.Since(req.received)) }()
	name := BodyName(req.Command)
	if req.Command.Body == nil {
		req.Fail(&unsupportedError{body: name})
		return
	}
	reply, err := ch.safeHandle(req)
	switch {
	case err != nil:
		req.Fail(err)
	case reply != nil:
		req.Reply(reply)
	}
}

func (ch *Channel) safeHandle(req *Request) (reply *api.Command, err error) {
	defer func() {
		if r := recover(); r != nil {
			ch.log.Error("service Handle panicked", "body", BodyName(req.Command), "panic", r, "stack", string(debug.Stack()))
			reply, err = nil, errors.New("internal error")
		}
	}()
	return ch.handler.Handle(ch.ctx, req)
}

// errorText is the `error` reply for err.
func (ch *Channel) errorText(err error) string {
	var unsupported *unsupportedError
	if errors.As(err, &unsupported) {
		return fmt.Sprintf("unsupported command %s on service %s", unsupported.body, ch.service)
	}
	return err.Error()
}

// encode marshals cmd without its channel field, which the writer of each
// receiving session prepends.
func (ch *Channel) encode(cmd *api.Command) ([]byte, bool) {
	cmd.Channel = 0
	body, err := proto.Marshal(cmd)
	if err != nil {
		ch.log.Error("encode command", "body", BodyName(cmd), "err", err)
		return nil, false
	}
	return body, true
}

// Send sends cmd to the channel's members as cmd.Session addresses them:
// 0 every member, > 1 that session only, < 0 every member except
// abs(session), 1 nobody (internal). Broadcasts carry no ref. Send takes
// ownership of cmd. It never blocks: a member whose queue overflows is cut
// off.
func (ch *Channel) Send(cmd *api.Command) {
	target := cmd.Session
	if target == 1 {
		return
	}
	body, ok := ch.encode(cmd)
	if !ok {
		return
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if target > 1 {
		if m, ok := ch.members[target]; ok {
			m.s.enqueue(outFrame{channel: m.id, body: body, stats: ch.stats})
		}
		return
	}
	for sid, m := range ch.members {
		if sid == -target {
			continue
		}
		m.s.enqueue(outFrame{channel: m.id, body: body, stats: ch.stats})
	}
}

// SendTo sends cmd to s alone, if s is a member. It takes ownership of cmd.
func (ch *Channel) SendTo(s *Session, cmd *api.Command) {
	body, ok := ch.encode(cmd)
	if !ok {
		return
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if m, ok := ch.members[s.id]; ok && m.s == s {
		m.s.enqueue(outFrame{channel: m.id, body: body, stats: ch.stats})
	}
}

// Members returns the sessions that currently receive the channel's
// messages.
func (ch *Channel) Members() []*Session {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	out := make([]*Session, 0, len(ch.members))
	for _, m := range ch.members {
		out = append(out, m.s)
	}
	return out
}

// Service is the wire name of the channel's service.
func (ch *Channel) Service() string { return ch.service }

// Name is the channel's name; empty for an anonymous channel.
func (ch *Channel) Name() string { return ch.name }

// Context is canceled when the channel ends.
func (ch *Channel) Context() context.Context { return ch.ctx }

// Logger is the channel's logger.
func (ch *Channel) Logger() *slog.Logger { return ch.log }

// Request is one command a session sent on a channel.
type Request struct {
	Session *Session
	Command *api.Command

	ch       *Channel
	received time.Time
	size     int
	replied  atomic.Bool
}

// Channel is the channel the command was sent on.
func (r *Request) Channel() *Channel { return r.ch }

// Reply sends the final reply to the request: cmd gets the request's ref and
// goes to the requesting session only. Only the first reply counts.
func (r *Request) Reply(cmd *api.Command) {
	if !r.replied.CompareAndSwap(false, true) {
		r.ch.log.Warn("second reply to one request dropped", "body", BodyName(cmd))
		return
	}
	cmd.Ref = r.Command.Ref
	cmd.Session = 0
	r.ch.SendTo(r.Session, cmd)
}

// Fail answers the request with `error` and err's text.
func (r *Request) Fail(err error) {
	r.Reply(errorCommand("", r.ch.errorText(err)))
}
