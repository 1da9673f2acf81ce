package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// RestoreResult is what a restore did.
type RestoreResult struct {
	// Info describes the snapshot restored.
	Info
	// Target is the directory restored into.
	Target string
	// Before, for a restore in place, is the id of the snapshot of the
	// workspace taken just before, which undoes the restore.
	Before string
	// Written counts files, symlinks and directories created or replaced,
	// and directories given another mode; Unchanged those already right;
	// Removed the entries removed because the snapshot does not have them.
	Written, Unchanged, Removed int
}

// Restore restores the snapshot id names. With to empty, or naming the
// workspace, it restores the workspace in place: the workspace is first
// snapshotted (see [RestoreResult.Before]), then every file, symlink and
// directory not in the snapshot is removed and every other one made as in
// the snapshot; the data dir is never touched. Otherwise to is a directory,
// absent or empty and outside the data dir, that receives a copy.
//
// The snapshot is verified in full first; if it is corrupt, the error
// wraps [ErrCorrupt] and nothing is written anywhere. Each file is written
// to a temporary name, given its exact mode and renamed into place.
// Directories get their exact modes last, deepest first, so that one
// restored read-only does not keep its own entries from being written; an
// existing directory that the restore must write in or remove is opened to
// its owner (mode|0700) first. Once writing has begun it is finished even
// if ctx ends, since stopping half way helps no one.
func (s *Store) Restore(ctx context.Context, id, to string) (RestoreResult, error) {
	target, inPlace, err := s.checkTarget(to)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("restore: %w", err)
	}
	return s.restore(ctx, id, inPlace, func() (*os.Root, error) {
		if err := os.MkdirAll(target, 0o755); err != nil {
			return nil, err
		}
		return os.OpenRoot(target)
	}, target)
}

// RestoreWithin is Restore for a client of the daemon: rel is a
// workspace-relative directory ("" or "/" for the workspace itself), which
// may not lead through a symlink nor into the data dir.
func (s *Store) RestoreWithin(ctx context.Context, id, rel string) (RestoreResult, error) {
	rel, err := cleanRel(rel)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("restore: %w", err)
	}
	if rel == "" {
		return s.Restore(ctx, id, "")
	}
	return s.restore(ctx, id, false, func() (*os.Root, error) {
		return s.openWithin(rel)
	}, filepath.Join(s.opts.Workspace, filepath.FromSlash(rel)))
}

// cleanRel turns a client's path into a clean workspace-relative one; a
// leading slash means the workspace root.
func cleanRel(rel string) (string, error) {
	if strings.ContainsRune(rel, 0) {
		return "", errors.New("invalid path")
	}
	rel = strings.TrimPrefix(path.Clean("/"+rel), "/")
	return rel, nil
}

// checkTarget resolves a restore's destination without creating anything.
func (s *Store) checkTarget(to string) (target string, inPlace bool, err error) {
	if to == "" {
		return s.opts.Workspace, true, nil
	}
	abs, err := filepath.Abs(to)
	if err != nil {
		return "", false, err
	}
	// Resolve the longest existing prefix, so symlinks cannot hide that
	// the destination is inside the data dir.
	resolved, rest := abs, ""
	for {
		r, err := filepath.EvalSymlinks(resolved)
		if err == nil {
			resolved = filepath.Join(r, rest)
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", false, err
		}
		parent := filepath.Dir(resolved)
		if parent == resolved {
			return "", false, err
		}
		rest = filepath.Join(filepath.Base(resolved), rest)
		resolved = parent
	}
	if resolved == s.opts.Workspace {
		return s.opts.Workspace, true, nil
	}
	dataDir := s.opts.DataDir
	if d, err := filepath.EvalSymlinks(dataDir); err == nil {
		dataDir = d
	}
	if resolved == dataDir || strings.HasPrefix(resolved, dataDir+string(filepath.Separator)) {
		return "", false, fmt.Errorf("%s is inside the data dir", to)
	}
	if strings.HasPrefix(dataDir, resolved+string(filepath.Separator)) {
		return "", false, fmt.Errorf("%s holds the data dir", to)
	}
	if err := checkEmpty(resolved); err != nil {
		return "", false, err
	}
	return resolved, false, nil
}

// checkEmpty accepts a directory that is empty or absent.
func checkEmpty(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && err != io.EOF {
		return err
	}
	if len(names) > 0 {
		return fmt.Errorf("%s is not empty (restoring a copy needs an empty or new directory)", dir)
	}
	return nil
}

// openWithin creates and opens the workspace directory rel, refusing one
// reached through a symlink, inside the data dir, or not empty.
func (s *Store) openWithin(rel string) (*os.Root, error) {
	if s.dataRel != "" && (isUnder(rel, s.dataRel) || isUnder(s.dataRel, rel)) {
		return nil, fmt.Errorf("%s overlaps the data dir", rel)
	}
	ws, err := os.OpenRoot(s.opts.Workspace)
	if err != nil {
		return nil, err
	}
	defer ws.Close()
	parts := strings.Split(rel, "/")
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		info, err := ws.Lstat(prefix)
		if errors.Is(err, os.ErrNotExist) {
			if err := ws.Mkdir(prefix, 0o755); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			return nil, fmt.Errorf("%s is not a directory", prefix)
		}
		if st, ok := statFromInfo(info); ok && st.dev == s.dataDir.dev && st.ino == s.dataDir.ino {
			return nil, fmt.Errorf("%s is the data dir", prefix)
		}
	}
	root, err := ws.OpenRoot(rel)
	if err != nil {
		return nil, err
	}
	f, err := root.Open(".")
	if err == nil {
		var names []string
		names, err = f.Readdirnames(1)
		f.Close()
		if err == io.EOF {
			err = nil
		}
		if err == nil && len(names) > 0 {
			err = fmt.Errorf("%s is not empty (restoring a copy needs an empty or new directory)", rel)
		}
	}
	if err != nil {
		root.Close()
		return nil, err
	}
	return root, nil
}

func (s *Store) restore(ctx context.Context, id string, inPlace bool, open func() (*os.Root, error), target string) (RestoreResult, error) {
	if err := s.acquire(ctx); err != nil {
		return RestoreResult{}, err
	}
	defer s.release()
	st := s.repo.storage()
	h, err := s.resolveLocked(st, id)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("restore: %w", err)
	}
	v := newVerifier(st, h)
	info, plan, err := v.run(ctx)
	s.forgetDamagedLocked(err)
	if err != nil {
		var corrupt *CorruptError
		if errors.As(err, &corrupt) {
			return RestoreResult{}, fmt.Errorf("restore: %w; nothing was restored", err)
		}
		return RestoreResult{}, fmt.Errorf("restore: %w", err)
	}
	r := &restorer{s: s, st: st, want: make(map[string]*planEntry, len(plan)), exact: v.modes.exact,
		unlocked: make(map[string]uint32)}
	if inPlace {
		r.dataRel = s.dataRel
	}
	for i := range plan {
		e := &plan[i]
		if r.dataRel != "" && isUnder(e.path, r.dataRel) {
			continue // never write into the data dir
		}
		if r.dataRel != "" && isUnder(r.dataRel, e.path) && e.mode != filemode.Dir {
			return RestoreResult{}, fmt.Errorf("restore: the snapshot has a file at %s, where the data dir is; nothing was restored", e.path)
		}
		r.plan = append(r.plan, e)
		r.want[e.path] = e
	}
	res := RestoreResult{Info: info, Target: target}
	if inPlace {
		before, err := s.snapshotLocked(ctx, "before restoring "+shortID(info.ID))
		if err != nil {
			return RestoreResult{}, fmt.Errorf("restore: %w; nothing was restored", err)
		}
		res.Before = before.ID
		r.idx = s.idx
	}
	root, err := open()
	if err != nil {
		return RestoreResult{}, fmt.Errorf("restore: %w", err)
	}
	defer root.Close()
	r.root = root
	err = r.apply()
	res.Written, res.Unchanged, res.Removed = r.written, r.unchanged, r.removed
	if err != nil {
		if res.Before != "" {
			return res, fmt.Errorf("restore: %w (the workspace is partly restored; snapshot %s holds its state before)", err, shortID(res.Before))
		}
		return res, fmt.Errorf("restore: %w", err)
	}
	s.log.Info("snapshot restored", "id", info.ShortID(), "target", target, "written", res.Written,
		"removed", res.Removed, "unchanged", res.Unchanged, "before", shortID(res.Before))
	return res, nil
}

// restorer applies a verified snapshot to a directory.
type restorer struct {
	s       *Store
	st      storer.EncodedObjectStorer
	root    *os.Root
	plan    []*planEntry // listing order: a directory before its entries
	want    map[string]*planEntry
	dataRel string // the data dir relative to root, or ""
	idx     *index // in place: the index, to leave files that are right
	// exact: the snapshot records directories' modes (format 2 on); a
	// restore of an older one leaves existing directories' modes alone.
	exact bool

	// unlocked holds the modes of the existing directories opened to
	// their owner (mode|0700) for the restore, until they get their own.
	unlocked map[string]uint32
	// dirModes are the directory modes to set once everything is written,
	// in plan order.
	dirModes []dirMode

	written, unchanged, removed int
}

type dirMode struct {
	path string
	perm uint32
}

func (r *restorer) apply() error {
	err := r.applyEntries()
	if derr := r.setDirModes(); err == nil {
		err = derr
	}
	if err != nil {
		return err
	}
	d, err := r.root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	if err := syncFS(d); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

func (r *restorer) applyEntries() error {
	if err := r.prune(""); err != nil {
		return err
	}
	for _, e := range r.plan {
		var err error
		switch e.mode {
		case filemode.Dir:
			err = r.ensureDir(e)
		case filemode.Symlink:
			err = r.writeSymlink(e)
		default:
			err = r.writeFile(e)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// setDirModes gives directories their modes, deepest first: a directory
// must stay searchable until its subdirectories have theirs. Should the
// restore have failed, the directories it opened to their owner and did
// not reach get their own modes back.
func (r *restorer) setDirModes() error {
	var first error
	for i := len(r.dirModes) - 1; i >= 0; i-- {
		d := r.dirModes[i]
		if err := r.root.Chmod(d.path, osMode(d.perm)); err != nil && first == nil {
			first = err
		}
	}
	r.dirModes = nil
	left := sortedKeys(r.unlocked)
	for i := len(left) - 1; i >= 0; i-- {
		r.root.Chmod(left[i], osMode(r.unlocked[left[i]]))
	}
	clear(r.unlocked)
	return first
}

// unlock gives the owner of existing directory p, of stat data st, full
// access to it until it gets its mode, so that the restore can work in it
// without being root.
func (r *restorer) unlock(p string, st fileStat) error {
	perm := st.perm()
	if perm&0o700 == 0o700 {
		return nil
	}
	if err := r.root.Chmod(p, osMode(perm|0o700)); err != nil {
		return err
	}
	if _, ok := r.unlocked[p]; !ok {
		r.unlocked[p] = perm
	}
	return nil
}

// removeAll removes p and everything below it. Should a directory's mode
// prevent that (a restore may well have made one read-only), its owner is
// given full access to everything below p first.
func (r *restorer) removeAll(p string) error {
	err := r.root.RemoveAll(p)
	if errors.Is(err, fs.ErrPermission) {
		r.unlockAll(p)
		err = r.root.RemoveAll(p)
	}
	return err
}

func (r *restorer) unlockAll(p string) {
	info, err := r.root.Lstat(p)
	if err != nil || !info.IsDir() {
		return
	}
	st, _ := statFromInfo(info)
	if perm := st.perm(); perm&0o700 != 0o700 {
		if r.root.Chmod(p, osMode(perm|0o700)) != nil {
			return
		}
	}
	f, err := r.root.Open(p)
	if err != nil {
		return
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	for _, name := range names {
		r.unlockAll(joinPath(p, name))
	}
}

// prune removes what is in directory dir but not in the snapshot, or is
// there of another kind, recursively. It skips the data dir and keeps the
// directories that lead to it.
func (r *restorer) prune(dir string) error {
	f, err := r.root.Open(dirOrDot(dir))
	if err != nil {
		return err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, de := range entries {
		p := joinPath(dir, de.Name())
		info, err := de.Info()
		if err != nil {
			if vanished(err) {
				continue
			}
			return err
		}
		st, _ := statFromInfo(info)
		if st.isDir() && st.dev == r.s.dataDir.dev && st.ino == r.s.dataDir.ino {
			continue
		}
		if r.dataRel != "" && p == r.dataRel {
			continue
		}
		w := r.want[p]
		switch {
		case w != nil && w.mode == filemode.Dir && st.isDir():
			if err = r.unlock(p, st); err == nil {
				err = r.prune(p)
			}
		case w != nil && w.mode == filemode.Symlink && st.isSymlink():
		case w != nil && (w.mode == filemode.Regular || w.mode == filemode.Executable) && st.isRegular():
		case r.dataRel != "" && isUnder(r.dataRel, p) && st.isDir():
			err = r.prune(p)
		default:
			err = r.removeAll(p)
			r.removed++
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ensureDir makes directory e, open to its owner, and notes the mode it is
// to get once everything is written.
func (r *restorer) ensureDir(e *planEntry) error {
	info, err := r.root.Lstat(e.path)
	if err == nil && info.IsDir() {
		st, _ := statFromInfo(info)
		if err := r.unlock(e.path, st); err != nil {
			return err
		}
		was, ok := r.unlocked[e.path]
		if !ok {
			was = st.perm()
		}
		delete(r.unlocked, e.path) // from now on in dirModes
		want := e.perm
		if !r.exact {
			want = was
		}
		if was == want {
			r.unchanged++
		} else {
			r.written++
		}
		if ok || was != want {
			r.dirModes = append(r.dirModes, dirMode{e.path, want})
		}
		return nil
	}
	if err == nil {
		if err := r.removeAll(e.path); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	r.written++
	if !r.exact {
		return r.root.Mkdir(e.path, 0o755)
	}
	if err := r.root.Mkdir(e.path, 0o700); err != nil {
		return err
	}
	r.dirModes = append(r.dirModes, dirMode{e.path, e.perm})
	return nil
}

// upToDate reports whether the workspace file at e.path is known, by the
// index, to hold e's content with e's mode.
func (r *restorer) upToDate(e *planEntry) bool {
	if r.idx == nil {
		return false
	}
	ie, ok := r.idx.files[e.path]
	if !ok || ie.racy || ie.blob != e.blob || ie.mode != e.mode || ie.perm != e.perm {
		return false
	}
	info, err := r.root.Lstat(e.path)
	if err != nil {
		return false
	}
	st, ok := statFromInfo(info)
	return ok && ie.sameStat(st)
}

func tempName(p string) string {
	return joinPath(path.Dir("/" + p)[1:], ".conman-restore-"+randomHex(8))
}

func (r *restorer) writeFile(e *planEntry) error {
	if r.upToDate(e) {
		r.unchanged++
		return nil
	}
	tmp := tempName(e.path)
	f, err := r.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			r.root.Remove(tmp)
		}
	}()
	obj, err := r.st.EncodedObject(plumbing.BlobObject, e.blob)
	if err != nil {
		return fmt.Errorf("%s: %w", e.path, err)
	}
	rd, err := obj.Reader()
	if err != nil {
		return fmt.Errorf("%s: %w", e.path, err)
	}
	gitHash := newBlobHasher(e.size)
	n, err := io.Copy(io.MultiWriter(f, gitHash), rd)
	rd.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", e.path, err)
	}
	var got plumbing.Hash
	copy(got[:], gitHash.Sum(nil))
	if n != e.size || got != e.blob {
		return fmt.Errorf("%s: its blob changed in the store after verification", e.path)
	}
	// The mode is set last: writing would clear setuid and setgid.
	if err := f.Chmod(osMode(e.perm)); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := r.root.Rename(tmp, e.path); err != nil {
		return err
	}
	done = true
	r.written++
	return nil
}

func (r *restorer) writeSymlink(e *planEntry) error {
	if target, err := r.root.Readlink(e.path); err == nil && target == e.target {
		r.unchanged++
		return nil
	}
	tmp := tempName(e.path)
	if err := r.root.Symlink(e.target, tmp); err != nil {
		return err
	}
	if err := r.root.Rename(tmp, e.path); err != nil {
		r.root.Remove(tmp)
		return err
	}
	r.written++
	return nil
}
