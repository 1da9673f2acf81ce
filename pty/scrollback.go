package pty

// scrollback keeps the most recent bytes of a stream, addressed by absolute
// offsets: the byte at offset n is the n-th byte ever written. The byte at
// offset n lives at ring[n % limit]; until the ring is full it grows as
// needed, so a session that prints little costs little.
//
// scrollback does no locking; its owner guards it.
type scrollback struct {
	limit   int    // how many bytes are retained at most; at least 1
	ring    []byte // len(ring) < limit only while nothing was overwritten yet
	written int64  // bytes ever written: the offset of the next byte
}

func newScrollback(limit int) scrollback {
	return scrollback{limit: max(limit, 1)}
}

// oldest returns the offset of the oldest byte still retained.
func (b *scrollback) oldest() int64 {
	return b.written - int64(len(b.ring))
}

// write appends p to the stream, forgetting the oldest bytes once more
// than limit are held.
func (b *scrollback) write(p []byte) {
	if len(b.ring) < b.limit {
		take := min(b.limit-len(b.ring), len(p))
		b.growBy(take)
		b.ring = append(b.ring, p[:take]...)
		b.written += int64(take)
		p = p[take:]
		if len(p) == 0 {
			return
		}
	}
	if len(p) > b.limit {
		b.written += int64(len(p) - b.limit)
		p = p[len(p)-b.limit:]
	}
	pos := int(b.written % int64(b.limit))
	copied := copy(b.ring[pos:], p)
	copy(b.ring, p[copied:])
	b.written += int64(len(p))
}

// growBy makes room for n more bytes without ever allocating more than
// limit.
func (b *scrollback) growBy(n int) {
	if cap(b.ring)-len(b.ring) >= n {
		return
	}
	size := min(b.limit, max(2*cap(b.ring), len(b.ring)+n, 4096))
	grown := make([]byte, len(b.ring), size)
	copy(grown, b.ring)
	b.ring = grown
}

// appendFrom appends to dst the retained bytes from offset from up to the
// end of the stream. from must be between oldest() and written.
func (b *scrollback) appendFrom(dst []byte, from int64) []byte {
	n := int(b.written - from)
	if n <= 0 {
		return dst
	}
	start := int(from % int64(b.limit))
	first := min(n, b.limit-start)
	dst = append(dst, b.ring[start:start+first]...)
	return append(dst, b.ring[:n-first]...)
}
