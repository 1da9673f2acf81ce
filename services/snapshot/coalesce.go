package snapshot

import (
	"context"
	"sync"
)

// coalescer runs an operation on behalf of many concurrent callers, each of
// whom needs a run that started after they arrived: while one run is in
// progress, everyone who arrives waits for the next one, and one run
// serves them all. It is how a burst of fsSnapshot requests from several
// tabs costs at most two snapshots.
type coalescer struct {
	// waiting, when set, is called each time a caller starts waiting for
	// a run (for tests).
	waiting func()

	// mu guards the following.
	mu      sync.Mutex
	current *flight // running
	next    *flight // to start once current ends; its callers are waiting
}

// flight is one run and its outcome.
type flight struct {
	done chan struct{}
	err  error
}

// do returns the outcome of a run of fn that started after do was called.
// fn runs on the goroutine of one of the callers; a caller whose ctx ends
// stops waiting, but the run it waits for still happens for the others.
func (c *coalescer) do(ctx context.Context, fn func() error) error {
	c.mu.Lock()
	var f *flight
	switch {
	case c.current != nil:
		// A run is in progress; it started before we came. Wait for it,
		// then see to the next one.
		if c.next == nil {
			c.next = &flight{done: make(chan struct{})}
		}
		f = c.next
		cur := c.current
		c.mu.Unlock()
		if c.waiting != nil {
			c.waiting()
		}
		select {
		case <-cur.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
		if c.next != f {
			// Another waiter started f (it may have ended already).
			c.mu.Unlock()
			select {
			case <-f.done:
				return f.err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		// f is still planned, and no run is in progress: nothing can
		// start while next is set but through taking next over.
		c.next = nil
	case c.next != nil:
		// Planned by callers who have not woken yet: take it over; it
		// starts now, after all of them arrived.
		f, c.next = c.next, nil
	default:
		f = &flight{done: make(chan struct{})}
	}
	c.current = f
	c.mu.Unlock()

	f.err = fn()

	c.mu.Lock()
	c.current = nil
	c.mu.Unlock()
	close(f.done)
	return f.err
}
