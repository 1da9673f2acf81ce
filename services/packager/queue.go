package packager

import (
	"context"
	"errors"
	"sync"

	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services/packager/backend"
)

// errStopping refuses mutations once the service is stopping.
var errStopping = errors.New("the package manager is shutting down")

// job is one mutation waiting for its turn or running.
type job struct {
	owner *instance
	req   *channels.Request
	// what describes the job for the log ("add is-number").
	what string
	run  func(ctx context.Context, r backend.Runner) error
	// done is closed when the job has finished or was dropped.
	done chan struct{}
}

// queue runs mutations one at a time, in arrival order, on its own
// goroutine. A job's context ends when its channel ends or the queue
// stops; a job whose channel ended while it waited is dropped unrun.
type queue struct {
	exec    func(ctx context.Context, j *job)
	ctx     context.Context // ends at stop
	cancel  context.CancelFunc
	wake    chan struct{} // capacity 1
	stopped chan struct{} // closed when loop returns

	// mu guards the following.
	mu      sync.Mutex
	pending []*job
	running *job
	closed  bool
}

func newQueue(exec func(ctx context.Context, j *job)) *queue {
	ctx, cancel := context.WithCancel(context.Background())
	q := &queue{exec: exec, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	go q.loop()
	return q
}

// push appends j to the queue.
func (q *queue) push(j *job) error {
	j.done = make(chan struct{})
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return errStopping
	}
	q.pending = append(q.pending, j)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

func (q *queue) loop() {
	defer close(q.stopped)
	for {
		j := q.next()
		if j == nil {
			return
		}
		ctx, cancel := context.WithCancel(q.ctx)
		stop := context.AfterFunc(j.owner.ch.Context(), cancel)
		if ctx.Err() == nil && j.owner.ch.Context().Err() == nil {
			q.exec(ctx, j)
		}
		stop()
		cancel()
		q.mu.Lock()
		q.running = nil
		q.mu.Unlock()
		close(j.done)
	}
}

// next waits for the next job and marks it running; nil once the queue
// stops.
func (q *queue) next() *job {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil
		}
		if len(q.pending) > 0 {
			j := q.pending[0]
			q.pending[0] = nil
			q.pending = q.pending[1:]
			q.running = j
			q.mu.Unlock()
			return j
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-q.ctx.Done():
		}
	}
}

// dropOwner removes the waiting jobs of in and returns a channel closed
// when its running job, if any, has finished (its context already ends
// with in's channel).
func (q *queue) dropOwner(in *instance) <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	kept := q.pending[:0]
	for _, j := range q.pending {
		if j.owner == in {
			close(j.done)
			continue
		}
		kept = append(kept, j)
	}
	clear(q.pending[len(kept):])
	q.pending = kept
	if q.running != nil && q.running.owner == in {
		return q.running.done
	}
	done := make(chan struct{})
	close(done)
	return done
}

// stop drops the waiting jobs, kills the running one and waits, within
// ctx, for the queue's goroutine.
func (q *queue) stop(ctx context.Context) error {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		for _, j := range q.pending {
			close(j.done)
		}
		q.pending = nil
	}
	q.mu.Unlock()
	q.cancel()
	select {
	case <-q.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
