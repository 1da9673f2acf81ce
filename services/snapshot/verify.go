package snapshot

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// planEntry is one directory, file or symlink of a verified snapshot.
type planEntry struct {
	path   string
	mode   filemode.FileMode
	perm   uint32        // files and directories: permission bits
	blob   plumbing.Hash // files and symlinks
	size   int64         // files
	target string        // symlinks
}

// verifier checks a snapshot end to end before anything relies on it:
// every object it reaches is read back and re-hashed (so a flipped bit is
// caught whether or not decompression notices), tree entries must be sane
// and in order, the permission bits recorded in the commit must fit the
// entries they are for, and the SHA-256 of the canonical listing,
// recomputed from the content itself and those bits, must equal the one
// recorded in the commit. That last check does not depend on git's SHA-1
// at all.
type verifier struct {
	st    storer.EncodedObjectStorer
	id    plumbing.Hash
	blobs map[plumbing.Hash]verifiedBlob
	plan  []planEntry
	l     *listing
	modes *snapshotModes
	next  int // the first of modes.records not yet applied
}

type verifiedBlob struct {
	size int64
	sum  [32]byte
}

// maxDepth bounds directory nesting in a snapshot.
const maxDepth = 1024

func newVerifier(st storer.EncodedObjectStorer, id plumbing.Hash) *verifier {
	return &verifier{st: st, id: id, blobs: make(map[plumbing.Hash]verifiedBlob), l: newListing()}
}

func (v *verifier) corrupt(format string, args ...any) error {
	return &CorruptError{ID: v.id.String(), Reason: fmt.Sprintf(format, args...)}
}

// corruptObject reports damage to object h in particular.
func (v *verifier) corruptObject(h plumbing.Hash, format string, args ...any) error {
	return &CorruptError{ID: v.id.String(), Reason: fmt.Sprintf(format, args...), object: h}
}

// run verifies the snapshot and returns its summary and its entries in
// listing order.
func (v *verifier) run(ctx context.Context) (info Info, plan []planEntry, err error) {
	defer func() {
		// Damaged data must never take the process down; should a decoder
		// panic on it, that is one more way of being corrupt.
		if r := recover(); r != nil {
			info, plan, err = Info{}, nil, v.corrupt("unreadable: %v", r)
		}
	}()
	return v.verify(ctx)
}

func (v *verifier) verify(ctx context.Context) (Info, []planEntry, error) {
	content, err := v.readObject(v.id, plumbing.CommitObject, "the commit")
	if err != nil {
		return Info{}, nil, err
	}
	obj := &plumbing.MemoryObject{}
	obj.SetType(plumbing.CommitObject)
	obj.Write(content)
	var c object.Commit
	if err := c.Decode(obj); err != nil {
		return Info{}, nil, v.corrupt("commit: %v", err)
	}
	info, modes, err := parseCommit(&c, true)
	if err != nil {
		return Info{}, nil, v.corrupt("%v", err)
	}
	v.modes = modes
	if err := v.walkTree(ctx, c.TreeHash, "", 0); err != nil {
		return info, nil, err
	}
	if v.next < len(modes.records) {
		return info, nil, v.corrupt("a mode is recorded for %q, which the snapshot lacks (or not in listing order)", modes.records[v.next].path)
	}
	if v.l.files != info.Files || v.l.bytes != info.Bytes {
		return info, nil, v.corrupt("it holds %d files of %d bytes, its commit records %d of %d",
			v.l.files, v.l.bytes, info.Files, info.Bytes)
	}
	if sum := v.l.checksum(); sum != info.Checksum {
		return info, nil, v.corrupt("checksum mismatch: recorded %s, content gives %s", info.Checksum, sum)
	}
	return info, v.plan, nil
}

// readObject reads object h, which must be of type t, and checks its hash.
func (v *verifier) readObject(h plumbing.Hash, t plumbing.ObjectType, what string) ([]byte, error) {
	obj, err := v.st.EncodedObject(plumbing.AnyObject, h)
	if err != nil {
		return nil, v.corruptObject(h, "%s (%s): %v", what, h, err)
	}
	if obj.Type() != t {
		return nil, v.corruptObject(h, "%s (%s) is a %s, not a %s", what, h, obj.Type(), t)
	}
	r, err := obj.Reader()
	if err != nil {
		return nil, v.corruptObject(h, "%s (%s): %v", what, h, err)
	}
	content, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, v.corruptObject(h, "%s (%s): %v", what, h, err)
	}
	if int64(len(content)) != obj.Size() || hashObject(t, content) != h {
		return nil, v.corruptObject(h, "%s (%s): content does not match its hash", what, h)
	}
	return content, nil
}

// verifyBlob reads blob h once per verification, checking its hash, and
// returns its size and SHA-256; with keep it also returns the content.
func (v *verifier) verifyBlob(h plumbing.Hash, path string, keep bool) (verifiedBlob, []byte, error) {
	if b, ok := v.blobs[h]; ok && !keep {
		return b, nil, nil
	}
	what := "blob of " + path
	if keep {
		content, err := v.readObject(h, plumbing.BlobObject, what)
		if err != nil {
			return verifiedBlob{}, nil, err
		}
		b := verifiedBlob{size: int64(len(content)), sum: sha256.Sum256(content)}
		v.blobs[h] = b
		return b, content, nil
	}
	obj, err := v.st.EncodedObject(plumbing.AnyObject, h)
	if err != nil {
		return verifiedBlob{}, nil, v.corruptObject(h, "%s (%s): %v", what, h, err)
	}
	if obj.Type() != plumbing.BlobObject {
		return verifiedBlob{}, nil, v.corruptObject(h, "%s (%s) is a %s, not a blob", what, h, obj.Type())
	}
	r, err := obj.Reader()
	if err != nil {
		return verifiedBlob{}, nil, v.corruptObject(h, "%s (%s): %v", what, h, err)
	}
	gitHash, sum := newBlobHasher(obj.Size()), sha256.New()
	n, err := io.Copy(io.MultiWriter(gitHash, sum), r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return verifiedBlob{}, nil, v.corruptObject(h, "%s (%s): %v", what, h, err)
	}
	var got plumbing.Hash
	copy(got[:], gitHash.Sum(nil))
	if n != obj.Size() || got != h {
		return verifiedBlob{}, nil, v.corruptObject(h, "%s (%s): content does not match its hash", what, h)
	}
	b := verifiedBlob{size: n}
	copy(b.sum[:], sum.Sum(nil))
	v.blobs[h] = b
	return b, nil, nil
}

// walkTree verifies tree h at dir and everything below it, depth first,
// adding each entry to the plan and the listing.
func (v *verifier) walkTree(ctx context.Context, h plumbing.Hash, dir string, depth int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if depth > maxDepth {
		return v.corrupt("directories nested deeper than %d at %s", maxDepth, dir)
	}
	what := "tree of " + dirOrDot(dir)
	content, err := v.readObject(h, plumbing.TreeObject, what)
	if err != nil {
		return err
	}
	obj := &plumbing.MemoryObject{}
	obj.SetType(plumbing.TreeObject)
	obj.Write(content)
	var tree object.Tree
	if err := tree.Decode(obj); err != nil {
		return v.corruptObject(h, "%s (%s): %v", what, h, err)
	}
	var prev *object.TreeEntry
	for i := range tree.Entries {
		e := &tree.Entries[i]
		if !validName(e.Name) {
			return v.corrupt("%s holds an invalid name %q", what, e.Name)
		}
		if prev != nil && gitNameCompare(prev.Name, prev.Mode == filemode.Dir, e.Name, e.Mode == filemode.Dir) >= 0 {
			return v.corrupt("%s: entries out of order at %q", what, e.Name)
		}
		prev = e
		path := joinPath(dir, e.Name)
		switch e.Mode {
		case filemode.Dir:
			perm, mode, err := v.permOf(path, kindDir)
			if err != nil {
				return err
			}
			v.plan = append(v.plan, planEntry{path: path, mode: filemode.Dir, perm: perm})
			v.l.add(mode, 0, &emptySum, path)
			if err := v.walkTree(ctx, e.Hash, path, depth+1); err != nil {
				return err
			}
		case filemode.Regular, filemode.Executable:
			perm, mode, err := v.permOf(path, kindOf(e.Mode))
			if err != nil {
				return err
			}
			b, _, err := v.verifyBlob(e.Hash, path, false)
			if err != nil {
				return err
			}
			v.plan = append(v.plan, planEntry{path: path, mode: e.Mode, perm: perm, blob: e.Hash, size: b.size})
			v.l.add(mode, b.size, &b.sum, path)
		case filemode.Symlink:
			if v.recorded(path) {
				return v.corrupt("a mode is recorded for symlink %s", path)
			}
			b, target, err := v.verifyBlob(e.Hash, path, true)
			if err != nil {
				return err
			}
			if len(target) == 0 || strings.IndexByte(string(target), 0) >= 0 {
				return v.corrupt("symlink %s has an invalid target", path)
			}
			v.plan = append(v.plan, planEntry{path: path, mode: filemode.Symlink, blob: e.Hash, size: b.size, target: string(target)})
			v.l.add(uint32(filemode.Symlink), b.size, &b.sum, path)
		default:
			return v.corrupt("%s has unexpected mode %o", path, uint32(e.Mode))
		}
	}
	return nil
}

// recorded reports whether the next mode record is path's.
func (v *verifier) recorded(path string) bool {
	return v.next < len(v.modes.records) && v.modes.records[v.next].path == path
}

// permOf returns the permission bits of the entry at path, of kind k, and
// the mode the listing has for it.
func (v *verifier) permOf(path string, k int) (perm, mode uint32, err error) {
	perm = v.modes.usual[k]
	if v.recorded(path) {
		perm = v.modes.records[v.next].perm
		v.next++
	}
	if !fitsKind(k, perm) {
		return 0, 0, v.corrupt("mode %04o recorded for %s does not match git's mode of it", perm, path)
	}
	if !v.modes.exact {
		return perm, uint32(gitModeOfKind[k]), nil // format 1 listed git's modes
	}
	return perm, unixMode(k, perm), nil
}

// validName reports whether name can be a directory entry.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}
