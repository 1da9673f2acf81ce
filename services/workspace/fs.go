package workspace

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// Size limits.
const (
	// DefaultMaxReadSize bounds the file a read returns whole: a bit under
	// the daemon's default 16 MiB frame limit, leaving room for the rest of
	// the frame, so a file that can be written in one frame can be read in
	// one.
	DefaultMaxReadSize = 16<<20 - 64<<10
	// DefaultMaxUploadSize bounds one chunked upload.
	DefaultMaxUploadSize = 16 << 30
)

// Options configures [Open]. Zero values mean the defaults.
type Options struct {
	// Root is the workspace directory.
	Root string
	// DataDir is the daemon's own directory. When it lies inside Root it is
	// never served: see the package documentation.
	DataDir string
	// MaxReadSize bounds what [FS.Read] returns (default
	// DefaultMaxReadSize).
	MaxReadSize int64
	// MaxUploadSize bounds the size an upload may announce (default
	// DefaultMaxUploadSize).
	MaxUploadSize int64
}

// FS is the workspace as services see it. Its methods take paths as clients
// spell them (see the package documentation) unless they say otherwise.
type FS struct {
	root      *os.Root
	host      string // the root's absolute host path, symlinks resolved
	dataRel   string // the data dir relative to the root: "" outside it, "." the root itself
	maxRead   int64
	maxUpload int64
	hooks     *Interceptors
}

// Open opens the workspace at opts.Root.
func Open(opts Options) (*FS, error) {
	if opts.Root == "" {
		return nil, errors.New("workspace: no root directory")
	}
	host, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	if host, err = filepath.EvalSymlinks(host); err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	root, err := os.OpenRoot(host)
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	w := &FS{
		root:      root,
		host:      filepath.ToSlash(host),
		maxRead:   opts.MaxReadSize,
		maxUpload: opts.MaxUploadSize,
		hooks:     InterceptorsFor(host),
	}
	if w.maxRead <= 0 {
		w.maxRead = DefaultMaxReadSize
	}
	if w.maxUpload <= 0 {
		w.maxUpload = DefaultMaxUploadSize
	}
	if opts.DataDir != "" {
		data, err := filepath.Abs(opts.DataDir)
		if err != nil {
			root.Close()
			return nil, fmt.Errorf("workspace: data dir: %w", err)
		}
		if resolved, err := filepath.EvalSymlinks(data); err == nil {
			data = resolved
		}
		if rel, err := filepath.Rel(host, data); err == nil && filepath.IsLocal(rel) {
			w.dataRel = filepath.ToSlash(rel)
		}
	}
	return w, nil
}

// Close releases the root. Uploads still open fail afterwards.
func (w *FS) Close() error { return w.root.Close() }

// HostPath is the host path of the canonical workspace-relative path rel,
// for facilities that need one (inotify). It must never reach a client.
func (w *FS) HostPath(rel string) string {
	return filepath.Join(filepath.FromSlash(w.host), filepath.FromSlash(rel))
}

// SameAsHost reports whether the canonical path rel, looked up through the
// root, is the same file as its host path looked up the ordinary way: a
// check for facilities that take host paths (inotify) that no symbolic link
// was swapped in between.
func (w *FS) SameAsHost(rel string) bool {
	inRoot, err := w.root.Stat(rel)
	if err != nil {
		return false
	}
	onHost, err := os.Stat(w.HostPath(rel))
	return err == nil && os.SameFile(inRoot, onHost)
}

// MaxReadSize is the largest file [FS.Read] returns.
func (w *FS) MaxReadSize() int64 { return w.maxRead }

// Interceptors is the write hook registry of this workspace.
func (w *FS) Interceptors() *Interceptors { return w.hooks }

// TempPrefix starts the names of the temporary files of writes and uploads
// in progress. They are hidden from listings and from change events.
const TempPrefix = ".conman-tmp-"

// IsTempName reports whether name is one of the daemon's temporary files.
func IsTempName(name string) bool { return strings.HasPrefix(name, TempPrefix) }

// Entry describes one file.
type Entry struct {
	Name    string
	Dir     bool // a directory, or a symbolic link to one
	Size    int64
	Mode    fs.FileMode
	ModTime time.Time
	Ino     uint64 // file serial number; a rename keeps it
}

// visible reports whether the child name of the canonical directory dir
// may be shown to clients.
func (w *FS) visible(dir, name string) bool {
	return utf8.ValidString(name) && !IsTempName(name) && !w.inDataDir(join(dir, name))
}

// entry describes the child name of dir from its lstat info; a symbolic
// link counts as a directory when it resolves to one inside the root.
func (w *FS) entry(dir, name string, fi fs.FileInfo) Entry {
	e := Entry{Name: name, Dir: fi.IsDir(), Size: fi.Size(), Mode: fi.Mode(), ModTime: fi.ModTime(), Ino: inode(fi)}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if target, err := w.root.Stat(join(dir, name)); err == nil {
			e.Dir = target.IsDir()
		}
	}
	return e
}

// Read returns the content of the regular file p. Files over the read limit
// are refused with [ErrTooLarge].
func (w *FS) Read(p string) ([]byte, error) {
	data, err := w.read(p)
	return data, pathErr("read", p, err)
}

func (w *FS) read(p string) ([]byte, error) {
	rel, err := w.resolve(p, true)
	if err != nil {
		return nil, err
	}
	f, err := w.root.OpenFile(rel, openReadFlags, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return nil, err
	case fi.IsDir():
		return nil, syscall.EISDIR
	case !fi.Mode().IsRegular():
		return nil, errNotRegular
	case fi.Size() > w.maxRead:
		return nil, tooLarge(fmt.Sprintf("%d bytes, the limit is %d", fi.Size(), w.maxRead))
	}
	// The file may grow while we read it: read one byte past the limit to
	// notice.
	data := make([]byte, 0, fi.Size()+1)
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if int64(len(data)) > w.maxRead {
			return nil, tooLarge(fmt.Sprintf("over %d bytes", w.maxRead))
		}
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return nil, err
		}
		if len(data) == cap(data) {
			data = slices.Grow(data, 64<<10)
		}
	}
}

// List returns the entries of directory p sorted by name, leaving out the
// data dir, temporary files and names that are not valid UTF-8.
func (w *FS) List(p string) ([]Entry, error) {
	entries, err := w.list(p)
	return entries, pathErr("readdir", p, err)
}

func (w *FS) list(p string) ([]Entry, error) {
	rel, err := w.resolve(p, true)
	if err != nil {
		return nil, err
	}
	f, err := w.root.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, syscall.ENOTDIR
	}
	dirents, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	entries := make([]Entry, 0, len(dirents))
	for _, de := range dirents {
		if !w.visible(rel, de.Name()) {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue // removed since it was listed
		}
		entries = append(entries, w.entry(rel, de.Name(), fi))
	}
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return entries, nil
}

// Lookup describes the child name of the canonical directory dir without
// following a symbolic link in name. It reports false when there is no such
// child or it is hidden (see [FS.List]).
func (w *FS) Lookup(dir, name string) (Entry, bool, error) {
	if !w.visible(dir, name) {
		return Entry{}, false, nil
	}
	fi, err := w.root.Lstat(join(dir, name))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, pathErr("lstat", join(dir, name), err)
	}
	return w.entry(dir, name, fi), true, nil
}

// Stat describes p, following symbolic links. A path that does not exist
// is not an error: Stat reports false.
func (w *FS) Stat(p string) (Entry, bool, error) {
	rel, err := w.resolve(p, true)
	if err == nil {
		var fi fs.FileInfo
		if fi, err = w.root.Stat(rel); err == nil {
			return Entry{Name: path.Base(rel), Dir: fi.IsDir(), Size: fi.Size(), Mode: fi.Mode(), ModTime: fi.ModTime(), Ino: inode(fi)}, true, nil
		}
	}
	if c := codeOf(err); c == CodeNotFound || c == CodeNotDir {
		return Entry{}, false, nil
	}
	return Entry{}, false, pathErr("stat", p, err)
}

// Mkdir creates directory p and any missing parents. An existing directory
// is fine; an existing file is [syscall.EEXIST].
func (w *FS) Mkdir(p string) error {
	return pathErr("mkdir", p, w.mkdir(p))
}

func (w *FS) mkdir(p string) error {
	rel, err := w.resolve(p, true)
	if err != nil {
		return err
	}
	fi, err := w.root.Stat(rel)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		return syscall.EEXIST
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return w.root.MkdirAll(rel, 0o777)
}

// Remove removes p, with everything in it when it is a directory. A
// symbolic link is removed, not its target.
func (w *FS) Remove(p string) error {
	return pathErr("remove", p, w.remove(p, false))
}

// TryRemove is [FS.Remove] for which a missing p is no error.
func (w *FS) TryRemove(p string) error {
	return pathErr("tryRemove", p, w.remove(p, true))
}

func (w *FS) remove(p string, missingOK bool) error {
	rel, err := w.resolve(p, false)
	if err == nil {
		switch {
		case rel == ".":
			return errRoot
		case w.holdsDataDir(rel):
			return errHoldsDataDir
		}
		_, err = w.root.Lstat(rel)
	}
	if err != nil {
		if c := codeOf(err); missingOK && (c == CodeNotFound || c == CodeNotDir) {
			return nil
		}
		return err
	}
	return w.root.RemoveAll(rel)
}

// errNoReplaceUnsupported says renameat2's RENAME_NOREPLACE is unavailable.
var errNoReplaceUnsupported = errors.New("rename without replace is not supported")

// Move renames oldPath to newPath. It never replaces anything: an existing
// newPath is [syscall.EEXIST], unless both name the same file, which is a
// no-op. Symbolic links are moved, not their targets.
func (w *FS) Move(oldPath, newPath string) error {
	if err := w.move(oldPath, newPath); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return e
		}
		return &Error{Op: "move", Path: oldPath, Dest: newPath, Err: bare(err)}
	}
	return nil
}

func (w *FS) move(oldPath, newPath string) error {
	src, err := w.resolve(oldPath, false)
	if err != nil {
		return err
	}
	dst, err := w.resolve(newPath, false)
	if err != nil {
		return err
	}
	switch {
	case src == "." || dst == ".":
		return errRoot
	case w.holdsDataDir(src):
		return errHoldsDataDir
	case strings.HasPrefix(dst, src+"/"):
		return invalidf("cannot move a directory into itself")
	}
	srcInfo, err := w.root.Lstat(src)
	if err != nil {
		return err
	}
	if src == dst {
		return nil
	}
	err = w.renameNoReplace(src, dst)
	if errors.Is(err, syscall.EEXIST) {
		if dstInfo, serr := w.root.Lstat(dst); serr == nil && os.SameFile(srcInfo, dstInfo) {
			return nil // two links to one file: rename(2) leaves both
		}
	}
	return err
}

// renameNoReplace renames the canonical src to dst unless dst exists.
func (w *FS) renameNoReplace(src, dst string) error {
	srcDir, srcName := split(src)
	dstDir, dstName := split(dst)
	sd, err := w.root.Open(srcDir)
	if err != nil {
		return err
	}
	defer sd.Close()
	dd := sd
	if dstDir != srcDir {
		if dd, err = w.root.Open(dstDir); err != nil {
			return err
		}
		defer dd.Close()
	}
	err = renameat2(sd, srcName, dd, dstName)
	if !errors.Is(err, errNoReplaceUnsupported) {
		return err
	}
	// Without kernel support: check, then rename (a creator racing us may
	// be replaced).
	if _, err := w.root.Lstat(dst); err == nil {
		return syscall.EEXIST
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return w.root.Rename(src, dst)
}

// Persist makes p and its directory entry durable (fsync).
func (w *FS) Persist(p string) error {
	return pathErr("persist", p, w.persist(p))
}

func (w *FS) persist(p string) error {
	rel, err := w.resolve(p, true)
	if err != nil {
		return err
	}
	f, err := w.root.OpenFile(rel, openReadFlags, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return err
	}
	if rel == "." {
		return nil
	}
	dir, _ := split(rel)
	return w.syncDir(dir)
}

// syncDir makes the entries of the canonical directory dir durable.
// Filesystems that cannot sync a directory are not an error.
func (w *FS) syncDir(dir string) error {
	f, err := w.root.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}
