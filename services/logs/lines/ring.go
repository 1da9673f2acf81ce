package lines

import "sync"

// Defaults for NewRing's zero arguments.
const (
	DefaultRingLines = 1000
	DefaultRingBytes = 256 << 10
)

// Ring is a log that keeps the latest lines, bounded in lines and in bytes
// of text. Lines are numbered from 0 in the order they are appended; when
// the ring is full the oldest go. Readers address lines by number and
// wait on [Ring.Read]'s changed channel for more.
type Ring struct {
	maxLines, maxBytes int

	// mu guards the following.
	mu      sync.Mutex
	buf     []Line // circular; grows up to maxLines
	start   int    // index in buf of the oldest line
	n       int    // lines held
	first   uint64 // Seq of the oldest line held
	bytes   int    // text bytes held
	closed  bool
	changed chan struct{} // closed and replaced by every Append and by Close
}

// NewRing returns an empty ring keeping at most maxLines lines and
// maxBytes bytes of text (zero: the defaults). The newest line is kept
// whatever its size.
func NewRing(maxLines, maxBytes int) *Ring {
	if maxLines <= 0 {
		maxLines = DefaultRingLines
	}
	if maxBytes <= 0 {
		maxBytes = DefaultRingBytes
	}
	return &Ring{maxLines: maxLines, maxBytes: maxBytes, changed: make(chan struct{})}
}

// Append adds l as the newest line and returns its number. Appending to a
// closed ring does nothing.
func (r *Ring) Append(l Line) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return r.first + uint64(r.n)
	}
	for r.n > 0 && (r.n >= r.maxLines || r.bytes+len(l.Text) > r.maxBytes) {
		r.bytes -= len(r.buf[r.start].Text)
		r.buf[r.start] = Line{}
		r.start = (r.start + 1) % len(r.buf)
		r.n--
		r.first++
	}
	if r.n == len(r.buf) {
		// Full below maxLines (the loop above made room otherwise): grow,
		// putting the lines back in order from index 0.
		grown := make([]Line, min(max(2*len(r.buf), 64), r.maxLines))
		for i := range r.n {
			grown[i] = r.buf[(r.start+i)%len(r.buf)]
		}
		r.buf, r.start = grown, 0
	}
	l.Seq = r.first + uint64(r.n)
	r.buf[(r.start+r.n)%len(r.buf)] = l
	r.n++
	r.bytes += len(l.Text)
	close(r.changed)
	r.changed = make(chan struct{})
	return l.Seq
}

// Bounds returns the number of the oldest line held and the number the
// next line will get.
func (r *Ring) Bounds() (oldest, next uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first, r.first + uint64(r.n)
}

// Close marks the end of the log: readers see closed once they have read
// everything.
func (r *Ring) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.changed)
	}
}

// Read returns up to max lines from number from on, oldest first. When
// lines from there on have already left the ring, it starts at the oldest
// line held: skipped counts the lines missed. With nothing to return,
// closed reports whether the log has ended, and changed is closed once
// there may be more.
func (r *Ring) Read(from uint64, max int) (out []Line, skipped uint64, closed bool, changed <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if from < r.first {
		skipped = r.first - from
		from = r.first
	}
	next := r.first + uint64(r.n)
	for seq := from; seq < next && len(out) < max; seq++ {
		out = append(out, r.buf[(r.start+int(seq-r.first))%len(r.buf)])
	}
	return out, skipped, r.closed && from >= next, r.changed
}
