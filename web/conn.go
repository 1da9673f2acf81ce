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
	closeOnce sync.Once
}

// frameBufs holds the buffers frames are joined in (prefix and body, so a
// frame goes out in one write), shared by every connection: an idle
// connection keeps none, and a busy one does not allocate per frame. Pool
// i holds buffers of 1<<(minFrameShift+i) bytes; bigger frames are joined
// in a buffer of their own.
var frameBufs [maxFrameShift - minFrameShift + 1]sync.Pool

const (
	minFrameShift = 9  // 512 B
	maxFrameShift = 20 // 1 MiB
)

// frameBuf returns a buffer of at least n bytes and its pool index (-1 for
// none).
func frameBuf(n int) ([]byte, int) {
	for i := range frameBufs {
		if size := 1 << (minFrameShift + i); n <= size {
			if b, ok := frameBufs[i].Get().(*[]byte); ok {
				return (*b)[:0], i
			}
			return make([]byte, 0, size), i
		}
	}
	return make([]byte, 0, n), -1
}

func (c *wsConn) WriteFrame(prefix, body []byte) error {
	c.ws.SetWriteDeadline(time.Now().Add(c.writeWait))
	if len(prefix) == 0 {
		return c.ws.WriteMessage(websocket.BinaryMessage, body)
	}
	// One frame, written with a single writev by gorilla's server fast path.
	buf, pool := frameBuf(len(prefix) + len(body))
	frame := append(append(buf, prefix...), body...)
	err := c.ws.WriteMessage(websocket.BinaryMessage, frame)
	if pool >= 0 {
		frameBufs[pool].Put(&frame)
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
