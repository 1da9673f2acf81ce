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

// Session is one client connection. Its id is ≥ 2 and unique for the life
// of the hub.
type Session struct {
	hub        *Hub
	id         int32
	ident      Identity
	conn       Conn
	log        *slog.Logger
	queue      *writeQueue
	writerDone chan struct{}
	draining   atomic.Bool // frames are no longer dispatched
	closeOnce  sync.Once
	overflowed atomic.Bool
	aborting   sync.WaitGroup // transport closes started by abort
	recorder   atomic.Pointer[FrameRecorder]

	// mu guards the following.
	mu       sync.Mutex
	chans    map[int32]*Channel
	lastChan int32
	closed   bool
}

func newSession(h *Hub, id int32, conn Conn, ident Identity) *Session {
	return &Session{
		hub:        h,
		id:         id,
		ident:      ident,
		conn:       conn,
		log:        h.log.With("session", id),
		queue:      newWriteQueue(h.opts.WriteQueueBytes),
		writerDone: make(chan struct{}),
		chans:      make(map[int32]*Channel),
	}
}

// ID is the session id (≥ 2).
func (s *Session) ID() int32 { return s.id }

// Identity is who the session acts for.
func (s *Session) Identity() Identity { return s.ident }

// ReadOnly reports whether the session may only read.
func (s *Session) ReadOnly() bool { return s.ident.ReadOnly }

// Logger is the session's logger.
func (s *Session) Logger() *slog.Logger { return s.log }

// Send0 queues cmd on channel 0 of this session (toast, redirect, portOpen,
// protocolError).
func (s *Session) Send0(cmd *api.Command) {
	cmd.Channel = 0
	body, err := proto.Marshal(cmd)
	if err != nil {
		s.log.Error("encode channel-0 command", "body", BodyName(cmd), "err", err)
		return
	}
	s.enqueue(outFrame{channel: 0, body: body, stats: s.hub.chan0})
}

// enqueue queues one frame without ever blocking; a session whose queue
// overflows is closed.
func (s *Session) enqueue(f outFrame) {
	if _, overflow := s.queue.push(f); overflow && s.overflowed.CompareAndSwap(false, true) {
		s.hub.metrics.QueueOverflow()
		s.log.Warn("closing session: write queue overflow", "limit_bytes", s.queue.limit)
		s.abort(ReasonOverflow)
	}
}

// abort ends the session's transport at once, without writing what is
// queued: the writer may be blocked on a peer that stopped reading, and
// only closing the transport releases it. The close runs in a goroutine of
// its own (a transport's Close may take its close-handshake time) so the
// caller, often a broadcast holding a channel's lock, never waits; Close
// waits for it.
func (s *Session) abort(reason CloseReason) {
	if !s.queue.close(reason, false) {
		return
	}
	s.aborting.Add(1)
	go func() {
		defer s.aborting.Done()
		s.conn.Close(reason.Code, reason.Text)
	}()
}

// QueueLimit is the most bytes the session may have queued.
func (s *Session) QueueLimit() int { return s.queue.limit }

// WaitQueueBelow waits until at most n bytes are queued for the session (or
// being written to it). A service streaming to one session uses it to go
// at the session's pace instead of overflowing its queue. It fails when the
// session closes or ctx ends.
func (s *Session) WaitQueueBelow(ctx context.Context, n int) error {
	if err := s.queue.waitBelow(ctx.Done(), n); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return nil
}

// errorCommand builds an `error` reply.
func errorCommand(ref, text string) *api.Command {
	return &api.Command{Ref: ref, Body: &api.Command_Error{Error: text}}
}

// protocolError tells the client on channel 0 that it broke the protocol.
func (s *Session) protocolError(text string) {
	s.Send0(&api.Command{Body: &api.Command_ProtocolError{ProtocolError: &api.ProtocolError{Text: text}}})
}

// Reject ends the session for a protocol violation the transport detected
// (a text frame, a frame over the read limit): it sends protocolError with
// the reason, then closes with the reason's code once that is written.
func (s *Session) Reject(reason CloseReason) {
	s.stopReading()
	s.protocolError(reason.Text)
	s.queue.close(reason, true)
}

func (s *Session) stopReading() { s.draining.Store(true) }

// HandleFrame decodes and dispatches one binary frame. It is called by the
// transport's read loop, one frame at a time. Channel-0 commands are
// processed before it returns; commands for other channels are handed to the
// channel's goroutine, waiting while its inbox is full.
func (s *Session) HandleFrame(frame []byte) {
	if s.draining.Load() {
		return
	}
	if rec := s.recorder.Load(); rec != nil {
		(*rec).RecordFrame(true, nil, frame)
	}
	cmd, err := decodeCommand(frame)
	if err != nil {
		s.hub.unknown.FramesIn(1, len(frame))
		s.Reject(CloseReason{ReasonUndecodable.Code, ReasonUndecodable.Label, "undecodable frame: " + err.Error()})
		return
	}
	if cmd.Channel == 0 {
		s.hub.chan0.FramesIn(1, len(frame))
		s.handleChannel0(cmd)
		return
	}
	ch := s.channel(cmd.Channel)
	if ch == nil {
		s.hub.unknown.FramesIn(1, len(frame))
		s.protocolError(fmt.Sprintf("channel %d is not open", cmd.Channel))
		return
	}
	ch.stats.FramesIn(1, len(frame))
	ch.receive(s, cmd, len(frame))
}

func (s *Session) handleChannel0(cmd *api.Command) {
	start := time.Now()
	defer func() { s.hub.chan0.Handled(time.Since(start)) }()
	switch body := cmd.Body.(type) {
	case *api.Command_OpenChan:
		s.openChannel(cmd.Ref, body.OpenChan)
	case *api.Command_CloseChan:
		s.closeChannel(cmd.Ref, body.CloseChan)
	case *api.Command_Ping:
		s.Send0(&api.Command{Ref: cmd.Ref, Body: &api.Command_Pong{Pong: &api.Pong{}}})
	default:
		fd := cmd.ProtoReflect().WhichOneof(bodyOneof)
		var fn Channel0Handler
		if fd != nil {
			fn = s.hub.channel0[fd.Number()]
		}
		if fn == nil {
			s.Send0(errorCommand(cmd.Ref, fmt.Sprintf("unsupported command %s on channel 0", BodyName(cmd))))
			return
		}
		reply, err := s.runChannel0(fn, cmd)
		switch {
		case err != nil:
			s.Send0(errorCommand(cmd.Ref, err.Error()))
		case reply != nil:
			reply.Ref = cmd.Ref
			s.Send0(reply)
		}
	}
}

// runChannel0 runs a channel-0 handler, turning a panic into an error.
func (s *Session) runChannel0(fn Channel0Handler, cmd *api.Command) (reply *api.Command, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("channel-0 handler panicked", "body", BodyName(cmd), "panic", r, "stack", string(debug.Stack()))
			reply, err = nil, errors.New("internal error")
		}
	}()
	return fn(s.hub.ctx, s, cmd)
}

func (s *Session) openChannel(ref string, req *api.OpenChannel) {
	reply := func(id int32, state api.OpenChannelRes_State, text string) {
		s.Send0(&api.Command{Ref: ref, Body: &api.Command_OpenChanRes{OpenChanRes: &api.OpenChannelRes{Id: id, State: state, Error: text}}})
	}
	ch, id, state, err := s.hub.acquire(s, req.Service, req.Name, req.Action)
	if err != nil {
		s.log.Debug("open refused", "service", req.Service, "name", req.Name, "err", err)
		reply(0, api.OpenChannelRes_ERROR, err.Error())
		return
	}
	reply(id, state, "")
	ch.attach(s)
}

// bind gives ch a fresh id in this session. It reports false when the
// session is closing.
func (s *Session) bind(ch *Channel) (int32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, false
	}
	s.lastChan++
	s.chans[s.lastChan] = ch
	return s.lastChan, true
}

// unbind forgets id if it still names ch.
func (s *Session) unbind(id int32, ch *Channel) {
	s.mu.Lock()
	if s.chans[id] == ch {
		delete(s.chans, id)
	}
	s.mu.Unlock()
}

func (s *Session) channel(id int32) *Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chans[id]
}

func (s *Session) closeChannel(ref string, req *api.CloseChannel) {
	reply := func(status api.CloseChannelRes_Status) {
		s.Send0(&api.Command{Ref: ref, Body: &api.Command_CloseChanRes{CloseChanRes: &api.CloseChannelRes{Id: req.Id, Status: status}}})
	}
	if req.Id == 0 {
		// A closeChanRes with id 0 breaks the official client (proto3
		// drops the zero id); channel 0 is never closed anyway.
		s.Send0(errorCommand(ref, "closeChan: channel 0 cannot be closed"))
		return
	}
	s.mu.Lock()
	ch := s.chans[req.Id]
	delete(s.chans, req.Id)
	s.mu.Unlock()
	if ch == nil {
		reply(api.CloseChannelRes_NOTHING)
		return
	}
	var how leaveHow
	switch req.Action {
	case api.CloseChannel_DISCONNECT:
		how = leaveDisconnect
	case api.CloseChannel_TRY_CLOSE:
		how = leaveTryClose
	case api.CloseChannel_CLOSE:
		how = leaveClose
	default:
		how = leaveTryClose
	}
	if ch.leave(s, how) {
		reply(api.CloseChannelRes_CLOSE)
	} else {
		reply(api.CloseChannelRes_DISCONNECT)
	}
}

// Close ends the session: it stops dispatching, detaches the session from
// every channel (an anonymous channel ends with it), writes what is queued
// (bounded by the hub's FlushTimeout), closes the transport and waits for
// the writer. The first reason given to the session (here or earlier, such
// as a queue overflow) is the one counted. Close is idempotent; the
// transport's read loop calls it when it ends.
func (s *Session) Close(reason CloseReason) {
	s.closeOnce.Do(func() {
		s.stopReading()
		s.mu.Lock()
		s.closed = true
		chans := s.chans
		s.chans = nil
		s.mu.Unlock()
		for _, ch := range chans {
			ch.leave(s, leaveVanish)
		}
		s.queue.close(reason, true)
		timer := time.NewTimer(s.hub.opts.FlushTimeout)
		select {
		case <-s.writerDone:
		case <-timer.C:
			s.conn.Close(reason.Code, reason.Text)
			<-s.writerDone
		}
		timer.Stop()
		s.aborting.Wait()
		s.queue.mu.Lock()
		first := s.queue.reason
		s.queue.mu.Unlock()
		s.hub.metrics.SessionClosed(first)
		if first.Label != ReasonClientClosed.Label && first.Label != ReasonShutdown.Label {
			s.log.Info("session closed", "reason", first.Label)
		} else {
			s.log.Debug("session closed", "reason", first.Label)
		}
		s.hub.removeSession(s)
	})
}

// FrameRecorder sees every frame of a session, in and out, as it crosses
// the transport (a diagnostic recording). RecordFrame is called from the
// session's read loop (in) and writer (out), so it must be quick and must
// copy what it keeps: the frame is prefix followed by body, and neither
// may be retained.
type FrameRecorder interface {
	RecordFrame(in bool, prefix, body []byte)
}

// SetRecorder starts recording the session's frames with r, or stops when
// r is nil.
func (s *Session) SetRecorder(r FrameRecorder) {
	if r == nil {
		s.recorder.Store(nil)
		return
	}
	s.recorder.Store(&r)
}
