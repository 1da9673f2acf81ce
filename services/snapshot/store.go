package snapshot

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// DirName is the store's directory inside the daemon's data dir.
const DirName = "snapshots"

// Options configures a [Store].
type Options struct {
	// Workspace is the directory snapshotted and restored (required).
	Workspace string
	// DataDir is the daemon's data directory (required). The store lives
	// in DataDir/snapshots; the data dir is never part of a snapshot and
	// never touched by a restore, wherever it is.
	DataDir string
	// Logger receives the store's log (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now). It stamps snapshots and decides
	// which files were modified too recently for their stat data to be
	// trusted.
	Now func() time.Time
	// NoSync skips making each snapshot durable before publishing it. Only
	// for tests and benchmarks: after a power cut such a store may name
	// objects it does not hold.
	NoSync bool
}

// Store is the snapshot store of one workspace: a bare git repository
// with one commit per snapshot, an index of the workspace's stat data, and
// a lock file. Its methods are safe for concurrent use, and several
// processes may open the same store: every operation holds the lock.
//
// Durability: objects are written under their final names only when
// complete, a snapshot's new files are fsynced (together) before the
// branch moves to it, and the index is written after that. So every object the
// index names is durable, and the store trusts such objects to exist
// without looking; an object it does not know of is written again (the
// rewrite replaces any damaged file of the same name).
type Store struct {
	opts Options
	dir  string // DataDir/snapshots
	log  *slog.Logger
	lock storeLock

	// The lock guards the following.
	repo    *repo
	idx     *index
	idxStat fileStat                   // the index file as last read or written
	known   map[plumbing.Hash]struct{} // objects known to be durable in repo
	last    lastCommit                 // the newest snapshot, as last seen
	dataDir fileStat                   // the data dir's identity
	dataRel string                     // the data dir relative to the workspace, or "" when outside

	// hashHook, set by tests before use, is called between reading a file
	// and checking that it did not change meanwhile.
	hashHook func(path string)
}

// lastCommit caches the newest snapshot's commit.
type lastCommit struct {
	id   plumbing.Hash
	tree plumbing.Hash
	info Info
}

// Info describes a stored snapshot.
type Info struct {
	// ID is the snapshot's commit hash, 40 hex digits.
	ID string
	// Time is when the snapshot was taken.
	Time time.Time
	// Files counts regular files and symlinks; Bytes sums the sizes of the
	// regular files.
	Files int64
	Bytes int64
	// Checksum is "sha256:<hex>" over the snapshot's canonical listing.
	Checksum string
	// Note says why the snapshot was taken, when it was not on request
	// ("before restoring …").
	Note string
}

// ShortID is the abbreviated id shown to people.
func (i Info) ShortID() string { return shortID(i.ID) }

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Errors.
var (
	// ErrNotFound reports an id that names no snapshot.
	ErrNotFound = errors.New("no such snapshot")
	// ErrCorrupt is wrapped by every [CorruptError].
	ErrCorrupt = errors.New("snapshot is corrupt")
	// errChanged reports a file that changed while it was read.
	errChanged = errors.New("changed while being read")
)

// CorruptError reports a snapshot that failed verification.
type CorruptError struct {
	ID     string // the snapshot's id
	Reason string
	object plumbing.Hash // the damaged object, when one is to blame
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("snapshot %s is corrupt: %s", shortID(e.ID), e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) hold.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Open returns the store of opts.Workspace kept in opts.DataDir. It does not
// touch the disk until the first operation.
func Open(opts Options) (*Store, error) {
	if opts.Workspace == "" || opts.DataDir == "" {
		return nil, errors.New("snapshot: workspace and data dir are required")
	}
	ws, err := filepath.Abs(opts.Workspace)
	if err != nil {
		return nil, fmt.Errorf("snapshot: workspace: %w", err)
	}
	if ws, err = filepath.EvalSymlinks(ws); err != nil {
		return nil, fmt.Errorf("snapshot: workspace: %w", err)
	}
	opts.Workspace = ws
	if opts.DataDir, err = filepath.Abs(opts.DataDir); err != nil {
		return nil, fmt.Errorf("snapshot: data dir: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	dir := filepath.Join(opts.DataDir, DirName)
	return &Store{
		opts: opts,
		dir:  dir,
		log:  opts.Logger,
		lock: storeLock{path: filepath.Join(dir, "lock")},
	}, nil
}

// Dir is the store's directory; its repository is Dir()/repo.git.
func (s *Store) Dir() string { return s.dir }

// Workspace is the workspace the store snapshots.
func (s *Store) Workspace() string { return s.opts.Workspace }

// Close releases the store's lock file.
func (s *Store) Close() error { return s.lock.close() }

// acquire creates the store's directory if need be and locks the store.
func (s *Store) acquire(ctx context.Context) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := s.lock.lock(ctx); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := s.refreshLocked(); err != nil {
		s.lock.unlock()
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

func (s *Store) release() { s.lock.unlock() }

// refreshLocked (re)opens the repository and the index. Another process
// may have replaced the repository since the last operation; the store id
// tells, and then everything remembered of the old one is dropped.
func (s *Store) refreshLocked() error {
	info, err := os.Stat(s.opts.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	var ok bool
	if s.dataDir, ok = statFromInfo(info); !ok {
		return errors.New("data dir: no stat data")
	}
	if dd, err := filepath.EvalSymlinks(s.opts.DataDir); err == nil {
		if rel, err := filepath.Rel(s.opts.Workspace, dd); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			s.dataRel = filepath.ToSlash(rel)
			if rel == "." {
				s.dataRel = ""
				return errors.New("the data dir is the workspace itself")
			}
		}
	}
	r, err := openRepo(filepath.Join(s.dir, repoDirName))
	if err != nil {
		return err
	}
	if s.repo == nil || s.repo.id != r.id {
		s.repo, s.idx, s.idxStat, s.known, s.last = r, nil, fileStat{}, make(map[plumbing.Hash]struct{}), lastCommit{}
	}
	// Another process (the CLI, the daemon) may have snapshotted since;
	// its index is at least as good as ours.
	var st fileStat
	if info, err := os.Stat(s.indexPath()); err == nil {
		st, _ = statFromInfo(info)
	}
	if s.idx != nil && st == s.idxStat {
		return nil
	}
	idx, err := loadIndex(s.indexPath())
	if err != nil {
		s.log.Warn("snapshot index unusable; the next snapshot reads every file", "err", err)
	}
	if idx != nil && idx.storeID != r.id {
		idx = nil
	}
	s.idxStat = st
	if idx == nil {
		if s.idx != nil {
			return nil
		}
		idx = newIndex(r.id, 0)
	}
	s.idx = idx
	for _, e := range idx.files {
		s.known[e.blob] = struct{}{}
	}
	for _, d := range idx.dirs {
		s.known[d.tree] = struct{}{}
	}
	return nil
}

// noteIndexSaved records the index file just written, so the next
// operation does not mistake it for another process's.
func (s *Store) noteIndexSaved() {
	if info, err := os.Stat(s.indexPath()); err == nil {
		s.idxStat, _ = statFromInfo(info)
	}
}

func (s *Store) indexPath() string { return filepath.Join(s.dir, "index") }

// List returns the stored snapshots, newest first.
func (s *Store) List(ctx context.Context) ([]Info, error) {
	if _, err := os.Stat(filepath.Join(s.dir, repoDirName)); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	head, err := s.repo.head()
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	st := s.repo.storage()
	var out []Info
	for id := head; !id.IsZero(); {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := object.GetCommit(st, id)
		if err != nil {
			return out, fmt.Errorf("snapshot: history damaged at %s: %w", shortID(id.String()), err)
		}
		info, err := infoFromCommit(c)
		if err != nil {
			return out, fmt.Errorf("snapshot: %w", err)
		}
		out = append(out, info)
		id = plumbing.ZeroHash
		if len(c.ParentHashes) > 0 {
			id = c.ParentHashes[0]
		}
	}
	return out, nil
}

// resolveLocked finds the snapshot id names: "latest" (or empty) for the
// newest, else a full id or a unique prefix of at least 4 hex digits of one
// on the branch.
func (s *Store) resolveLocked(st storer.EncodedObjectStorer, id string) (plumbing.Hash, error) {
	head, err := s.repo.head()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	id = strings.ToLower(strings.TrimSpace(id))
	if id == "" || id == "latest" {
		if head.IsZero() {
			return plumbing.ZeroHash, fmt.Errorf("%w: the store is empty", ErrNotFound)
		}
		return head, nil
	}
	if len(id) < 4 || len(id) > 40 {
		return plumbing.ZeroHash, fmt.Errorf("%w %q: an id has 4 to 40 hex digits", ErrNotFound, id)
	}
	if _, err := hex.DecodeString(id + strings.Repeat("0", len(id)%2)); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w %q: not hex", ErrNotFound, id)
	}
	var found plumbing.Hash
	for c := head; !c.IsZero(); {
		if strings.HasPrefix(c.String(), id) {
			if !found.IsZero() {
				return plumbing.ZeroHash, fmt.Errorf("snapshot id %q is ambiguous", id)
			}
			found = c
		}
		commit, err := object.GetCommit(st, c)
		if err != nil {
			if !found.IsZero() {
				// The match is found; a damaged ancestor is for
				// verification to report if it matters.
				break
			}
			return plumbing.ZeroHash, fmt.Errorf("history damaged at %s: %w", shortID(c.String()), err)
		}
		c = plumbing.ZeroHash
		if len(commit.ParentHashes) > 0 {
			c = commit.ParentHashes[0]
		}
	}
	if found.IsZero() {
		return plumbing.ZeroHash, fmt.Errorf("%w %q", ErrNotFound, id)
	}
	return found, nil
}

// Verify checks every object and the checksum of the snapshot id names
// ("latest" for the newest) and returns its summary.
func (s *Store) Verify(ctx context.Context, id string) (Info, error) {
	if err := s.acquire(ctx); err != nil {
		return Info{}, err
	}
	defer s.release()
	st := s.repo.storage()
	h, err := s.resolveLocked(st, id)
	if err != nil {
		return Info{}, fmt.Errorf("snapshot: %w", err)
	}
	v := newVerifier(st, h)
	info, _, err := v.run(ctx)
	s.forgetDamagedLocked(err)
	return info, err
}

// forgetDamagedLocked makes the store stop trusting an object that err
// reports damaged: the next snapshot reads the files that had it again and
// writes it anew, which repairs a loose object whose content is still in
// the workspace.
func (s *Store) forgetDamagedLocked(err error) {
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.object.IsZero() {
		return
	}
	h := ce.object
	delete(s.known, h)
	for path, e := range s.idx.files {
		if e.blob == h {
			delete(s.idx.files, path)
		}
	}
	for path, d := range s.idx.dirs {
		if d.tree == h {
			delete(s.idx.dirs, path)
		}
	}
	s.log.Warn("snapshot store damaged", "err", err)
}
