package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
)

// The index is the store's memory of the workspace, like git's index: for
// every file and symlink of the last snapshot, its stat data and hashes, and
// for every directory its tree. A file whose stat data still match is not
// read again, and a directory none of whose entries changed keeps its tree.
//
// It is a cache. Losing it costs one full re-read of the workspace; a
// damaged one is detected by its checksum trailer and discarded. Every
// object it names was made durable before it was written, which is why a
// hash found in it may be trusted to exist in the store (see [Store]).
//
// Format, all integers varint-encoded unless sized:
//
//	magic "conman-snapshot-index\x00", version uvarint (2), store id (16 bytes)
//	file count, then per file: path, git mode, permission bits (mode & 07777),
//	    size, mtime ns, ctime ns, inode, device, git blob hash (20 bytes),
//	    SHA-256 of content (32 bytes), flags (1 byte: bit 0 racy)
//	directory count, then per directory: path, tree hash (20 bytes), entry count
//	trailer: SHA-256 of everything before it (32 bytes)
//
// Version 1 lacked the permission bits; its files are read again once,
// its objects still trusted.
type index struct {
	storeID [16]byte
	files   map[string]entry     // by workspace-relative path
	dirs    map[string]dirRecord // by workspace-relative path; "" is the root
}

// entry is what the index knows of one file or symlink.
type entry struct {
	mode  filemode.FileMode // Regular, Executable or Symlink
	perm  uint32            // permission bits, or noPerm when unknown
	size  int64
	mtime int64 // ns
	ctime int64 // ns
	ino   uint64
	dev   uint64
	blob  plumbing.Hash // git's id of the content
	sum   [32]byte      // SHA-256 of the content
	// racy marks stat data too recent to prove the content unchanged: a
	// write in the same timestamp tick as the read leaves them equal.
	racy bool
}

// dirRecord is what the index knows of one directory.
type dirRecord struct {
	tree    plumbing.Hash
	entries int // direct entries in the tree
}

const (
	indexMagic   = "conman-snapshot-index\x00"
	indexVersion = 2
	// indexNoPerm is the version without permission bits, still read.
	indexNoPerm = 1
	flagRacy    = 1
)

// newIndex returns an empty index, with room for about size files.
func newIndex(storeID [16]byte, size int) *index {
	return &index{storeID: storeID, files: make(map[string]entry, size), dirs: make(map[string]dirRecord, size/8)}
}

// sameStat reports whether st describes the file e was made from, with
// the same permission bits. A chmod changes the ctime as well, but the
// bits are compared all the same: they are part of the snapshot.
func (e *entry) sameStat(st fileStat) bool {
	return e.size == st.size && e.mtime == st.mtime && e.ctime == st.ctime &&
		e.ino == st.ino && e.dev == st.dev && e.mode == st.gitMode() && e.perm == st.perm()
}

// encode serialises the index, in no particular order.
func (ix *index) encode() []byte {
	b := make([]byte, 0, 64+len(ix.files)*128+len(ix.dirs)*48)
	b = append(b, indexMagic...)
	b = binary.AppendUvarint(b, indexVersion)
	b = append(b, ix.storeID[:]...)
	b = binary.AppendUvarint(b, uint64(len(ix.files)))
	for path, e := range ix.files {
		b = appendString(b, path)
		b = binary.AppendUvarint(b, uint64(e.mode))
		b = binary.AppendUvarint(b, uint64(e.perm))
		b = binary.AppendVarint(b, e.size)
		b = binary.AppendVarint(b, e.mtime)
		b = binary.AppendVarint(b, e.ctime)
		b = binary.AppendUvarint(b, e.ino)
		b = binary.AppendUvarint(b, e.dev)
		b = append(b, e.blob[:]...)
		b = append(b, e.sum[:]...)
		var flags byte
		if e.racy {
			flags |= flagRacy
		}
		b = append(b, flags)
	}
	b = binary.AppendUvarint(b, uint64(len(ix.dirs)))
	for path, d := range ix.dirs {
		b = appendString(b, path)
		b = append(b, d.tree[:]...)
		b = binary.AppendUvarint(b, uint64(d.entries))
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

var errBadIndex = errors.New("malformed index")

// decodeIndex parses what encode wrote. Any damage is an error; nothing in
// data can make it panic or allocate more than data's size warrants.
func decodeIndex(data []byte) (*index, error) {
	if len(data) < len(indexMagic)+sha256.Size || !bytes.HasPrefix(data, []byte(indexMagic)) {
		return nil, errBadIndex
	}
	body, trailer := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], trailer) {
		return nil, fmt.Errorf("%w: checksum mismatch", errBadIndex)
	}
	d := decoder{b: body[len(indexMagic):]}
	version := d.uvarint()
	if version != indexVersion && version != indexNoPerm {
		return nil, fmt.Errorf("%w: version %d", errBadIndex, version)
	}
	var storeID [16]byte
	d.bytes(storeID[:])
	minEntry := 1 + 1 + 1 + 5 + 20 + 32 + 1
	if version == indexNoPerm {
		minEntry--
	}
	n := d.count(minEntry)
	ix := newIndex(storeID, n)
	for i := 0; i < n && d.err == nil; i++ {
		path := d.string()
		e := entry{mode: filemode.FileMode(d.uvarint()), perm: noPerm}
		if version == indexVersion {
			// noPerm is kept as such: it matches no file.
			perm := d.uvarint()
			if perm > noPerm {
				d.fail()
			}
			e.perm = uint32(perm)
		}
		e.size = d.varint()
		e.mtime = d.varint()
		e.ctime = d.varint()
		e.ino = d.uvarint()
		e.dev = d.uvarint()
		d.bytes(e.blob[:])
		d.bytes(e.sum[:])
		var flags [1]byte
		d.bytes(flags[:])
		e.racy = flags[0]&flagRacy != 0
		switch e.mode {
		case filemode.Regular, filemode.Executable, filemode.Symlink:
		default:
			d.fail()
		}
		ix.files[path] = e
	}
	n = d.count(1 + 20 + 1)
	for i := 0; i < n && d.err == nil; i++ {
		path := d.string()
		var rec dirRecord
		d.bytes(rec.tree[:])
		rec.entries = int(d.uvarint())
		ix.dirs[path] = rec
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	if d.err != nil {
		return nil, d.err
	}
	return ix, nil
}

// loadIndex reads the index at path; a missing index is (nil, nil).
func loadIndex(path string) (*index, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	ix, err := decodeIndex(data)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", path, err)
	}
	return ix, nil
}

// save writes the index to path through a temporary file and a rename. It is
// not synced: a lost index only costs a full re-read.
func (ix *index) save(path string) error {
	if err := writeFileAtomic(path, ix.encode(), 0o600, false); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads varints and byte strings, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errBadIndex
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(dst []byte) {
	if len(d.b) < len(dst) {
		d.fail()
		return
	}
	copy(dst, d.b)
	d.b = d.b[len(dst):]
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads an element count, refusing one that the remaining bytes
// cannot hold at minSize bytes per element.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/minSize) {
		d.fail()
		return 0
	}
	return int(n)
}
