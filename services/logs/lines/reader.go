package lines

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/conman-dev/conman/api"
)

// Defaults for the zero values of ReaderOptions.
const (
	DefaultMaxLineBytes = 16 << 10
	DefaultFlushAfter   = 250 * time.Millisecond
	DefaultDrainTimeout = 500 * time.Millisecond
	readBytes           = 32 << 10
)

// ReaderOptions configures a [Reader]. Zero values mean the defaults.
type ReaderOptions struct {
	// MaxLineBytes cuts a longer line into pieces of at most this many
	// bytes (default 16 KiB).
	MaxLineBytes int
	// FlushAfter emits an unfinished line once the pipe has been silent
	// this long (default 250 ms), so that a prompt without a newline shows.
	FlushAfter time.Duration
	// DrainTimeout bounds the wait for more output once the process has
	// exited, while processes that left its group hold the pipe open
	// (default 500 ms of silence).
	DrainTimeout time.Duration
}

// Reader cuts what a process writes to one pipe into lines.
type Reader struct {
	f      *os.File
	stream api.LogLine_Stream
	emit   func(Line)
	opts   ReaderOptions

	// mu guards the following and the pipe's read deadline, so that
	// ProcessExited and Run never undo each other's deadline.
	mu     sync.Mutex
	exited bool
}

// NewReader returns a reader of f (the parent's end of a pipe) that calls
// emit with every line, in order, from Run's goroutine. Lines get the
// stream and the time they were completed; their Seq is left to the log.
func NewReader(f *os.File, stream api.LogLine_Stream, emit func(Line), opts ReaderOptions) *Reader {
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = DefaultMaxLineBytes
	}
	if opts.FlushAfter <= 0 {
		opts.FlushAfter = DefaultFlushAfter
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	return &Reader{f: f, stream: stream, emit: emit, opts: opts}
}

// ProcessExited tells the reader that the process has exited: Run returns
// at the pipe's end or after DrainTimeout of silence, whichever comes
// first.
func (r *Reader) ProcessExited() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exited = true
	_ = r.f.SetReadDeadline(time.Now().Add(r.opts.DrainTimeout))
}

// armDeadline sets the read deadline for the next read: the drain
// timeout once the process has exited, else FlushAfter while part of a
// line is held, else none.
func (r *Reader) armDeadline(holding bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var deadline time.Time
	switch {
	case r.exited:
		deadline = time.Now().Add(r.opts.DrainTimeout)
	case holding:
		deadline = time.Now().Add(r.opts.FlushAfter)
	}
	_ = r.f.SetReadDeadline(deadline)
}

func (r *Reader) hasExited() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.exited
}

// Run reads the pipe until its end (or, once the process has exited, until
// it has been silent for DrainTimeout) or a read error, emitting every
// line. What is left of an unfinished line is emitted at the end. Run does
// not close the pipe.
func (r *Reader) Run() {
	buf := make([]byte, readBytes)
	var held []byte
	for {
		r.armDeadline(len(held) > 0)
		n, err := r.f.Read(buf)
		if n > 0 {
			held = r.split(append(held, buf[:n]...))
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && !r.hasExited() {
			// Silent for FlushAfter: show what there is.
			r.flush(held)
			held = held[:0]
			continue
		}
		r.flush(held)
		return
	}
}

// split emits every complete line of p (cutting over-long ones into
// pieces) and returns the unfinished rest, moved to the front of p.
func (r *Reader) split(p []byte) []byte {
	rest := p
	for {
		i := bytes.IndexByte(rest, '\n')
		if i >= 0 && i <= r.opts.MaxLineBytes {
			line := rest[:i]
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			r.emitText(line)
			rest = rest[i+1:]
			continue
		}
		if len(rest) <= r.opts.MaxLineBytes {
			break
		}
		cut := r.opts.MaxLineBytes
		for cut > 0 && !utf8.RuneStart(rest[cut]) {
			cut--
		}
		if cut == 0 {
			cut = r.opts.MaxLineBytes
		}
		r.emitText(rest[:cut])
		rest = rest[cut:]
	}
	return p[:copy(p, rest)]
}

func (r *Reader) flush(held []byte) {
	if len(held) > 0 {
		r.emitText(held)
	}
}

func (r *Reader) emitText(p []byte) {
	r.emit(Line{Stream: r.stream, Text: strings.ToValidUTF8(string(p), string(utf8.RuneError)), Time: time.Now()})
}
