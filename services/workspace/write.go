package workspace

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io/fs"
	"os"
	"syscall"
)

// Write replaces the content of file p atomically and durably, creating it
// and its missing parent directories as needed (see the package
// documentation). A [WriteInterceptor] registered for p's resolved path is
// offered the content first.
func (w *FS) Write(p string, content []byte) error {
	rel, err := w.resolve(p, true)
	if err != nil {
		return pathErr("write", p, err)
	}
	if handled, err := w.intercept(rel, content); handled {
		return pathErr("write", p, err)
	}
	return pathErr("write", p, w.writeRel(rel, content))
}

// WriteDirect is [FS.Write] without interceptors: the way an interceptor
// itself saves a file it holds.
func (w *FS) WriteDirect(p string, content []byte) error {
	rel, err := w.resolve(p, true)
	if err != nil {
		return pathErr("write", p, err)
	}
	return pathErr("write", p, w.writeRel(rel, content))
}

// intercept offers a write of the canonical path rel to its interceptor.
func (w *FS) intercept(rel string, content []byte) (bool, error) {
	wi := w.hooks.lookup(rel)
	if wi == nil {
		return false, nil
	}
	return wi.InterceptWrite(rel, content)
}

func (w *FS) writeRel(rel string, content []byte) error {
	t, err := w.createTemp(rel)
	if err != nil {
		return err
	}
	if _, err := t.f.Write(content); err != nil {
		t.abort()
		return err
	}
	return t.commit()
}

// tempFile is the temporary file that becomes target on commit.
type tempFile struct {
	w      *FS
	f      *os.File // nil once closed
	rel    string   // the temporary file, canonical
	target string   // canonical
}

// createTemp creates the temporary file for a write of the canonical path
// target in target's directory, creating that directory if needed. The
// file has target's mode (and owner, when possible) if target exists.
func (w *FS) createTemp(target string) (*tempFile, error) {
	if target == "." {
		return nil, syscall.EISDIR
	}
	dir, _ := split(target)
	old, err := w.root.Stat(target)
	switch {
	case err == nil && old.IsDir():
		return nil, syscall.EISDIR
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		old = nil
		if dir != "." {
			if err := w.root.MkdirAll(dir, 0o777); err != nil {
				return nil, err
			}
		}
	default:
		return nil, err
	}
	perm := fs.FileMode(0o666) // the umask applies, as for any new file
	if old != nil {
		perm = 0o600 // until the old mode is set below
	}
	for attempt := 0; ; attempt++ {
		rel := join(dir, tempName())
		f, err := w.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, err
		}
		t := &tempFile{w: w, f: f, rel: rel, target: target}
		if old != nil {
			keepOwner(f, old)
			mode := old.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
			if err := f.Chmod(mode); err != nil {
				t.abort()
				return nil, err
			}
		}
		return t, nil
	}
}

func tempName() string {
	var b [8]byte
	rand.Read(b[:])
	return TempPrefix + hex.EncodeToString(b[:])
}

// commit syncs the temporary file, renames it over the target and syncs
// the directory. On failure the temporary file is gone.
func (t *tempFile) commit() error {
	if err := t.f.Sync(); err != nil {
		t.abort()
		return err
	}
	err := t.f.Close()
	t.f = nil
	if err != nil {
		t.abort()
		return err
	}
	if err := t.w.root.Rename(t.rel, t.target); err != nil {
		t.abort()
		return err
	}
	dir, _ := split(t.target)
	return t.w.syncDir(dir)
}

// abort closes and removes the temporary file.
func (t *tempFile) abort() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
	t.w.root.Remove(t.rel)
}

// Upload is a file being written in chunks: the content goes to a temporary
// file next to the target and replaces the target, atomically, on
// [Upload.Commit]. Any failure removes the temporary file and ends the
// upload.
type Upload struct {
	w       *FS
	path    string // as the caller spelled it
	rel     string // canonical
	size    int64
	written int64
	crc     hash.Hash32
	t       *tempFile // nil once the upload has ended
}

// BeginUpload starts an upload of size bytes to file p, creating missing
// parent directories. The space is reserved up front where the filesystem
// can, so a full disk shows now rather than at the last chunk.
func (w *FS) BeginUpload(p string, size int64) (*Upload, error) {
	u, err := w.beginUpload(p, size)
	return u, pathErr("upload", p, err)
}

func (w *FS) beginUpload(p string, size int64) (*Upload, error) {
	switch {
	case size < 0:
		return nil, invalidf("negative size")
	case size > w.maxUpload:
		return nil, tooLarge(fmt.Sprintf("%d bytes, the limit is %d", size, w.maxUpload))
	}
	rel, err := w.resolve(p, true)
	if err != nil {
		return nil, err
	}
	t, err := w.createTemp(rel)
	if err != nil {
		return nil, err
	}
	if err := reserve(t.f, size); err != nil {
		t.abort()
		return nil, err
	}
	return &Upload{w: w, path: p, rel: rel, size: size, crc: crc32.NewIEEE(), t: t}, nil
}

// Path is the upload's target as the caller spelled it.
func (u *Upload) Path() string { return u.path }

// Write appends a chunk. More data than announced ends the upload with
// [ErrTooLarge].
func (u *Upload) Write(chunk []byte) error {
	return pathErr("upload", u.path, u.write(chunk))
}

func (u *Upload) write(chunk []byte) error {
	if u.t == nil {
		return ErrNoTransfer
	}
	if int64(len(chunk)) > u.size-u.written {
		u.end()
		return tooLarge(fmt.Sprintf("more than the announced %d bytes", u.size))
	}
	n, err := u.t.f.Write(chunk)
	u.written += int64(n)
	u.crc.Write(chunk[:n])
	if err != nil {
		u.end()
	}
	return err
}

// Commit checks that the upload received exactly the announced size with
// the CRC-32 (IEEE) sum, then puts the file in place (through the path's
// [WriteInterceptor], if one claims it). The upload ends either way.
func (u *Upload) Commit(sum uint32) error {
	return pathErr("upload", u.path, u.commit(sum))
}

func (u *Upload) commit(sum uint32) error {
	if u.t == nil {
		return ErrNoTransfer
	}
	t := u.t
	u.t = nil
	if u.written != u.size {
		t.abort()
		return invalidf(fmt.Sprintf("size mismatch: received %d of %d bytes", u.written, u.size))
	}
	if got := u.crc.Sum32(); got != sum {
		t.abort()
		return invalidf(fmt.Sprintf("checksum mismatch: received data has crc32 %08x, expected %08x", got, sum))
	}
	if u.w.hooks.lookup(u.rel) != nil {
		return u.commitIntercepted(t)
	}
	return t.commit()
}

// commitIntercepted hands the uploaded content to the path's interceptor,
// falling back to the file when it declines.
func (u *Upload) commitIntercepted(t *tempFile) error {
	if u.size > u.w.maxRead {
		t.abort()
		return tooLarge(fmt.Sprintf("%d bytes for a file being edited together, the limit is %d", u.size, u.w.maxRead))
	}
	content, err := u.w.root.ReadFile(t.rel)
	if err != nil {
		t.abort()
		return err
	}
	if handled, err := u.w.intercept(u.rel, content); handled {
		t.abort()
		return err
	}
	return t.commit()
}

// Abort ends the upload and removes its temporary file. Aborting an ended
// upload does nothing.
func (u *Upload) Abort() { u.end() }

func (u *Upload) end() {
	if u.t != nil {
		u.t.abort()
		u.t = nil
	}
}
