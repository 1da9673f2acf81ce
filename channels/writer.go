package channels

import (
	"encoding/binary"
	"sync"
	"time"
)

// Conn is what a session needs from its transport: a websocket in the
// daemon, an in-memory pipe in tests. Only the session's writer goroutine
// calls WriteFrame and Ping; Close may be called from any goroutine, more
// than once.
type Conn interface {
	// WriteFrame writes one binary message made of prefix followed by body,
	// giving up after the transport's write deadline.
	WriteFrame(prefix, body []byte) error
	// Ping sends a keepalive probe; the transport closes a peer that does
	// not answer in time.
	Ping() error
	// Close sends a close frame with code and reason (best effort, bounded
	// in time) and releases the connection.
	Close(code int, reason string) error
}

// Websocket close codes the daemon uses.
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001 // the daemon is shutting down
	CloseProtocolError   = 1002 // an undecodable frame
	CloseUnsupportedData = 1003 // a text frame
	ClosePolicyViolation = 1008 // a bad token: the client fetches a new one
	CloseTooBig          = 1009 // a frame over the read limit
	CloseInternalError   = 1011
	CloseTryAgainLater   = 1013 // the session fell too far behind
)

// CloseReason says why a session ends: the close code and text its peer
// sees, and the label it is counted under.
type CloseReason struct {
	Code  int
	Label string
	Text  string
}

// Why sessions end.
var (
	ReasonClientClosed = CloseReason{CloseNormal, "client_closed", ""}
	ReasonPingTimeout  = CloseReason{CloseGoingAway, "ping_timeout", "no pong in time"}
	ReasonWriteFailed  = CloseReason{CloseGoingAway, "write_failed", "write failed"}
	ReasonOverflow     = CloseReason{CloseTryAgainLater, "queue_overflow", "write queue overflow: the client fell too far behind"}
	ReasonTextFrame    = CloseReason{CloseUnsupportedData, "text_frame", "text frames are not part of the protocol"}
	ReasonUndecodable  = CloseReason{CloseProtocolError, "undecodable_frame", "undecodable frame"}
	ReasonTooBig       = CloseReason{CloseTooBig, "frame_too_big", "frame exceeds the read limit"}
	ReasonShutdown     = CloseReason{CloseGoingAway, "shutdown", "the daemon is shutting down"}
)

// outFrame is one queued message. body is the encoded Command without its
// channel field, shared by every session a broadcast reaches; the writer
// prepends the channel id of the receiving session. Protobuf decoders merge
// concatenated encodings, so prefix+body decodes as one Command.
type outFrame struct {
	channel int32
	body    []byte
	stats   ServiceMetrics
	// oversized frames were bigger than the queue's limit and let into an
	// empty queue; they do not count against the limit for later frames.
	oversized bool
}

// size is what a frame costs in the queue.
func (f *outFrame) size() int { return len(f.body) + 8 }

// writeQueue is a session's outgoing queue, bounded in bytes. The bytes
// count what is queued and what the writer has taken but not yet written,
// so the bound holds for everything the session has in memory.
type writeQueue struct {
	limit  int
	wake   chan struct{} // capacity 1: "there is something to do"
	closed chan struct{} // closed by the first close

	// mu guards the following.
	mu        sync.Mutex
	frames    []outFrame
	bytes     int  // queued or being written, oversized frames included
	oversized int  // the part of bytes taken by oversized frames
	closing   bool // no more frames are accepted
	flush     bool // when closing: write what is queued first
	reason    CloseReason
	drained   chan struct{} // closed when bytes go down; nil while nobody waits
}

func newWriteQueue(limit int) *writeQueue {
	return &writeQueue{limit: limit, wake: make(chan struct{}, 1), closed: make(chan struct{})}
}

func (q *writeQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// push queues a frame. It never blocks. It reports false when the queue is
// closing, and overflow when accepting the frame would exceed the limit.
// A frame larger than the limit is accepted only into an empty queue, so
// one big reply can always go out (a service sending one waits for the
// queue to drain first); while it is queued or being written it does not
// count against the limit, so ordinary traffic goes on beside it. Memory is
// bounded by the limit plus one such frame.
func (q *writeQueue) push(f outFrame) (ok, overflow bool) {
	q.mu.Lock()
	if q.closing {
		q.mu.Unlock()
		return false, false
	}
	n := f.size()
	counted := q.bytes - q.oversized
	switch {
	case n > q.limit && q.bytes == 0:
		f.oversized = true
		q.oversized += n
	case counted+n > q.limit:
		q.mu.Unlock()
		return false, true
	}
	q.frames = append(q.frames, f)
	q.bytes += n
	q.mu.Unlock()
	q.signal()
	return true, false
}

// close stops accepting frames. The first close decides the reason; a later
// close can only turn a flushing close into an immediate one. It reports
// whether this call was the first.
func (q *writeQueue) close(reason CloseReason, flush bool) bool {
	q.mu.Lock()
	first := !q.closing
	if first {
		q.closing, q.flush, q.reason = true, flush, reason
		close(q.closed)
	} else if !flush {
		q.flush = false
	}
	q.mu.Unlock()
	q.signal()
	return first
}

// take removes and returns everything queued, reusing spare as the next
// backing array. The batch still counts against the limit until release.
func (q *writeQueue) take(spare []outFrame) (batch []outFrame, closing, flush bool, reason CloseReason) {
	q.mu.Lock()
	batch = q.frames
	q.frames = spare[:0]
	closing, flush, reason = q.closing, q.flush, q.reason
	q.mu.Unlock()
	return batch, closing, flush, reason
}

// release uncounts n written bytes, of which oversized were oversized
// frames, and wakes whoever waits for room.
func (q *writeQueue) release(n, oversized int) {
	q.mu.Lock()
	q.bytes -= n
	q.oversized -= oversized
	if q.drained != nil {
		close(q.drained)
		q.drained = nil
	}
	q.mu.Unlock()
}

// waitBelow waits until at most n bytes are queued or in flight.
func (q *writeQueue) waitBelow(done <-chan struct{}, n int) error {
	for {
		q.mu.Lock()
		if q.closing {
			q.mu.Unlock()
			return errSessionClosed
		}
		if q.bytes <= n {
			q.mu.Unlock()
			return nil
		}
		if q.drained == nil {
			q.drained = make(chan struct{})
		}
		drained := q.drained
		q.mu.Unlock()
		select {
		case <-drained:
		case <-q.closed:
			return errSessionClosed
		case <-done:
			return errWaitCanceled
		}
	}
}

// writeLoop is the session's writer goroutine: the only one that writes to
// its Conn. It writes queued frames in order, pings every pingInterval, and
// on close writes what is left (if the close asked for it) and closes the
// Conn.
func (s *Session) writeLoop(pingInterval time.Duration) {
	defer close(s.writerDone)
	var ping <-chan time.Time
	if pingInterval > 0 {
		ticker := time.NewTicker(pingInterval)
		defer ticker.Stop()
		ping = ticker.C
	}
	var spare []outFrame
	var prefix [1 + binary.MaxVarintLen64]byte
	prefix[0] = 0x08 // field 1 (channel), varint
	for {
		select {
		case <-s.queue.wake:
		case <-ping:
			if err := s.conn.Ping(); err != nil {
				s.queue.close(ReasonWriteFailed, false)
			}
			continue
		}
		batch, closing, flush, reason := s.queue.take(spare)
		if closing && !flush {
			batch = nil
		}
		written, writtenOversized := 0, 0
		for i := range batch {
			f := &batch[i]
			head := prefix[:0]
			if f.channel != 0 {
				head = binary.AppendUvarint(prefix[:1], uint64(f.channel))
			}
			// Recorded before the write: once it is written the client
			// may answer, and the answer must not be recorded first.
			if rec := s.recorder.Load(); rec != nil {
				(*rec).RecordFrame(false, head, f.body)
			}
			if err := s.conn.WriteFrame(head, f.body); err != nil {
				s.queue.close(ReasonWriteFailed, false)
				closing, reason = true, ReasonWriteFailed
				break
			}
			if f.stats != nil {
				f.stats.FramesOut(1, len(head)+len(f.body))
			}
			written += f.size()
			if f.oversized {
				writtenOversized += f.size()
			}
			*f = outFrame{} // let the body go
		}
		s.queue.release(written, writtenOversized)
		spare = batch
		if closing {
			s.conn.Close(reason.Code, reason.Text)
			return
		}
	}
}
