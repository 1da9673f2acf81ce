package channels

import (
	"errors"
	"sync"
)

var errInboxClosed = errors.New("channel inbox closed")

// inbox is a channel's queue of commands, bounded in bytes. The read loop
// that pushes waits while it is full; the channel's goroutine pops.
type inbox struct {
	limit int
	ready chan struct{} // capacity 1: "something was pushed or the inbox closed"

	// mu guards the following.
	mu     sync.Mutex
	items  []*Request
	bytes  int
	closed bool
	space  chan struct{} // closed when room frees up; nil while nobody waits
}

func newInbox(limit int) *inbox {
	return &inbox{limit: limit, ready: make(chan struct{}, 1)}
}

func (q *inbox) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// push appends req, waiting while the inbox is over its limit (an empty
// inbox always takes one request, however big). It gives up when cancel is
// closed or the inbox closes.
func (q *inbox) push(req *Request, cancel <-chan struct{}) error {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return errInboxClosed
		}
		if q.bytes == 0 || q.bytes+req.size <= q.limit {
			q.items = append(q.items, req)
			q.bytes += req.size
			q.mu.Unlock()
			q.signal()
			return nil
		}
		if q.space == nil {
			q.space = make(chan struct{})
		}
		space := q.space
		q.mu.Unlock()
		select {
		case <-space:
		case <-cancel:
			return errSessionClosed
		}
	}
}

// pop returns the next request, waiting for one. It reports false once the
// inbox is closed and empty.
func (q *inbox) pop() (*Request, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			req := q.items[0]
			q.items[0] = nil
			q.items = q.items[1:]
			q.bytes -= req.size
			if q.space != nil {
				close(q.space)
				q.space = nil
			}
			q.mu.Unlock()
			return req, true
		}
		if q.closed {
			q.mu.Unlock()
			return nil, false
		}
		q.mu.Unlock()
		<-q.ready
	}
}

// close stops accepting requests and wakes everyone waiting; what is queued
// is still popped.
func (q *inbox) close() {
	q.mu.Lock()
	q.closed = true
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
	q.mu.Unlock()
	q.signal()
}
