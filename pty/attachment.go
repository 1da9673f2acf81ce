package pty

import (
	"context"
	"io"
	"slices"
)

// errEndOfOutput is what Next returns once the output has ended and all of
// it has been returned.
var errEndOfOutput = io.EOF

// Attachment is one reader of a session's output: the scrollback it
// started from, then live output, with no gap and no duplicate between the
// two. Next is meant for one goroutine; the other methods are safe for
// concurrent use.
type Attachment struct {
	session *Session
	lost    int64
	ready   chan struct{} // capacity 1: "there may be something for Next"
	done    chan struct{} // closed when no more output will be queued

	// session.mu guards the following.
	replay []byte // the scrollback at attach time, not yet returned
	queue  []byte // live output not yet returned; the reader appends here
	spare  []byte // what Next returned last; becomes the queue next time
	offset int64  // offset just past the bytes Next has returned
	err    error  // why no more output is queued; nil while attached
}

// Attach returns an attachment that first receives all the output the
// scrollback still holds, then live output.
func (s *Session) Attach() *Attachment {
	a, _ := s.attachFrom(fromOldest) // cannot fail
	return a
}

// Resume returns an attachment that first receives the output after offset
// that the scrollback still holds, then live output. A reconnecting client
// passes the Offset of its previous attachment. Lost tells how many bytes
// after offset were no longer held. It fails with ErrFutureOffset if the
// output has not reached offset.
func (s *Session) Resume(offset int64) (*Attachment, error) {
	if offset < 0 {
		return nil, ErrFutureOffset
	}
	return s.attachFrom(offset)
}

// fromOldest asks attachFrom for everything the scrollback holds.
const fromOldest = -1

// attachFrom takes the snapshot and registers the attachment under one
// lock, so that live output starts exactly where the snapshot ends.
func (s *Session) attachFrom(from int64) (*Attachment, error) {
	s.mu.Lock()
	if from == fromOldest {
		from = s.output.oldest()
	}
	if from > s.output.written {
		s.mu.Unlock()
		return nil, ErrFutureOffset
	}
	start := max(from, s.output.oldest())
	a := &Attachment{
		session: s,
		lost:    start - from,
		ready:   make(chan struct{}, 1),
		done:    make(chan struct{}),
		offset:  start,
	}
	a.replay = s.output.appendFrom(nil, start)
	if s.outputEnded {
		a.err = errEndOfOutput
		close(a.done)
	} else {
		s.attachments = append(s.attachments, a)
	}
	wake := s.readPaused // a new attachment is not behind
	s.mu.Unlock()
	if wake {
		s.wakeReader()
	}
	return a, nil
}

// Next returns the output queued since the previous call, coalesced into
// one chunk, waiting until there is some. The first chunk is the
// scrollback the attachment started from, up to Options.ScrollbackBytes;
// later ones are at most Options.QueueBytes. The chunk is only valid until
// the next call to Next: its memory is reused.
//
// Once the output has ended, Next returns what is left and then io.EOF.
// After a detach it returns ErrOverflow or ErrDetached, dropping what was
// queued; Offset tells where to resume. It returns ctx's error if ctx ends
// first.
func (a *Attachment) Next(ctx context.Context) ([]byte, error) {
	s := a.session
	for {
		s.mu.Lock()
		if len(a.replay) > 0 {
			chunk := a.replay
			a.replay = nil
			a.spare = chunk
			a.offset += int64(len(chunk))
			s.mu.Unlock()
			return chunk, nil
		}
		if len(a.queue) > 0 {
			chunk := a.queue
			a.queue = a.spare[:0]
			a.spare = chunk
			a.offset += int64(len(chunk))
			wake := s.readPaused
			s.mu.Unlock()
			if wake {
				s.wakeReader()
			}
			return chunk, nil
		}
		err := a.err
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		select {
		case <-a.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Offset returns the offset just past the bytes Next has returned: where
// to Resume from.
func (a *Attachment) Offset() int64 {
	a.session.mu.Lock()
	defer a.session.mu.Unlock()
	return a.offset
}

// Lost returns how many bytes between the offset asked of Resume and the
// first byte this attachment received were no longer in the scrollback;
// always 0 after Attach.
func (a *Attachment) Lost() int64 { return a.lost }

// Done is closed when no more output will be queued for the attachment:
// it was detached, or the output ended. Err tells which.
func (a *Attachment) Done() <-chan struct{} { return a.done }

// Err returns nil while the attachment receives output, then why it
// stopped: ErrOverflow, ErrDetached, or io.EOF when the output ended (what
// was queued before that is still returned by Next).
func (a *Attachment) Err() error {
	a.session.mu.Lock()
	defer a.session.mu.Unlock()
	return a.err
}

// Detach stops the attachment and frees its queue; Next then returns
// ErrDetached. It does nothing if the attachment has already stopped.
func (a *Attachment) Detach() {
	s := a.session
	s.mu.Lock()
	if a.err != nil {
		s.mu.Unlock()
		return
	}
	a.stopLocked(ErrDetached)
	s.attachments = slices.DeleteFunc(s.attachments, func(other *Attachment) bool { return other == a })
	wake := s.readPaused // maybe no attachment is left, or none behind
	s.mu.Unlock()
	if wake {
		s.wakeReader()
	}
}

// stopLocked marks the attachment stopped for err and frees what it
// holds; the caller removes it from session.attachments.
func (a *Attachment) stopLocked(err error) {
	a.err = err
	a.replay, a.queue, a.spare = nil, nil, nil
	close(a.done)
	a.notify()
}

// notify wakes Next if it waits.
func (a *Attachment) notify() {
	select {
	case a.ready <- struct{}{}:
	default:
	}
}
