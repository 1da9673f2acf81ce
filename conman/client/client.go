// Package client is a Go client of the conman protocol: it dials a daemon
// with a token, waits for the handshake, opens and closes channels, sends
// requests and awaits their replies, and receives streams.
//
// It is what the CLI, tools and the end-to-end tests use. It follows the
// rules the official JavaScript client relies on (a reply is the first
// message on the channel carrying the request's ref), and it records every
// breach of them by the server as a [Violation], so tests can assert there
// are none.
//
// # Goroutines
//
// One reader goroutine per client decodes frames and dispatches them to
// waiting requests or to per-channel queues; it never blocks on a slow
// consumer (queues grow instead: this is a test and tooling client). Writes
// are serialised by a mutex.
package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
)

// Options configures [Dial].
type Options struct {
	// Header is sent with the upgrade request (an Origin, say).
	Header http.Header
	// Trace, when set, sees every decoded server message in arrival order,
	// from the reader goroutine. It must not block.
	Trace func(*api.Command)
	// HandshakeTimeout bounds the wait for containerState READY (default
	// 10 s).
	HandshakeTimeout time.Duration
	// ReadLimit bounds one frame from the server (default 64 MiB).
	ReadLimit int64
	// OnPing, when set, is called from the reader goroutine for every
	// websocket ping before it is answered.
	OnPing func()
}

// ErrClosed is returned once the connection has ended.
var ErrClosed = errors.New("client: connection closed")

// CloseError is how the connection ended: the close code and text the
// server sent (1006 when it sent none).
type CloseError struct {
	Code int
	Text string
}

func (e *CloseError) Error() string { return fmt.Sprintf("client: closed with %d %q", e.Code, e.Text) }

// Is makes errors.Is(err, ErrClosed) hold for every CloseError.
func (e *CloseError) Is(target error) bool { return target == ErrClosed }

// Violation is a server message that breaks a rule clients rely on.
type Violation struct {
	Command *api.Command
	Problem string
}

// Client is one connection (one session) to a daemon.
type Client struct {
	ws      *websocket.Conn
	opts    Options
	done    chan struct{} // closed when the reader ends
	writeMu sync.Mutex

	// mu guards the following.
	mu         sync.Mutex
	chan0      queue
	pending0   map[string]chan *api.Command // channel-0 requests by ref
	channels   map[int32]*Channel
	violations []Violation
	closeErr   *CloseError
	boot       []*api.Command
}

// Dial connects to rawURL (ws://host:port/wsv2/<token>, or the daemon's
// base http(s) URL plus token) and waits for containerState READY.
func Dial(ctx context.Context, rawURL string, opts Options) (*Client, error) {
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = 10 * time.Second
	}
	if opts.ReadLimit <= 0 {
		opts.ReadLimit = 64 << 20
	}
	dialer := websocket.Dialer{HandshakeTimeout: opts.HandshakeTimeout, ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10}
	ws, resp, err := dialer.DialContext(ctx, rawURL, opts.Header)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("client: dial: %w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("client: dial: %w", err)
	}
	ws.SetReadLimit(opts.ReadLimit)
	if opts.OnPing != nil {
		ws.SetPingHandler(func(data string) error {
			opts.OnPing()
			err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
			if errors.Is(err, websocket.ErrCloseSent) {
				return nil
			}
			return err
		})
	}
	c := &Client{
		ws:       ws,
		opts:     opts,
		done:     make(chan struct{}),
		pending0: make(map[string]chan *api.Command),
		channels: make(map[int32]*Channel),
	}
	c.chan0.init()
	ready := make(chan struct{})
	go c.readLoop(ready)
	timer := time.NewTimer(opts.HandshakeTimeout)
	defer timer.Stop()
	select {
	case <-ready:
		return c, nil
	case <-c.done:
		return nil, c.Err()
	case <-timer.C:
		ws.Close()
		<-c.done
		return nil, errors.New("client: no containerState READY in time")
	case <-ctx.Done():
		ws.Close()
		<-c.done
		return nil, ctx.Err()
	}
}

// URL builds the websocket address of a daemon at addr (host:port) for
// token.
func URL(addr, token string) string {
	return "ws://" + addr + "/wsv2/" + url.PathEscape(token)
}

// Boot returns the channel-0 messages that came before READY
// (bootStatus), in order.
func (c *Client) Boot() []*api.Command {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*api.Command(nil), c.boot...)
}

func newRef() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Send writes cmd as one binary frame.
func (c *Client) Send(cmd *api.Command) error {
	b, err := proto.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("client: encode: %w", err)
	}
	return c.WriteRaw(websocket.BinaryMessage, b)
}

// WriteRaw writes one frame of the given websocket message type as is (for
// tests of malformed input).
func (c *Client) WriteRaw(messageType int, data []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	select {
	case <-c.done:
		return c.Err()
	default:
	}
	c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.ws.WriteMessage(messageType, data); err != nil {
		return fmt.Errorf("client: write: %w", err)
	}
	return nil
}

// request0 sends cmd on channel 0 with a fresh ref and waits for the reply
// with that ref.
func (c *Client) request0(ctx context.Context, cmd *api.Command) (*api.Command, error) {
	cmd.Channel = 0
	cmd.Ref = newRef()
	reply := make(chan *api.Command, 1)
	c.mu.Lock()
	if c.closeErr != nil {
		c.mu.Unlock()
		return nil, c.closeErr
	}
	c.pending0[cmd.Ref] = reply
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending0, cmd.Ref)
		c.mu.Unlock()
	}
	if err := c.Send(cmd); err != nil {
		forget()
		return nil, err
	}
	select {
	case r, ok := <-reply:
		if !ok {
			return nil, c.Err()
		}
		return r, nil
	case <-c.done:
		forget()
		return nil, c.Err()
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
}

// Ping sends ping and waits for the pong; it returns the round trip.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	r, err := c.request0(ctx, &api.Command{Body: &api.Command_Ping{Ping: &api.Ping{}}})
	if err != nil {
		return 0, err
	}
	if r.GetPong() == nil {
		return 0, fmt.Errorf("client: ping answered with %v", r)
	}
	return time.Since(start), nil
}

// Request0 sends cmd on channel 0 and returns the reply carrying its ref.
func (c *Client) Request0(ctx context.Context, cmd *api.Command) (*api.Command, error) {
	return c.request0(ctx, cmd)
}

// OpenError is an openChanRes{ERROR}.
type OpenError struct{ Text string }

func (e *OpenError) Error() string { return "client: open refused: " + e.Text }

// Open opens a channel: an anonymous one when name is empty.
func (c *Client) Open(ctx context.Context, service, name string, action api.OpenChannel_Action) (*Channel, error) {
	ch, _, err := c.OpenState(ctx, service, name, action)
	return ch, err
}

// OpenState is Open that also reports whether the channel was created or
// attached.
func (c *Client) OpenState(ctx context.Context, service, name string, action api.OpenChannel_Action) (*Channel, api.OpenChannelRes_State, error) {
	r, err := c.request0(ctx, &api.Command{Body: &api.Command_OpenChan{OpenChan: &api.OpenChannel{Service: service, Name: name, Action: action}}})
	if err != nil {
		return nil, 0, err
	}
	res := r.GetOpenChanRes()
	switch {
	case res == nil:
		return nil, 0, fmt.Errorf("client: openChan answered with %v", r)
	case res.State == api.OpenChannelRes_ERROR:
		return nil, res.State, &OpenError{Text: res.Error}
	}
	c.mu.Lock()
	ch := c.channels[res.Id]
	c.mu.Unlock()
	if ch == nil {
		return nil, 0, fmt.Errorf("client: openChanRes without a channel id")
	}
	return ch, res.State, nil
}

// Chan0 returns the next unsolicited channel-0 message (toast, redirect,
// portOpen, protocolError, closeChanRes of a channel the server ended),
// waiting for one.
func (c *Client) Chan0(ctx context.Context) (*api.Command, error) {
	return c.chan0.pop(ctx, c.done, c.Err)
}

// Violations returns every server message so far that broke a client rule.
func (c *Client) Violations() []Violation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Violation(nil), c.violations...)
}

// Done is closed once the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is how the connection ended, or nil while it is open.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeErr == nil {
		return nil
	}
	return c.closeErr
}

// Close closes the connection normally and waits for the reader.
func (c *Client) Close() error {
	c.writeMu.Lock()
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.writeMu.Unlock()
	timer := time.NewTimer(2 * time.Second)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
	}
	c.ws.Close()
	<-c.done
	return nil
}

// Kill drops the TCP connection without a close handshake, as a crashed
// peer would.
func (c *Client) Kill() {
	c.ws.NetConn().Close()
	<-c.done
}

// Conn exposes the websocket, for tests that stall or break it.
func (c *Client) Conn() *websocket.Conn { return c.ws }

func (c *Client) violation(cmd *api.Command, format string, args ...any) {
	c.violations = append(c.violations, Violation{Command: cmd, Problem: fmt.Sprintf(format, args...)})
}

// readLoop is the reader goroutine.
func (c *Client) readLoop(ready chan struct{}) {
	defer close(c.done)
	isReady := false
	for {
		kind, data, err := c.ws.ReadMessage()
		if err != nil {
			ce := &CloseError{Code: websocket.CloseAbnormalClosure, Text: err.Error()}
			var wsErr *websocket.CloseError
			if errors.As(err, &wsErr) {
				ce = &CloseError{Code: wsErr.Code, Text: wsErr.Text}
			}
			c.finish(ce)
			return
		}
		cmd := new(api.Command)
		if kind != websocket.BinaryMessage {
			c.mu.Lock()
			c.violation(nil, "a %d frame (only binary frames are allowed)", kind)
			c.mu.Unlock()
			continue
		}
		if err := proto.Unmarshal(data, cmd); err != nil {
			c.mu.Lock()
			c.violation(nil, "undecodable frame: %v", err)
			c.mu.Unlock()
			continue
		}
		if c.opts.Trace != nil {
			c.opts.Trace(cmd)
		}
		if !isReady {
			c.mu.Lock()
			if cs := cmd.GetContainerState(); cmd.Channel == 0 && cs != nil && cs.State == api.ContainerState_READY {
				isReady = true
				close(ready)
			} else if cmd.Channel == 0 {
				c.boot = append(c.boot, cmd)
			} else {
				c.violation(cmd, "message on channel %d before READY", cmd.Channel)
			}
			c.mu.Unlock()
			continue
		}
		c.dispatch(cmd)
	}
}

// dispatch routes one message after the handshake.
func (c *Client) dispatch(cmd *api.Command) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cmd.Channel == 0 {
		switch body := cmd.Body.(type) {
		case *api.Command_OpenChanRes:
			if res := body.OpenChanRes; res.State != api.OpenChannelRes_ERROR {
				if res.Id == 0 {
					c.violation(cmd, "openChanRes with id 0")
				} else if c.channels[res.Id] != nil {
					c.violation(cmd, "openChanRes reuses open id %d", res.Id)
				} else {
					c.channels[res.Id] = newChannel(c, res.Id)
				}
			}
		case *api.Command_CloseChanRes:
			id := body.CloseChanRes.Id
			if id == 0 {
				c.violation(cmd, "closeChanRes with id 0")
			}
			ch := c.channels[id]
			delete(c.channels, id)
			if ch != nil {
				ch.ended(body.CloseChanRes.Status)
			}
		}
		if cmd.Ref != "" {
			if reply, ok := c.pending0[cmd.Ref]; ok {
				delete(c.pending0, cmd.Ref)
				reply <- cmd
				return
			}
		}
		c.chan0.push(cmd)
		return
	}
	ch := c.channels[cmd.Channel]
	if ch == nil {
		c.violation(cmd, "message on channel %d, which is not open", cmd.Channel)
		return
	}
	ch.deliver(cmd)
}

// finish records how the connection ended and fails everything waiting.
func (c *Client) finish(ce *CloseError) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeErr = ce
	for ref, reply := range c.pending0 {
		delete(c.pending0, ref)
		close(reply)
	}
	for _, ch := range c.channels {
		ch.ended(api.CloseChannelRes_NOTHING)
	}
}

// Channel is one open channel of a client.
type Channel struct {
	c  *Client
	id int32

	// These are guarded by c.mu.
	pending map[string]chan *api.Command
	stream  queue
	closed  bool
	status  api.CloseChannelRes_Status
	gone    chan struct{} // closed when the channel ends
}

func newChannel(c *Client, id int32) *Channel {
	ch := &Channel{c: c, id: id, pending: make(map[string]chan *api.Command), gone: make(chan struct{})}
	ch.stream.init()
	return ch
}

// ID is the channel's id in this session.
func (ch *Channel) ID() int32 { return ch.id }

// deliver is called with c.mu held.
func (ch *Channel) deliver(cmd *api.Command) {
	if cmd.Ref != "" {
		if reply, ok := ch.pending[cmd.Ref]; ok {
			delete(ch.pending, cmd.Ref)
			reply <- cmd
			return
		}
	}
	ch.stream.push(cmd)
}

// ended is called with c.mu held.
func (ch *Channel) ended(status api.CloseChannelRes_Status) {
	if ch.closed {
		return
	}
	ch.closed, ch.status = true, status
	for ref, reply := range ch.pending {
		delete(ch.pending, ref)
		close(reply)
	}
	close(ch.gone)
	ch.stream.close()
}

// ErrChannelClosed is returned by requests on a channel that has ended.
var ErrChannelClosed = errors.New("client: channel closed")

// Send sends cmd on the channel without waiting for anything.
func (ch *Channel) Send(cmd *api.Command) error {
	cmd.Channel = ch.id
	return ch.c.Send(cmd)
}

// Request sends cmd with a fresh ref and returns the first message on the
// channel carrying that ref.
func (ch *Channel) Request(ctx context.Context, cmd *api.Command) (*api.Command, error) {
	cmd.Channel = ch.id
	cmd.Ref = newRef()
	reply := make(chan *api.Command, 1)
	ch.c.mu.Lock()
	if ch.closed {
		ch.c.mu.Unlock()
		return nil, ErrChannelClosed
	}
	ch.pending[cmd.Ref] = reply
	ch.c.mu.Unlock()
	forget := func() {
		ch.c.mu.Lock()
		delete(ch.pending, cmd.Ref)
		ch.c.mu.Unlock()
	}
	if err := ch.c.Send(cmd); err != nil {
		forget()
		return nil, err
	}
	select {
	case r, ok := <-reply:
		if !ok {
			return nil, ErrChannelClosed
		}
		return r, nil
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
}

// Recv returns the next message on the channel that is not a reply to a
// pending request, waiting for one. It returns ErrChannelClosed once the
// channel has ended and its messages are read.
func (ch *Channel) Recv(ctx context.Context) (*api.Command, error) {
	return ch.stream.pop(ctx, nil, func() error { return ErrChannelClosed })
}

// TryRecv returns a message already received, if any.
func (ch *Channel) TryRecv() (*api.Command, bool) {
	return ch.stream.tryPop()
}

// Gone is closed when the channel has ended (closeChanRes, or the
// connection closed).
func (ch *Channel) Gone() <-chan struct{} { return ch.gone }

// Close sends closeChan with action and waits for closeChanRes.
func (ch *Channel) Close(ctx context.Context, action api.CloseChannel_Action) (api.CloseChannelRes_Status, error) {
	r, err := ch.c.request0(ctx, &api.Command{Body: &api.Command_CloseChan{CloseChan: &api.CloseChannel{Id: ch.id, Action: action}}})
	if err != nil {
		return 0, err
	}
	res := r.GetCloseChanRes()
	if res == nil {
		return 0, fmt.Errorf("client: closeChan answered with %v", r)
	}
	if res.Id != ch.id {
		return res.Status, fmt.Errorf("client: closeChanRes for id %d, want %d", res.Id, ch.id)
	}
	return res.Status, nil
}

// queue is an unbounded FIFO of commands with a wake-up channel. Its
// methods take the client's lock where the owner says so; the queue has its
// own small lock so pop can wait without holding the client's.
type queue struct {
	mu     sync.Mutex
	items  []*api.Command
	closed bool
	notify chan struct{} // capacity 1
}

func (q *queue) init() { q.notify = make(chan struct{}, 1) }

func (q *queue) push(cmd *api.Command) {
	q.mu.Lock()
	q.items = append(q.items, cmd)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *queue) tryPop() (*api.Command, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return nil, false
	}
	cmd := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	return cmd, true
}

func (q *queue) pop(ctx context.Context, done <-chan struct{}, closedErr func() error) (*api.Command, error) {
	for {
		if cmd, ok := q.tryPop(); ok {
			return cmd, nil
		}
		q.mu.Lock()
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil, closedErr()
		}
		select {
		case <-q.notify:
		case <-done:
			if cmd, ok := q.tryPop(); ok {
				return cmd, nil
			}
			if err := closedErr(); err != nil {
				return nil, err
			}
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// IsError reports whether cmd is an `error` reply containing substr.
func IsError(cmd *api.Command, substr string) bool {
	e, ok := cmd.GetBody().(*api.Command_Error)
	return ok && strings.Contains(e.Error, substr)
}
