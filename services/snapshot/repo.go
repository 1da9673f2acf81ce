package snapshot

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/objfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// repo is the store's bare git repository. Reading goes through go-git's
// filesystem storage; loose objects are written with go-git's objfile
// encoder but placed by the store itself, because go-git's own writer keeps
// an existing file of the same name (which, after a power cut, may be an
// empty one) and cannot batch durability.
//
// Durability is batched: new files are recorded as written, and sync
// fsyncs them (and their directories) all at once, in parallel, so the
// filesystem's journal can commit them together. An fsync of our own
// files costs what we wrote; a syncfs(2) would also wait for everything
// else written to the filesystem (a build in the workspace, say).
type repo struct {
	dir string   // the repository (bare: no work tree)
	id  [16]byte // random id written at creation, tying the index to it

	fanout [256]atomic.Bool // objects/xx directories known to exist; writers run in parallel

	// mu guards the files and directories written since the last sync.
	mu           sync.Mutex
	unsynced     []string
	unsyncedDirs map[string]struct{}
}

const (
	repoDirName = "repo.git"
	storeIDFile = "conman-store-id"
	// branch holds the snapshots, newest first along first parents; HEAD
	// points at it, so `git --git-dir=... log` shows them.
	branch = plumbing.ReferenceName("refs/heads/main")

	// largeObject is the size above which go-git streams an object from
	// disk instead of reading it into memory.
	largeObject = 4 << 20
	// readCache bounds go-git's object cache of one operation.
	readCache = 8 * cache.MiByte
)

// openRepo opens the repository at dir, creating it if need be. Creation
// happens in a temporary directory renamed into place, so a repository
// either exists whole or not at all.
func openRepo(dir string) (*repo, error) {
	r := &repo{dir: dir}
	raw, err := os.ReadFile(filepath.Join(dir, storeIDFile))
	if err == nil {
		if n, err := hex.Decode(r.id[:], bytes.TrimSpace(raw)); err != nil || n != len(r.id) {
			return nil, fmt.Errorf("repository %s: bad %s", dir, storeIDFile)
		}
		return r, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("repository: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err == nil {
		return nil, fmt.Errorf("repository %s exists but has no %s", dir, storeIDFile)
	}
	tmp := dir + ".init-" + randomHex(4)
	defer os.RemoveAll(tmp)
	_, err = git.PlainInitWithOptions(tmp, &git.PlainInitOptions{
		Bare:        true,
		InitOptions: git.InitOptions{DefaultBranch: branch},
	})
	if err != nil {
		return nil, fmt.Errorf("repository: init: %w", err)
	}
	id := randomHex(len(r.id))
	hex.Decode(r.id[:], []byte(id))
	if err := os.WriteFile(filepath.Join(tmp, storeIDFile), []byte(id+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("repository: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("repository: %w", err)
	}
	return r, nil
}

// storage returns a fresh go-git view of the repository. Each operation
// takes its own, so nothing an earlier one cached can hide what is on disk
// now.
func (r *repo) storage() *filesystem.Storage {
	return filesystem.NewStorageWithOptions(osfs.New(r.dir), cache.NewObjectLRU(readCache),
		filesystem.Options{LargeObjectThreshold: largeObject})
}

func (r *repo) objectPath(h plumbing.Hash) string {
	s := h.String()
	return filepath.Join(r.dir, "objects", s[:2], s[2:])
}

// writeObject stores an object of type t whose size bytes come from src and
// returns its hash. The file is complete before it gets its name, and an
// existing file of that name is replaced. It is not synced: see publish.
func (r *repo) writeObject(t plumbing.ObjectType, size int64, src io.Reader) (plumbing.Hash, error) {
	f, err := os.CreateTemp(filepath.Join(r.dir, "objects"), "tmp_obj_")
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("write object: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	buf := bufio.NewWriterSize(f, 64<<10)
	w := objfile.NewWriter(buf)
	if err := w.WriteHeader(t, size); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("write object: %w", err)
	}
	n, err := io.Copy(w, src)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("write object: %w", err)
	}
	if n != size {
		return plumbing.ZeroHash, fmt.Errorf("write object: %w", errChanged)
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("write object: %w", err)
	}
	if err := buf.Flush(); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("write object: %w", err)
	}
	if err := f.Chmod(0o444); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("write object: %w", err)
	}
	if err := f.Close(); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("write object: %w", err)
	}
	h := w.Hash()
	dst := r.objectPath(h)
	if !r.fanout[h[0]].Load() {
		if err := os.Mkdir(filepath.Dir(dst), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return plumbing.ZeroHash, fmt.Errorf("write object: %w", err)
		}
		r.fanout[h[0]].Store(true)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("write object: %w", err)
	}
	ok = true
	r.written(dst)
	return h, nil
}

// written records a new file (and its directory) for the next sync.
func (r *repo) written(path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unsynced = append(r.unsynced, path)
	if r.unsyncedDirs == nil {
		r.unsyncedDirs = make(map[string]struct{})
	}
	r.unsyncedDirs[filepath.Dir(path)] = struct{}{}
}

// syncParallel bounds the fsyncs in flight.
const syncParallel = 16

// sync makes the files written since the last sync durable, and their
// names: first the files, then the directories holding them. Without do it
// only forgets them.
func (r *repo) sync(do bool) error {
	r.mu.Lock()
	files, dirs := r.unsynced, r.unsyncedDirs
	r.unsynced, r.unsyncedDirs = nil, nil
	r.mu.Unlock()
	if !do {
		return nil
	}
	if err := fsyncAll(files); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := fsyncAll(sortedKeys(dirs)); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

func fsyncAll(paths []string) error {
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, syncParallel)
		errMu sync.Mutex
		first error
	)
	for _, path := range paths {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f, err := os.Open(path)
			if err == nil {
				err = f.Sync()
				f.Close()
			}
			if err != nil {
				errMu.Lock()
				if first == nil {
					first = err
				}
				errMu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

func (r *repo) writeBytes(t plumbing.ObjectType, data []byte) (plumbing.Hash, error) {
	return r.writeObject(t, int64(len(data)), bytes.NewReader(data))
}

// head returns the newest snapshot's id, or the zero hash when there is
// none yet.
func (r *repo) head() (plumbing.Hash, error) {
	ref, err := r.storage().Reference(branch)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return plumbing.ZeroHash, nil
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("read %s: %w", branch, err)
	}
	if ref.Type() != plumbing.HashReference {
		return plumbing.ZeroHash, fmt.Errorf("read %s: not a hash reference", branch)
	}
	return ref.Hash(), nil
}

// publish makes every object written so far durable and then points the
// branch at h. The new reference is written to a temporary file, synced,
// and renamed over the old one, so after a crash the branch names either
// the previous snapshot or this one, whole.
func (r *repo) publish(h plumbing.Hash, sync bool) error {
	if err := r.sync(sync); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	path := filepath.Join(r.dir, filepath.FromSlash(string(branch)))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if err := writeFileAtomic(path, []byte(h.String()+"\n"), 0o644, sync); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

// Commit messages carry the snapshot's summary as git trailers:
//
//	snapshot
//
//	Conman-Snapshot: 2
//	Conman-Files: 10000
//	Conman-Bytes: 52428800
//	Conman-Checksum: sha256:…
//	Conman-Usual-Modes: 0644 0755 0755
//	Conman-Mode: 0600 "etc/secret.key"
//
// The subject is "snapshot" or, for one taken for a reason, the note. The
// modes are described in modes.go; format 1 had none of them.
const (
	defaultSubject    = "snapshot"
	trailerFormat     = "Conman-Snapshot"
	trailerFiles      = "Conman-Files"
	trailerBytes      = "Conman-Bytes"
	trailerChecksum   = "Conman-Checksum"
	trailerUsualModes = "Conman-Usual-Modes"
	trailerMode       = "Conman-Mode"
	formatVersion     = "2"
	formatNoModes     = "1" // still read
	checksumPrefix    = "sha256:"
)

var signature = object.Signature{Name: "conman", Email: "conman@localhost"}

func commitMessage(note string, files, size int64, checksum string, modes *snapshotModes) string {
	subject := defaultSubject
	if note != "" {
		subject = note
	}
	b := fmt.Appendf(nil, "%s\n\n%s: %s\n%s: %d\n%s: %d\n%s: %s\n%s: %s\n",
		subject, trailerFormat, formatVersion, trailerFiles, files, trailerBytes, size, trailerChecksum, checksum,
		trailerUsualModes, modes.usual)
	for _, rec := range modes.records {
		b = appendModeRecord(b, rec)
	}
	return string(b)
}

// writeCommit stores the commit of a snapshot.
func (r *repo) writeCommit(tree, parent plumbing.Hash, when time.Time, message string) (plumbing.Hash, error) {
	sig := signature
	sig.When = when
	c := &object.Commit{Author: sig, Committer: sig, Message: message, TreeHash: tree}
	if !parent.IsZero() {
		c.ParentHashes = []plumbing.Hash{parent}
	}
	obj := &plumbing.MemoryObject{}
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("encode commit: %w", err)
	}
	rd, err := obj.Reader()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("encode commit: %w", err)
	}
	return r.writeObject(plumbing.CommitObject, obj.Size(), rd)
}

// infoFromCommit reads a snapshot's summary from its commit.
func infoFromCommit(c *object.Commit) (Info, error) {
	info, _, err := parseCommit(c, false)
	return info, err
}

// parseCommit reads a snapshot's summary from its commit and, with
// withModes, the permission bits it records.
func parseCommit(c *object.Commit, withModes bool) (Info, *snapshotModes, error) {
	info := Info{ID: c.Hash.String(), Time: c.Author.When}
	modes := &snapshotModes{usual: gitUsual}
	subject, rest, _ := strings.Cut(c.Message, "\n")
	if subject != defaultSubject {
		info.Note = subject
	}
	var format string
	usualSeen := false
	for line := range strings.Lines(rest) {
		key, value, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok {
			continue
		}
		var err error
		switch key {
		case trailerFormat:
			format = value
		case trailerFiles:
			info.Files, err = strconv.ParseInt(value, 10, 64)
		case trailerBytes:
			info.Bytes, err = strconv.ParseInt(value, 10, 64)
		case trailerChecksum:
			info.Checksum = value
		case trailerUsualModes:
			if withModes {
				modes.usual, err = parseUsualModes(value)
				usualSeen = true
			}
		case trailerMode:
			if withModes {
				var rec modeRecord
				rec, err = parseModeRecord(value)
				modes.records = append(modes.records, rec)
			}
		}
		if err != nil {
			return info, nil, fmt.Errorf("commit %s: bad %s trailer: %v", c.Hash, key, err)
		}
	}
	switch format {
	case formatVersion:
		modes.exact = true
		if withModes && !usualSeen {
			return info, nil, fmt.Errorf("commit %s: no %s trailer", c.Hash, trailerUsualModes)
		}
	case formatNoModes:
		if len(modes.records) > 0 || usualSeen {
			return info, nil, fmt.Errorf("commit %s: a snapshot of format %s with modes", c.Hash, formatNoModes)
		}
	default:
		return info, nil, fmt.Errorf("commit %s: not a snapshot of format %s or %s", c.Hash, formatNoModes, formatVersion)
	}
	if !strings.HasPrefix(info.Checksum, checksumPrefix) {
		return info, nil, fmt.Errorf("commit %s: no %s trailer", c.Hash, trailerChecksum)
	}
	return info, modes, nil
}
