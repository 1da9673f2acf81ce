package snapshot

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
)

// packWriter writes many new objects as one git packfile (version 2, no
// deltas) with its index, instead of a file per object: creating files is
// what a first snapshot of a large workspace would spend its time on.
// Objects become visible when finish renames the pack and its index into
// objects/pack; until then the snapshot only writes them, never reads them.
type packWriter struct {
	repo *repo

	// mu guards the following.
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	off  int64
	idx  idxfile.Writer
	objs uint32
}

// packThreshold is the number of objects a snapshot expects to write above
// which it writes a pack.
const packThreshold = 64

const packHeaderSize = 12 // "PACK", version, object count

func newPackWriter(r *repo) (*packWriter, error) {
	packDir := filepath.Join(r.dir, "objects", "pack")
	if err := os.MkdirAll(packDir, 0o755); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	f, err := os.CreateTemp(packDir, "tmp_pack_")
	if err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	p := &packWriter{repo: r, f: f, w: bufio.NewWriterSize(f, 256<<10), off: packHeaderSize}
	// The header is written last, when the count is known.
	if _, err := p.w.Write(make([]byte, packHeaderSize)); err != nil {
		p.abort()
		return nil, fmt.Errorf("pack: %w", err)
	}
	return p, nil
}

var zlibWriters = sync.Pool{New: func() any { return zlib.NewWriter(nil) }}

// add appends object h of type t. Compression happens outside the lock, so
// several goroutines can add at once.
func (p *packWriter) add(t plumbing.ObjectType, h plumbing.Hash, content []byte) error {
	var entry bytes.Buffer
	entry.Grow(len(content)/2 + 64)
	// Entry header: type and size, 4 bits of size first, then 7 per byte.
	size := uint64(len(content))
	b := byte(t)<<4 | byte(size&0x0f)
	size >>= 4
	for size != 0 {
		entry.WriteByte(b | 0x80)
		b = byte(size & 0x7f)
		size >>= 7
	}
	entry.WriteByte(b)
	zw := zlibWriters.Get().(*zlib.Writer)
	zw.Reset(&entry)
	zw.Write(content)
	err := zw.Close()
	zlibWriters.Put(zw)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	crc := crc32.ChecksumIEEE(entry.Bytes())

	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.w.Write(entry.Bytes()); err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	p.idx.Add(h, uint64(p.off), crc)
	p.off += int64(entry.Len())
	p.objs++
	return nil
}

// finish completes the pack (header and trailing checksum), writes its
// index, and renames both into place, index last. Nothing is synced here.
func (p *packWriter) finish() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.finishLocked(); err != nil {
		p.abortLocked()
		return fmt.Errorf("pack: %w", err)
	}
	return nil
}

func (p *packWriter) finishLocked() error {
	if p.objs == 0 {
		p.abortLocked()
		return nil
	}
	if err := p.w.Flush(); err != nil {
		return err
	}
	var hdr [packHeaderSize]byte
	copy(hdr[:], "PACK")
	binary.BigEndian.PutUint32(hdr[4:], 2)
	binary.BigEndian.PutUint32(hdr[8:], p.objs)
	if _, err := p.f.WriteAt(hdr[:], 0); err != nil {
		return err
	}
	// The trailer is the SHA-1 of everything before it; the body was
	// written before the header, so read it back (from the page cache).
	sum := sha1.New()
	if _, err := io.Copy(sum, io.NewSectionReader(p.f, 0, p.off)); err != nil {
		return err
	}
	var packHash plumbing.Hash
	copy(packHash[:], sum.Sum(nil))
	if _, err := p.f.WriteAt(packHash[:], p.off); err != nil {
		return err
	}
	if err := p.f.Chmod(0o444); err != nil {
		return err
	}
	if err := p.f.Close(); err != nil {
		return err
	}
	if err := p.idx.OnFooter(packHash); err != nil {
		return err
	}
	mi, err := p.idx.Index()
	if err != nil {
		return err
	}
	var idx bytes.Buffer
	if _, err := idxfile.NewEncoder(&idx).Encode(mi); err != nil {
		return err
	}
	base := filepath.Join(p.repo.dir, "objects", "pack", "pack-"+packHash.String())
	if err := writeFileAtomic(base+".idx.tmp", idx.Bytes(), 0o444, false); err != nil {
		return err
	}
	if err := os.Rename(p.f.Name(), base+".pack"); err != nil {
		os.Remove(base + ".idx.tmp")
		return err
	}
	if err := os.Rename(base+".idx.tmp", base+".idx"); err != nil {
		os.Remove(base + ".idx.tmp")
		return err
	}
	p.f = nil
	p.repo.written(base + ".pack")
	p.repo.written(base + ".idx")
	return nil
}

// abort discards the pack.
func (p *packWriter) abort() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.abortLocked()
}

func (p *packWriter) abortLocked() {
	if p.f != nil {
		p.f.Close()
		os.Remove(p.f.Name())
		p.f = nil
	}
}
