package snapshot

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/sys/unix"
)

// Result is what one snapshot did.
type Result struct {
	Info
	// Unchanged reports that the workspace matched the newest snapshot,
	// whose Info this is; nothing new was stored.
	Unchanged bool
	// Hashed counts the files and symlinks read, because their stat data
	// differed from the index's (or were too recent to trust).
	Hashed int
	// Written counts the objects written to the repository.
	Written int
	// Skipped counts special files (sockets, FIFOs, devices), which are
	// not stored.
	Skipped int
	Took    time.Duration
}

const (
	// racyWindow: a file whose mtime or ctime is this recent when it is
	// read may be written again within the same timestamp tick, leaving
	// its stat data unchanged; its index entry is marked racy and the file
	// is read again next time. Two seconds cover coarse filesystem clocks.
	racyWindow = 2 * time.Second
	// inMemoryMax is the largest file read into memory; larger ones are
	// streamed twice (once to hash, once to store).
	inMemoryMax = 8 << 20
	// readAttempts bounds the re-reads of a file that keeps changing.
	readAttempts = 5
)

// Snapshot stores a consistent snapshot of the workspace and returns it.
// Only files whose stat data changed since the last snapshot are read; a
// snapshot identical to the newest one is not stored again.
func (s *Store) Snapshot(ctx context.Context) (Result, error) {
	if err := s.acquire(ctx); err != nil {
		return Result{}, err
	}
	defer s.release()
	return s.snapshotLocked(ctx, "")
}

// node is one directory, file or symlink found in the workspace.
type node struct {
	name     string
	path     string // slash-separated, relative to the workspace
	st       fileStat
	children []*node // directories only, in git's tree order
	target   []byte  // symlinks only, when read
	e        entry   // files and symlinks: what the index will hold
	gone     bool    // vanished while the snapshot ran
	tree     plumbing.Hash
}

func (n *node) isDir() bool { return n.st.isDir() }

// scan is one snapshot in progress.
type scan struct {
	s        *Store
	old      *index
	new      *index
	root     *os.Root // the workspace
	racyFrom int64    // ns; stat times from here to racyTo are racy
	racyTo   int64
	work     []*node // files and symlinks to read
	skipped  int
	hashed   atomic.Int64

	pack *packWriter // when many objects are to be written

	// mu guards the following.
	mu      sync.Mutex
	pending map[plumbing.Hash]struct{} // written by this snapshot
}

// store writes an object whose hash is h: into the pack when there is one,
// else as a loose object.
func (sc *scan) store(t plumbing.ObjectType, h plumbing.Hash, content []byte) error {
	if sc.pack != nil {
		return sc.pack.add(t, h, content)
	}
	got, err := sc.s.repo.writeBytes(t, content)
	if err == nil && got != h {
		err = fmt.Errorf("write object: hash %s, want %s", got, h)
	}
	return err
}

// finishPack makes the pack's objects part of the repository.
func (sc *scan) finishPack() error {
	if sc.pack == nil {
		return nil
	}
	err := sc.pack.finish()
	sc.pack = nil
	return err
}

func (s *Store) snapshotLocked(ctx context.Context, note string) (Result, error) {
	// Git records seconds; so does the snapshot's time.
	start := s.opts.Now().Truncate(time.Second)
	began := time.Now()
	root, err := os.OpenRoot(s.opts.Workspace)
	if err != nil {
		return Result{}, fmt.Errorf("snapshot: %w", err)
	}
	defer root.Close()
	sc := &scan{
		s:        s,
		old:      s.idx,
		new:      newIndex(s.repo.id, len(s.idx.files)),
		root:     root,
		racyFrom: start.Add(-racyWindow).UnixNano(),
		racyTo:   start.Add(racyWindow + time.Second).UnixNano(),
		pending:  make(map[plumbing.Hash]struct{}),
	}
	top := &node{path: ""}
	fd, err := unix.Open(s.opts.Workspace, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Result{}, fmt.Errorf("snapshot: open workspace: %w", err)
	}
	var ust unix.Stat_t
	if err := unix.Fstat(fd, &ust); err != nil {
		unix.Close(fd)
		return Result{}, fmt.Errorf("snapshot: stat workspace: %w", err)
	}
	top.st = statFromUnix(&ust)
	if err := sc.walk(ctx, fd, top); err != nil {
		return Result{}, fmt.Errorf("snapshot: %w", err)
	}
	if len(sc.work) >= packThreshold {
		if sc.pack, err = newPackWriter(s.repo); err != nil {
			return Result{}, fmt.Errorf("snapshot: %w", err)
		}
		defer func() {
			if sc.pack != nil {
				sc.pack.abort()
			}
		}()
	}
	if err := sc.readAll(ctx); err != nil {
		return Result{}, fmt.Errorf("snapshot: %w", err)
	}
	tree, err := sc.buildTree(top)
	if err != nil {
		return Result{}, fmt.Errorf("snapshot: %w", err)
	}
	l := newListing()
	counts := new(permCounts)
	sc.list(top, l, counts)
	checksum := l.checksum()
	modes := &snapshotModes{exact: true, usual: counts.usual()}
	sc.modeRecords(top, modes)

	res := Result{Hashed: int(sc.hashed.Load()), Skipped: sc.skipped}
	parent, err := s.repo.head()
	if err != nil {
		return Result{}, fmt.Errorf("snapshot: %w", err)
	}
	if !parent.IsZero() {
		last, err := s.lastLocked(parent)
		if err != nil {
			// A damaged newest snapshot must not stop new ones.
			s.log.Warn("newest snapshot unreadable; storing the new one on top of it", "id", shortID(parent.String()), "err", err)
		}
		if err == nil && last.tree == tree && last.info.Checksum == checksum {
			if err := sc.finishPack(); err != nil {
				return Result{}, fmt.Errorf("snapshot: %w", err)
			}
			res.Info, res.Unchanged = last.info, true
			res.Written = len(sc.pending)
			// The objects written (say for a file touched back to old
			// content) must be durable before the index vouches for them.
			if err := s.commitIndexLocked(sc, true, res.Hashed > 0 || len(sc.new.files) != len(s.idx.files)); err != nil {
				return Result{}, err
			}
			res.Took = time.Since(began)
			return res, nil
		}
	}
	msg := commitMessage(note, l.files, l.bytes, checksum, modes)
	id, err := s.repo.writeCommit(tree, parent, start, msg)
	if err != nil {
		return Result{}, fmt.Errorf("snapshot: %w", err)
	}
	sc.pending[id] = struct{}{}
	if err := sc.finishPack(); err != nil {
		return Result{}, fmt.Errorf("snapshot: %w", err)
	}
	if err := s.repo.publish(id, !s.opts.NoSync); err != nil {
		return Result{}, fmt.Errorf("snapshot: %w", err)
	}
	res.Info = Info{ID: id.String(), Time: start, Files: l.files, Bytes: l.bytes, Checksum: checksum, Note: note}
	res.Written = len(sc.pending)
	s.last = lastCommit{id: id, tree: tree, info: res.Info}
	if err := s.commitIndexLocked(sc, false, true); err != nil { // publish synced
		return Result{}, err
	}
	res.Took = time.Since(began)
	s.log.Debug("snapshot stored", "id", res.ShortID(), "files", res.Files, "hashed", res.Hashed,
		"written", res.Written, "took", res.Took)
	return res, nil
}

// commitIndexLocked adopts the scan's index and, when save, writes it.
// Every object it names must be durable first: known before, or synced by
// publish, or synced here when sync is set.
func (s *Store) commitIndexLocked(sc *scan, sync, save bool) error {
	if sync {
		if err := s.repo.sync(!s.opts.NoSync); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
	}
	for h := range sc.pending {
		s.known[h] = struct{}{}
	}
	s.idx = sc.new
	if !save {
		return nil
	}
	if err := s.idx.save(s.indexPath()); err != nil {
		// The snapshot is stored; only the cache is behind.
		s.log.Warn("snapshot index not saved", "err", err)
	}
	s.noteIndexSaved()
	return nil
}

// lastLocked returns the commit id, reading it unless it is the one
// remembered.
func (s *Store) lastLocked(id plumbing.Hash) (lastCommit, error) {
	if s.last.id == id {
		return s.last, nil
	}
	c, err := object.GetCommit(s.repo.storage(), id)
	if err != nil {
		return lastCommit{}, fmt.Errorf("read snapshot %s: %w", shortID(id.String()), err)
	}
	info, err := infoFromCommit(c)
	if err != nil {
		return lastCommit{}, err
	}
	s.last = lastCommit{id: id, tree: c.TreeHash, info: info}
	return s.last, nil
}

// vanished reports errors meaning an entry went away or changed kind
// between being listed and being opened; a later snapshot will see it.
func vanished(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) ||
		errors.Is(err, os.ErrNotExist)
}

// walker walks the workspace, a few directories at a time.
type walker struct {
	sc   *scan
	ctx  context.Context
	sem  chan struct{} // a token per extra goroutine
	wg   sync.WaitGroup
	fail atomic.Bool

	// mu guards the following.
	mu      sync.Mutex
	err     error
	work    []*node
	skipped int
}

// walk lists the workspace, open as fd (which it closes), into top. It
// never follows a symlink: every entry is examined relative to its
// directory's descriptor.
func (sc *scan) walk(ctx context.Context, fd int, top *node) error {
	w := &walker{sc: sc, ctx: ctx, sem: make(chan struct{}, max(runtime.GOMAXPROCS(0)-1, 0))}
	w.dir(fd, top)
	w.wg.Wait()
	sc.work, sc.skipped = w.work, w.skipped
	return w.err
}

func (w *walker) setErr(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	w.fail.Store(true)
}

// dir lists the directory open as dirfd (which it closes) into n, and
// walks its subdirectories: on another goroutine when one is free, else on
// this one.
func (w *walker) dir(dirfd int, n *node) {
	dir := os.NewFile(uintptr(dirfd), dirOrDot(n.path))
	defer dir.Close()
	if w.fail.Load() {
		return
	}
	if err := w.ctx.Err(); err != nil {
		w.setErr(err)
		return
	}
	names, err := dir.Readdirnames(-1)
	if err != nil {
		w.setErr(fmt.Errorf("read directory %s: %w", dirOrDot(n.path), err))
		return
	}
	var work []*node
	skipped := 0
	n.children = make([]*node, 0, len(names))
	for _, name := range names {
		var ust unix.Stat_t
		path := joinPath(n.path, name)
		if err := unix.Fstatat(dirfd, name, &ust, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if vanished(err) {
				continue
			}
			w.setErr(fmt.Errorf("stat %s: %w", path, err))
			return
		}
		child := &node{name: name, path: path, st: statFromUnix(&ust)}
		switch {
		case child.st.isDir():
			if child.st.dev == w.sc.s.dataDir.dev && child.st.ino == w.sc.s.dataDir.ino {
				continue // the data dir, never part of a snapshot
			}
			fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				if vanished(err) {
					continue
				}
				w.setErr(fmt.Errorf("open %s: %w", path, err))
				return
			}
			select {
			case w.sem <- struct{}{}:
				w.wg.Go(func() {
					defer func() { <-w.sem }()
					w.dir(fd, child)
				})
			default:
				w.dir(fd, child)
			}
		case child.st.isRegular():
			if !w.sc.reuse(child) {
				work = append(work, child)
			}
		case child.st.isSymlink():
			if !w.sc.reuse(child) {
				target, err := readlinkat(dirfd, name, child.st.size)
				if err != nil {
					if vanished(err) || errors.Is(err, unix.EINVAL) {
						continue
					}
					w.setErr(fmt.Errorf("readlink %s: %w", path, err))
					return
				}
				child.target = target
				work = append(work, child)
			}
		default:
			skipped++
			continue
		}
		n.children = append(n.children, child)
	}
	slices.SortFunc(n.children, func(a, b *node) int {
		return gitNameCompare(a.name, a.isDir(), b.name, b.isDir())
	})
	if len(work) > 0 || skipped > 0 {
		w.mu.Lock()
		w.work = append(w.work, work...)
		w.skipped += skipped
		w.mu.Unlock()
	}
}

// reuse takes a file's or symlink's entry from the index when its stat
// data still match, and reports whether it did. The index is only read
// while a snapshot runs.
func (sc *scan) reuse(n *node) bool {
	old, ok := sc.old.files[n.path]
	if !ok || old.racy || !old.sameStat(n.st) {
		return false
	}
	n.e = old
	return true
}

func readlinkat(dirfd int, name string, size int64) ([]byte, error) {
	buf := make([]byte, max(size+1, 64))
	for {
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return nil, err
		}
		if n < len(buf) {
			return buf[:n], nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

// readAll reads and hashes the queued files, a few at a time, and stores
// the blobs the repository lacks.
func (sc *scan) readAll(ctx context.Context) error {
	if len(sc.work) == 0 {
		return nil
	}
	workers := min(max(runtime.GOMAXPROCS(0), 8), len(sc.work))
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		failed   atomic.Bool
	)
	for range workers {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(sc.work) {
					return
				}
				err := ctx.Err()
				if err == nil {
					err = sc.readNode(sc.work[i])
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					failed.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// readNode reads one queued file or symlink, fills in its entry and stores
// its blob if the repository lacks it.
func (sc *scan) readNode(n *node) error {
	sc.hashed.Add(1)
	if n.st.isSymlink() {
		blob, sum := hashBlob(n.target)
		n.e = sc.entryFor(n.st, blob, sum)
		n.e.size = int64(len(n.target))
		if sc.claim(blob) {
			if err := sc.store(plumbing.BlobObject, blob, n.target); err != nil {
				return err
			}
		}
		return nil
	}
	for attempt := 1; ; attempt++ {
		err := sc.readFile(n)
		if !errors.Is(err, errChanged) {
			return err
		}
		if attempt == readAttempts {
			return fmt.Errorf("%s kept changing while being read; try again", n.path)
		}
	}
}

// readFile makes one attempt at reading a regular file consistently: open
// it, read it, and check that its stat data did not change meanwhile. It
// returns errChanged when they did.
func (sc *scan) readFile(n *node) error {
	// O_NONBLOCK: should the file have become a FIFO since the walk, the
	// open must not wait for a writer.
	f, err := sc.root.OpenFile(n.path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if vanished(err) {
			n.gone = true
			return nil
		}
		return fmt.Errorf("open %s: %w", n.path, err)
	}
	defer f.Close()
	before, err := fstat(f)
	if err != nil {
		return fmt.Errorf("stat %s: %w", n.path, err)
	}
	if !before.isRegular() || before.ino != n.st.ino || before.dev != n.st.dev {
		// Replaced since the walk (os.Root follows a symlink that stays
		// inside the workspace): look at what is there now.
		info, err := sc.root.Lstat(n.path)
		if err != nil {
			if vanished(err) {
				n.gone = true
				return nil
			}
			return fmt.Errorf("stat %s: %w", n.path, err)
		}
		st, _ := statFromInfo(info)
		if !st.isRegular() {
			n.gone = true // a later snapshot takes whatever it is now
			return nil
		}
		n.st = st
		return errChanged
	}
	if before.size > inMemoryMax {
		return sc.streamFile(n, f, before)
	}
	content := make([]byte, before.size)
	if _, err := io.ReadFull(f, content); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return sc.changed(n, f)
		}
		return fmt.Errorf("read %s: %w", n.path, err)
	}
	if grew(f) {
		return sc.changed(n, f)
	}
	if sc.s.hashHook != nil {
		sc.s.hashHook(n.path)
	}
	after, err := fstat(f)
	if err != nil {
		return fmt.Errorf("stat %s: %w", n.path, err)
	}
	if after != before {
		n.st = after
		return errChanged
	}
	n.st = after
	blob, sum := hashBlob(content)
	n.e = sc.entryFor(after, blob, sum)
	if sc.claim(blob) {
		if err := sc.store(plumbing.BlobObject, blob, content); err != nil {
			return err
		}
	}
	return nil
}

// streamFile hashes a large file without holding it in memory, then, if the
// repository lacks its blob, copies it in and checks that the copy hashes
// the same.
func (sc *scan) streamFile(n *node, f *os.File, before fileStat) error {
	gitHash, sum := newBlobHasher(before.size), sha256.New()
	copied, err := io.Copy(io.MultiWriter(gitHash, sum), io.LimitReader(f, before.size))
	if err != nil {
		return fmt.Errorf("read %s: %w", n.path, err)
	}
	if copied != before.size || grew(f) {
		return sc.changed(n, f)
	}
	if sc.s.hashHook != nil {
		sc.s.hashHook(n.path)
	}
	after, err := fstat(f)
	if err != nil {
		return fmt.Errorf("stat %s: %w", n.path, err)
	}
	n.st = after
	if after != before {
		return errChanged
	}
	var blob plumbing.Hash
	copy(blob[:], gitHash.Sum(nil))
	var sha [32]byte
	copy(sha[:], sum.Sum(nil))
	n.e = sc.entryFor(after, blob, sha)
	if !sc.claim(blob) {
		return nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("read %s: %w", n.path, err)
	}
	stored, err := sc.s.repo.writeObject(plumbing.BlobObject, before.size, io.LimitReader(f, before.size))
	if errors.Is(err, errChanged) || (err == nil && stored != blob) {
		sc.unclaim(blob)
		return sc.changed(n, f)
	}
	return err
}

// changed records a file's current stat data and reports errChanged.
func (sc *scan) changed(n *node, f *os.File) error {
	if st, err := fstat(f); err == nil {
		n.st = st
	}
	return errChanged
}

// grew reports whether f has bytes past what was read.
func grew(f *os.File) bool {
	var one [1]byte
	n, _ := f.Read(one[:])
	return n > 0
}

func fstat(f *os.File) (fileStat, error) {
	info, err := f.Stat()
	if err != nil {
		return fileStat{}, err
	}
	st, ok := statFromInfo(info)
	if !ok {
		return fileStat{}, errors.New("no stat data")
	}
	return st, nil
}

// isRacy reports whether a stat time t is too close to now for stat data
// to prove a file unchanged later. A time far in the future is not: any
// write would set it back to the present.
func (sc *scan) isRacy(t int64) bool { return t >= sc.racyFrom && t <= sc.racyTo }

func (sc *scan) entryFor(st fileStat, blob plumbing.Hash, sum [32]byte) entry {
	return entry{
		mode: st.gitMode(), perm: st.perm(), size: st.size, mtime: st.mtime, ctime: st.ctime, ino: st.ino, dev: st.dev,
		blob: blob, sum: sum,
		racy: sc.isRacy(st.mtime) || sc.isRacy(st.ctime),
	}
}

// claim reports whether the caller should write object h: the repository
// is not known to hold it and no other part of this snapshot writes it.
func (sc *scan) claim(h plumbing.Hash) bool {
	if _, ok := sc.s.known[h]; ok {
		return false
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if _, ok := sc.pending[h]; ok {
		return false
	}
	sc.pending[h] = struct{}{}
	return true
}

func (sc *scan) unclaim(h plumbing.Hash) {
	sc.mu.Lock()
	delete(sc.pending, h)
	sc.mu.Unlock()
}

// buildTree computes the git tree of directory n and of everything below
// it, writing the trees the repository lacks, and fills in the new index. A
// directory whose entries all match the index keeps its recorded tree
// without being encoded.
func (sc *scan) buildTree(n *node) (plumbing.Hash, error) {
	kids := n.children[:0]
	for _, c := range n.children {
		if !c.gone {
			kids = append(kids, c)
		}
	}
	n.children = kids
	old, had := sc.old.dirs[n.path]
	changed := !had || old.entries != len(kids)
	for _, c := range kids {
		if c.isDir() {
			h, err := sc.buildTree(c)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			if o, ok := sc.old.dirs[c.path]; !ok || o.tree != h {
				changed = true
			}
			continue
		}
		sc.new.files[c.path] = c.e
		if o, ok := sc.old.files[c.path]; !ok || o.blob != c.e.blob || o.mode != c.e.mode {
			changed = true
		}
	}
	if !changed {
		n.tree = old.tree
	} else {
		body := encodeTree(kids)
		n.tree = hashObject(plumbing.TreeObject, body)
		if sc.claim(n.tree) {
			if err := sc.store(plumbing.TreeObject, n.tree, body); err != nil {
				return plumbing.ZeroHash, err
			}
		}
	}
	sc.new.dirs[n.path] = dirRecord{tree: n.tree, entries: len(kids)}
	return n.tree, nil
}

// encodeTree is git's tree format: per entry, "<octal mode> <name>\0" and
// the 20-byte hash, entries in git's order.
func encodeTree(kids []*node) []byte {
	size := 0
	for _, c := range kids {
		size += 8 + len(c.name) + 20
	}
	b := make([]byte, 0, size)
	for _, c := range kids {
		var mode filemode.FileMode
		var h plumbing.Hash
		if c.isDir() {
			mode, h = filemode.Dir, c.tree
		} else {
			mode, h = c.e.mode, c.e.blob
		}
		b = strconv.AppendUint(b, uint64(mode), 8)
		b = append(b, ' ')
		b = append(b, c.name...)
		b = append(b, 0)
		b = append(b, h[:]...)
	}
	return b
}

// list adds n's entries, depth first, to the canonical listing, and counts
// their permission bits.
func (sc *scan) list(n *node, l *listing, counts *permCounts) {
	for _, c := range n.children {
		if c.isDir() {
			perm := c.st.perm()
			counts[kindDir][perm]++
			l.add(unixMode(kindDir, perm), 0, &emptySum, c.path)
			sc.list(c, l, counts)
			continue
		}
		k := kindOf(c.e.mode)
		if k >= 0 {
			counts[k][c.e.perm]++
		}
		l.add(unixMode(k, c.e.perm), c.e.size, &c.e.sum, c.path)
	}
}

// modeRecords records, in listing order, the entries below n whose
// permission bits are not the usual ones of their kind.
func (sc *scan) modeRecords(n *node, modes *snapshotModes) {
	for _, c := range n.children {
		k, perm := kindDir, c.st.perm()
		if !c.isDir() {
			k, perm = kindOf(c.e.mode), c.e.perm
		}
		if k >= 0 && perm != modes.usual[k] {
			modes.records = append(modes.records, modeRecord{path: c.path, perm: perm})
		}
		if c.isDir() {
			sc.modeRecords(c, modes)
		}
	}
}

// hashObject is git's id of an object: SHA-1 over "<type> <size>\0" and
// the content.
func hashObject(t plumbing.ObjectType, content []byte) plumbing.Hash {
	h := sha1.New()
	writeObjectHeader(h, t, int64(len(content)))
	h.Write(content)
	var out plumbing.Hash
	copy(out[:], h.Sum(nil))
	return out
}

// hashBlob returns a blob's git id and the SHA-256 of its content.
func hashBlob(content []byte) (plumbing.Hash, [32]byte) {
	return hashObject(plumbing.BlobObject, content), sha256.Sum256(content)
}

// newBlobHasher returns a SHA-1 that, fed size bytes, yields a blob's id.
func newBlobHasher(size int64) hash.Hash {
	h := sha1.New()
	writeObjectHeader(h, plumbing.BlobObject, size)
	return h
}

func writeObjectHeader(w io.Writer, t plumbing.ObjectType, size int64) {
	var hdr [32]byte
	b := append(hdr[:0], t.Bytes()...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, size, 10)
	b = append(b, 0)
	w.Write(b)
}
