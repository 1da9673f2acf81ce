// Package channelstest provides in-memory transports for testing code built
// on package channels without sockets: a [Conn] that records every frame,
// and a [Counter] that only counts them.
package channelstest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
)

// ErrClosed is returned by writes to a closed Conn.
var ErrClosed = errors.New("channelstest: conn closed")

// Conn is a channels.Conn that records frames. A test reads them back,
// decoded, with Next. Stall makes writes block, like a peer that stopped
// reading.
type Conn struct {
	notify chan struct{} // capacity 1
	done   chan struct{} // closed by Close

	// mu guards the following.
	mu      sync.Mutex
	frames  [][]byte
	closed  bool
	code    int
	reason  string
	pings   int
	stalled chan struct{} // non-nil while stalled; closed by Resume
}

var _ channels.Conn = (*Conn)(nil)

// NewConn returns an open Conn.
func NewConn() *Conn {
	return &Conn{notify: make(chan struct{}, 1), done: make(chan struct{})}
}

// WriteFrame records prefix+body, first waiting while the Conn is stalled.
func (c *Conn) WriteFrame(prefix, body []byte) error {
	c.mu.Lock()
	stalled := c.stalled
	c.mu.Unlock()
	if stalled != nil {
		select {
		case <-stalled:
		case <-c.done:
			return ErrClosed
		}
	}
	frame := append(append(make([]byte, 0, len(prefix)+len(body)), prefix...), body...)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.frames = append(c.frames, frame)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
	return nil
}

// Ping counts a keepalive.
func (c *Conn) Ping() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.pings++
	return nil
}

// Close records the close code and reason; only the first close counts.
func (c *Conn) Close(code int, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed, c.code, c.reason = true, code, reason
		close(c.done)
	}
	return nil
}

// Stall makes writes block until Resume or Close.
func (c *Conn) Stall() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stalled == nil {
		c.stalled = make(chan struct{})
	}
}

// Resume lets stalled writes go on.
func (c *Conn) Resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stalled != nil {
		close(c.stalled)
		c.stalled = nil
	}
}

// Done is closed once the Conn is closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// CloseStatus returns the close code and reason, once closed.
func (c *Conn) CloseStatus() (code int, reason string, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code, c.reason, c.closed
}

// Pings is how many pings were sent.
func (c *Conn) Pings() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pings
}

// Next returns the next recorded frame, decoded, waiting for one. It
// returns ErrClosed once the Conn is closed and every frame was read.
func (c *Conn) Next(ctx context.Context) (*api.Command, error) {
	for {
		c.mu.Lock()
		if len(c.frames) > 0 {
			frame := c.frames[0]
			c.frames = c.frames[1:]
			c.mu.Unlock()
			cmd := new(api.Command)
			if err := proto.Unmarshal(frame, cmd); err != nil {
				return nil, err
			}
			return cmd, nil
		}
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		select {
		case <-c.notify:
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Buffered is how many recorded frames wait to be read.
func (c *Conn) Buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.frames)
}

// Counter is a channels.Conn that counts frames and bytes and keeps nothing,
// for benchmarks. Reached is closed once Frames reaches the target set with
// Expect.
type Counter struct {
	frames atomic.Int64
	bytes  atomic.Int64
	closed atomic.Bool

	target atomic.Int64

	mu      sync.Mutex
	reached chan struct{}
}

var _ channels.Conn = (*Counter)(nil)

// Expect arms Reached for when Frames() reaches n and returns it.
func (c *Counter) Expect(n int64) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.target.Store(n)
	c.reached = make(chan struct{})
	if c.frames.Load() >= n {
		close(c.reached)
		c.reached = nil
		return closedChan
	}
	return c.reached
}

var closedChan = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

// WriteFrame counts one frame.
func (c *Counter) WriteFrame(prefix, body []byte) error {
	if c.closed.Load() {
		return ErrClosed
	}
	c.bytes.Add(int64(len(prefix) + len(body)))
	if n, t := c.frames.Add(1), c.target.Load(); t > 0 && n >= t {
		c.mu.Lock()
		if c.reached != nil && n >= c.target.Load() {
			close(c.reached)
			c.reached = nil
		}
		c.mu.Unlock()
	}
	return nil
}

// Ping does nothing.
func (c *Counter) Ping() error { return nil }

// Close marks the counter closed.
func (c *Counter) Close(int, string) error { c.closed.Store(true); return nil }

// Frames is how many frames were written.
func (c *Counter) Frames() int64 { return c.frames.Load() }

// Bytes is how many bytes were written.
func (c *Counter) Bytes() int64 { return c.bytes.Load() }

// Encode marshals cmd, failing the caller's test through panic only on a
// programming error (an unencodable command).
func Encode(cmd *api.Command) []byte {
	b, err := proto.Marshal(cmd)
	if err != nil {
		panic(err)
	}
	return b
}
