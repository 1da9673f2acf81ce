package web

import (
	"bytes"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// maxPooledBuf is the largest read buffer returned to the pool; bigger ones
// (a rare large frame) are left to the garbage collector.
const maxPooledBuf = 1 << 20

func (e *Edge) getBuf() *bytes.Buffer {
	if b, ok := e.bufs.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

func (e *Edge) putBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuf {
		e.bufs.Put(b)
	}
}

// wsConn adapts a gorilla connection to channels.Conn. The session's writer
// goroutine is its only writer; gorilla allows Close and WriteControl from
// any goroutine.
type wsConn struct {
	ws        *websocket.Conn
	writeWait time.Duration
	scratch   []byte // writer-owned: prefix and body joined into one frame
	closeOnce sync.Once
}

// maxScratch is the largest joined frame kept for reuse by the writer.
const maxScratch = 64 << 10

func (c *wsConn) WriteFrame(prefix, body []byte) error {
	c.ws.SetWriteDeadline(time.Now().Add(c.writeWait))
	if len(prefix) == 0 {
		return c.ws.WriteMessage(websocket.BinaryMessage, body)
	}
	// One frame, written with a single writev by gorilla's server fast path.
	frame := append(append(c.scratch[:0], prefix...), body...)
	err := c.ws.WriteMessage(websocket.BinaryMessage, frame)
	if cap(frame) <= maxScratch {
		c.scratch = frame
	} else {
		c.scratch = nil
	}
	return err
}

func (c *wsConn) Ping() error {
	return c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.writeWait))
}

// Close sends a close frame and gives the peer closeWait to answer it: the
// read loop sees the answer (or the deadline) and releases the connection.
// A timer releases it anyway, in case nobody is reading.
func (c *wsConn) Close(code int, reason string) error {
	c.closeOnce.Do(func() {
		if len(reason) > 120 { // a close frame's reason is at most 123 bytes
			reason = reason[:120]
		}
		deadline := time.Now().Add(closeWait)
		c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline)
		c.ws.SetReadDeadline(deadline)
		time.AfterFunc(closeWait, func() { c.ws.Close() })
	})
	return nil
}
