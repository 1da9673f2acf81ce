package snapshot

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strconv"

	"golang.org/x/sys/unix"
)

// listing computes a snapshot's checksum, which does not depend on git's
// hashing: SHA-256 over its canonical listing. The listing has one record
// per directory, file and symlink below the root, in the order a
// depth-first walk of the snapshot's git trees visits them (a directory
// before its entries; entries in git's tree order), each
//
//	<mode, 6 octal digits> SP <size> SP <SHA-256 of content, hex> SP <path> NUL
//
// where mode is the entry's exact mode as in st_mode, its type and
// permission bits (setuid, setgid and sticky included): 04xxxx for a
// directory (041777 for a sticky one), 10xxxx for a file (100600, 100750,
// …) and 120000 for a symlink, whose permission bits are not kept; size
// and content are a file's bytes or a symlink's target, a directory has
// size 0 and the SHA-256 of nothing, and path is slash-separated from the
// workspace root. The commit keeps the permission bits git cannot as
// records (see modes.go), which the checksum thus covers. Snapshots of
// format 1 list git's modes instead (040000, 100644, 100755, 120000).
//
// It also counts files (regular and symlinks) and their bytes (regular
// only).
type listing struct {
	h     hash.Hash
	buf   []byte
	files int64
	bytes int64
}

var emptySum = sha256.Sum256(nil)

func newListing() *listing {
	return &listing{h: sha256.New(), buf: make([]byte, 0, 32<<10)}
}

// add appends the record of an entry whose st_mode is mode.
func (l *listing) add(mode uint32, size int64, sum *[32]byte, path string) {
	b := l.buf
	m := strconv.FormatUint(uint64(mode), 8)
	for i := len(m); i < 6; i++ {
		b = append(b, '0')
	}
	b = append(b, m...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, size, 10)
	b = append(b, ' ')
	b = hex.AppendEncode(b, sum[:])
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, 0)
	if len(b) >= 16<<10 {
		l.h.Write(b)
		b = b[:0]
	}
	l.buf = b
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		l.files++
		l.bytes += size
	case unix.S_IFLNK:
		l.files++
	}
}

// checksum returns "sha256:<hex>" of the listing so far.
func (l *listing) checksum() string {
	l.h.Write(l.buf)
	l.buf = l.buf[:0]
	return checksumPrefix + hex.EncodeToString(l.h.Sum(nil))
}
