package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services"
)

var testLogger = conmantest.TestLogger

// base is the workspace most tests start from.
var base = map[string]string{
	"README.md":               "# project\n",
	"bin/run*":                "#!/bin/sh\necho run\n",
	"src/main.go":             "package main\n\nfunc main() {}\n",
	"src/util/strings.go":     "package util\n",
	"src/util/dup.txt":        "same bytes",
	"docs/dup.txt":            "same bytes",
	"binary.dat":              "\x00\x01\x02\xff\xfe\x00 nul bytes",
	"empty.txt":               "",
	"link@":                   "src/main.go",
	"dangling@":               "nowhere/at/all",
	"abs@":                    "/etc/hostname",
	"empty-dir/":              "",
	"a-b/x":                   "sorts before a/ in git order",
	"a/x":                     "x",
	"a.txt":                   "a dot",
	"with space/and\nnewline": "odd names",
}

func TestRestoreInPlace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(t *testing.T, ws string)
	}{
		{"nothing", func(*testing.T, string) {}},
		{"change a file", func(t *testing.T, ws string) {
			build(t, ws, map[string]string{"src/main.go": "package main // edited\n"})
		}},
		{"change a file keeping its size", func(t *testing.T, ws string) {
			build(t, ws, map[string]string{"README.md": "# PROJECT\n"})
		}},
		{"add files", func(t *testing.T, ws string) {
			build(t, ws, map[string]string{"new.txt": "new", "src/new/deep/file.go": "package deep\n"})
		}},
		{"delete files", func(t *testing.T, ws string) {
			for _, p := range []string{"README.md", "src/util/strings.go", "link"} {
				if err := os.Remove(filepath.Join(ws, p)); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"chmod +x", func(t *testing.T, ws string) {
			if err := os.Chmod(filepath.Join(ws, "src/main.go"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"chmod -x", func(t *testing.T, ws string) {
			if err := os.Chmod(filepath.Join(ws, "bin/run"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"retarget a symlink", func(t *testing.T, ws string) {
			build(t, ws, map[string]string{"link@": "README.md"})
		}},
		{"symlink becomes a file", func(t *testing.T, ws string) {
			os.Remove(filepath.Join(ws, "link"))
			build(t, ws, map[string]string{"link": "now a file"})
		}},
		{"file becomes a symlink", func(t *testing.T, ws string) {
			os.Remove(filepath.Join(ws, "README.md"))
			build(t, ws, map[string]string{"README.md@": "/etc/passwd"})
		}},
		{"file becomes a directory", func(t *testing.T, ws string) {
			os.Remove(filepath.Join(ws, "a.txt"))
			build(t, ws, map[string]string{"a.txt/inner": "inner"})
		}},
		{"directory becomes a file", func(t *testing.T, ws string) {
			os.RemoveAll(filepath.Join(ws, "src"))
			build(t, ws, map[string]string{"src": "a file now"})
		}},
		{"directory becomes a symlink out of the workspace", func(t *testing.T, ws string) {
			outside := t.TempDir()
			build(t, outside, map[string]string{"main.go": "not the workspace's", "sentinel": "must survive"})
			t.Cleanup(func() {
				if got, err := os.ReadFile(filepath.Join(outside, "sentinel")); err != nil || string(got) != "must survive" {
					t.Errorf("restore reached outside the workspace: sentinel %q, %v", got, err)
				}
				if got, _ := os.ReadFile(filepath.Join(outside, "main.go")); string(got) != "not the workspace's" {
					t.Errorf("restore wrote outside the workspace: main.go = %q", got)
				}
			})
			os.RemoveAll(filepath.Join(ws, "src"))
			build(t, ws, map[string]string{"src@": outside})
		}},
		{"empty directory removed and another added", func(t *testing.T, ws string) {
			os.Remove(filepath.Join(ws, "empty-dir"))
			build(t, ws, map[string]string{"other-empty/": ""})
		}},
		{"file made read-only", func(t *testing.T, ws string) {
			build(t, ws, map[string]string{"docs/dup.txt": "changed"})
			if err := os.Chmod(filepath.Join(ws, "docs/dup.txt"), 0o444); err != nil {
				t.Fatal(err)
			}
		}},
		{"everything deleted", func(t *testing.T, ws string) {
			entries, _ := os.ReadDir(ws)
			for _, e := range entries {
				if e.Name() != ".conman" {
					os.RemoveAll(filepath.Join(ws, e.Name()))
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, false)
			build(t, e.ws, base)
			build(t, e.data, map[string]string{"keep/me": "the data dir's own"})
			dataBefore := capture(t, e.data, "")
			want := capture(t, e.ws, ".conman")
			snap := e.snapshot(t)

			tt.modify(t, e.ws)
			modified := capture(t, e.ws, ".conman")
			res, err := e.store.Restore(testContext(t), snap.ID[:8], "")
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			if d := diffTrees(want, capture(t, e.ws, ".conman")); d != "" {
				t.Errorf("workspace after restore differs from the snapshot:\n%s", d)
			}
			// The data dir is never snapshotted nor touched, except for
			// the store's own directory.
			dataAfter := capture(t, e.data, "")
			for k, v := range dataBefore {
				if dataAfter[k] != v {
					t.Errorf("data dir entry %s changed: %q → %q", k, v, dataAfter[k])
				}
			}
			if res.ID != snap.ID || res.Before == "" {
				t.Errorf("restore result = %+v, want id %s and a before snapshot", res, snap.ID)
			}
			if tt.name == "nothing" && (res.Written != 0 || res.Removed != 0 || res.Before != snap.ID) {
				t.Errorf("restoring an unmodified workspace wrote %d, removed %d, before=%s; want nothing done", res.Written, res.Removed, res.Before)
			}
			// The snapshot taken before the restore undoes it.
			if _, err := e.store.Restore(testContext(t), res.Before, ""); err != nil {
				t.Fatalf("undo: %v", err)
			}
			if d := diffTrees(gitModes(modified), capture(t, e.ws, ".conman")); d != "" {
				t.Errorf("workspace after undoing the restore differs:\n%s", d)
			}
		})
	}
}

func TestRestoreCopy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	build(t, e.ws, base)
	want := capture(t, e.ws, ".conman")
	snap := e.snapshot(t)
	build(t, e.ws, map[string]string{"README.md": "changed after the snapshot"})
	current := capture(t, e.ws, ".conman")

	t.Run("new directory", func(t *testing.T) {
		to := filepath.Join(t.TempDir(), "new", "copy")
		res, err := e.store.Restore(testContext(t), snap.ID, to)
		if err != nil {
			t.Fatal(err)
		}
		if res.Before != "" || res.Removed != 0 {
			t.Errorf("a copy took a before snapshot or removed things: %+v", res)
		}
		if d := diffTrees(want, capture(t, to, "")); d != "" {
			t.Errorf("copy differs from the snapshot:\n%s", d)
		}
	})
	t.Run("empty directory", func(t *testing.T) {
		to := t.TempDir()
		if _, err := e.store.Restore(testContext(t), "latest", to); err != nil {
			t.Fatal(err)
		}
		if d := diffTrees(want, capture(t, to, "")); d != "" {
			t.Errorf("copy differs from the snapshot:\n%s", d)
		}
	})
	refused := []struct{ name, to, errText string }{
		{"non-empty directory", e.ws + "/src", "not empty"},
		{"inside the data dir", e.data + "/restored", "inside the data dir"},
		{"the data dir", e.data, "inside the data dir"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.store.Restore(testContext(t), snap.ID, tt.to)
			if err == nil || !strings.Contains(err.Error(), tt.errText) {
				t.Fatalf("restore --to %s: err = %v, want %q", tt.to, err, tt.errText)
			}
			if _, err := os.Stat(filepath.Join(e.data, "restored")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused restore created its target")
			}
		})
	}
	if d := diffTrees(current, capture(t, e.ws, ".conman")); d != "" {
		t.Errorf("copies changed the workspace:\n%s", d)
	}
	t.Run("the workspace by another name", func(t *testing.T) {
		alias := filepath.Join(t.TempDir(), "alias")
		if err := os.Symlink(e.ws, alias); err != nil {
			t.Fatal(err)
		}
		res, err := e.store.Restore(testContext(t), snap.ID, alias)
		if err != nil {
			t.Fatal(err)
		}
		if res.Before == "" {
			t.Errorf("restoring into the workspace took no before snapshot")
		}
		if d := diffTrees(want, capture(t, e.ws, ".conman")); d != "" {
			t.Errorf("workspace differs from the snapshot:\n%s", d)
		}
	})
}

func TestRestoreWithin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	build(t, e.ws, base)
	want := capture(t, e.ws, ".conman")
	snap := e.snapshot(t)
	build(t, e.ws, map[string]string{"outside-link@": t.TempDir(), "full/file": "x"})

	tests := []struct {
		name, rel, dir, errText string
	}{
		{"new directory", "/restored/here", "restored/here", ""},
		{"dot-dots stay inside", "../../escaped", "escaped", ""},
		{"through a symlink", "outside-link/x", "", "not a directory"},
		{"into the data dir", ".conman/x", "", "data dir"},
		{"not empty", "full", "", "not empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := e.store.RestoreWithin(testContext(t), snap.ID, tt.rel)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err = %v, want %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Before != "" {
				t.Errorf("a copy took a before snapshot")
			}
			if d := diffTrees(want, capture(t, filepath.Join(e.ws, tt.dir), "")); d != "" {
				t.Errorf("copy differs from the snapshot:\n%s", d)
			}
		})
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	ctx := testContext(t)
	if infos, err := e.store.List(ctx); err != nil || len(infos) != 0 {
		t.Fatalf("List of a new store = %v, %v; want nothing", infos, err)
	}
	if _, err := os.Stat(e.store.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("listing created the store")
	}
	build(t, e.ws, map[string]string{"a": "12345", "b@": "a"})
	first := e.snapshot(t)
	build(t, e.ws, map[string]string{"c*": "1234567890"})
	second := e.snapshot(t)
	again := e.snapshot(t)
	if !again.Unchanged || again.ID != second.ID || again.Written != 0 {
		t.Errorf("snapshot of an unchanged workspace = %+v, want unchanged %s", again, second.ShortID())
	}
	infos, err := e.store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id           string
		files, bytes int64
	}{{second.ID, 3, 15}, {first.ID, 2, 5}}
	if len(infos) != len(want) {
		t.Fatalf("List = %d snapshots, want %d", len(infos), len(want))
	}
	for i, w := range want {
		in := infos[i]
		if in.ID != w.id || in.Files != w.files || in.Bytes != w.bytes || !strings.HasPrefix(in.Checksum, "sha256:") || in.Note != "" {
			t.Errorf("List[%d] = %+v, want id %s, %d files, %d bytes", i, in, w.id, w.files, w.bytes)
		}
	}
	if !infos[0].Time.Equal(second.Time) {
		t.Errorf("List[0].Time = %v, want %v", infos[0].Time, second.Time)
	}
}

// TestCorruption damages the store in various ways: each must be caught
// before anything in the workspace is overwritten.
func TestCorruption(t *testing.T) {
	t.Parallel()
	many := map[string]string{}
	for i := range packThreshold * 2 {
		many[fmt.Sprintf("gen/file%03d", i)] = strings.Repeat("generated content\n", i+1)
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, e *testEnv, snap Result)
		reason string // "" for any
		extra  map[string]string
	}{
		{"flipped byte in a pack", func(t *testing.T, e *testEnv, _ Result) {
			packs, _ := filepath.Glob(filepath.Join(e.data, DirName, repoDirName, "objects/pack/*.pack"))
			if len(packs) != 1 {
				t.Fatalf("packs: %v", packs)
			}
			flipByte(t, packs[0])
		}, "", many},
		{"flipped byte in a blob", func(t *testing.T, e *testEnv, _ Result) {
			flipByte(t, objectFile(e.data, "blob", []byte(base["src/main.go"])))
		}, "blob of src/main.go", nil},
		{"flipped byte in a tree", func(t *testing.T, e *testEnv, _ Result) {
			tree := e.store.idx.dirs["src/util"].tree
			flipByte(t, e.store.repo.objectPath(tree))
		}, "tree of src/util", nil},
		{"flipped byte in the commit", func(t *testing.T, e *testEnv, snap Result) {
			flipByte(t, e.store.repo.objectPath(plumbing.NewHash(snap.ID)))
		}, "the commit", nil},
		{"truncated blob", func(t *testing.T, e *testEnv, _ Result) {
			file := objectFile(e.data, "blob", []byte(base["README.md"]))
			os.Chmod(file, 0o644)
			if err := os.Truncate(file, 4); err != nil {
				t.Fatal(err)
			}
		}, "blob of README.md", nil},
		{"missing blob", func(t *testing.T, e *testEnv, _ Result) {
			if err := os.Remove(objectFile(e.data, "blob", []byte(base["binary.dat"]))); err != nil {
				t.Fatal(err)
			}
		}, "blob of binary.dat", nil},
		{"blob swapped for another valid object", func(t *testing.T, e *testEnv, _ Result) {
			// Git's hashes cannot catch a store whose object files were
			// swapped wholesale; the hash check on read does.
			from := objectFile(e.data, "blob", []byte(base["a/x"]))
			to := objectFile(e.data, "blob", []byte(base["empty.txt"]))
			data, err := os.ReadFile(from)
			if err != nil {
				t.Fatal(err)
			}
			os.Chmod(to, 0o644)
			if err := os.WriteFile(to, data, 0o444); err != nil {
				t.Fatal(err)
			}
		}, "blob of empty.txt", nil},
		{"forged checksum", func(t *testing.T, e *testEnv, snap Result) {
			// A well-formed commit of the same tree whose recorded
			// checksum is wrong: only the SHA-256 listing can tell.
			r := e.store.repo
			c, err := e.store.lastLocked(plumbing.NewHash(snap.ID))
			if err != nil {
				t.Fatal(err)
			}
			forged := strings.Replace(snap.Checksum, "sha256:", "sha256:00", 1)[:len(snap.Checksum)]
			id, err := r.writeCommit(c.tree, plumbing.NewHash(snap.ID), later(), commitMessage("", snap.Files, snap.Bytes, forged))
			if err != nil {
				t.Fatal(err)
			}
			if err := r.publish(id, false); err != nil {
				t.Fatal(err)
			}
		}, "checksum mismatch", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, false)
			build(t, e.ws, base)
			build(t, e.ws, tt.extra)
			snap := e.snapshot(t)
			build(t, e.ws, map[string]string{"src/main.go": "edited", "new": "new", "README.md": "edited"})
			os.Remove(filepath.Join(e.ws, "binary.dat"))
			before := capture(t, e.ws, ".conman")
			tt.damage(t, e, snap)
			head, _ := os.ReadFile(filepath.Join(e.data, DirName, repoDirName, "refs/heads/main"))

			_, err := e.store.Restore(testContext(t), "latest", "")
			var corrupt *CorruptError
			if !errors.Is(err, ErrCorrupt) || !errors.As(err, &corrupt) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("restore of a damaged snapshot: err = %v, want a corruption of %q", err, tt.reason)
			}
			if !strings.Contains(err.Error(), "nothing was restored") {
				t.Errorf("error %q does not say that nothing was restored", err)
			}
			if d := diffTrees(before, capture(t, e.ws, ".conman")); d != "" {
				t.Errorf("a failed restore changed the workspace:\n%s", d)
			}
			if after, _ := os.ReadFile(filepath.Join(e.data, DirName, repoDirName, "refs/heads/main")); !bytes.Equal(head, after) {
				t.Errorf("a failed restore took a snapshot")
			}
			copyTo := filepath.Join(t.TempDir(), "copy")
			if _, err := e.store.Restore(testContext(t), "latest", copyTo); !errors.Is(err, ErrCorrupt) {
				t.Errorf("restore --to: err = %v, want corruption", err)
			}
			if _, err := os.Stat(copyTo); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("restore --to of a damaged snapshot created its target")
			}
			if _, err := e.store.Verify(testContext(t), "latest"); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Verify: err = %v, want corruption", err)
			}
		})
	}
}

func TestIncremental(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	specs := map[string]string{}
	for i := range 40 {
		specs[filepath.Join("d1", "d2", string(rune('a'+i%26))+strings.Repeat("x", i/26))] = strings.Repeat("content ", i+1)
		specs[filepath.Join("top", string(rune('a'+i%26))+strings.Repeat("y", i/26))] = strings.Repeat("other ", i+1)
	}
	build(t, e.ws, specs)
	first := e.snapshot(t)
	if first.Hashed != 80 {
		t.Errorf("first snapshot read %d files, want 80", first.Hashed)
	}
	objects := countObjects(t, e.data)
	if objects != first.Written {
		t.Errorf("store holds %d objects, first snapshot wrote %d", objects, first.Written)
	}

	build(t, e.ws, map[string]string{"d1/d2/a": "changed"})
	second := e.snapshot(t)
	// One blob, the trees d1/d2, d1 and the root, and the commit.
	if second.Hashed != 1 || second.Written != 5 {
		t.Errorf("second snapshot read %d files and wrote %d objects, want 1 and 5", second.Hashed, second.Written)
	}
	if got := countObjects(t, e.data); got != objects+5 {
		t.Errorf("store grew by %d objects, want 5", got-objects)
	}

	// A store opened afresh (as the CLI does) uses the index on disk.
	other := openStore(t, e.ws, e.data, true)
	build(t, e.ws, map[string]string{"top/b": "changed too"})
	third, err := other.Snapshot(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if third.Hashed != 1 || third.Written != 4 {
		t.Errorf("third snapshot read %d files and wrote %d objects, want 1 and 4", third.Hashed, third.Written)
	}
	// Touching a file without changing it costs a read but no object.
	now := later()
	if err := os.Chtimes(filepath.Join(e.ws, "top/c"), now, now); err != nil {
		t.Fatal(err)
	}
	fourth := e.snapshot(t)
	if !fourth.Unchanged || fourth.Hashed != 1 || fourth.Written != 0 || fourth.ID != third.ID {
		t.Errorf("snapshot after a touch = %+v, want unchanged %s after 1 read", fourth, third.ShortID())
	}
}

func TestRacyFilesAreReadAgain(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	data := filepath.Join(t.TempDir(), "data")
	s, err := Open(Options{Workspace: ws, DataDir: data, NoSync: true}) // the real clock
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	build(t, ws, map[string]string{"fresh": "just written"})
	for i, want := range []int{1, 1} {
		res, err := s.Snapshot(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if res.Hashed != want {
			t.Errorf("snapshot %d read %d files, want %d (a file this recent is not trusted)", i, res.Hashed, want)
		}
	}
}

func TestFileChangingWhileRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	build(t, e.ws, map[string]string{"busy": "first version", "quiet": "q"})
	busy := filepath.Join(e.ws, "busy")
	writes := 0
	e.store.hashHook = func(path string) {
		if path == "busy" && writes == 0 {
			writes++
			os.WriteFile(busy, []byte("second, longer version"), 0o644)
		}
	}
	snap := e.snapshot(t)
	copyTo := filepath.Join(t.TempDir(), "copy")
	if _, err := e.store.Restore(testContext(t), snap.ID, copyTo); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(copyTo, "busy")); string(got) != "second, longer version" {
		t.Errorf("snapshot holds %q, want the version that was stable", got)
	}

	if err := os.WriteFile(busy, []byte("third"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.store.hashHook = func(path string) {
		if path == "busy" {
			writes++
			os.WriteFile(busy, []byte(strings.Repeat("v", writes)), 0o644)
		}
	}
	if _, err := e.store.Snapshot(testContext(t)); err == nil || !strings.Contains(err.Error(), "kept changing") {
		t.Errorf("snapshot of a file that never settles: err = %v, want 'kept changing'", err)
	}
}

func TestLargeFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	big := bytes.Repeat([]byte("0123456789abcdef"), (inMemoryMax+4096)/16)
	if err := os.WriteFile(filepath.Join(e.ws, "big"), big, 0o755); err != nil {
		t.Fatal(err)
	}
	snap := e.snapshot(t)
	if snap.Bytes != int64(len(big)) {
		t.Errorf("snapshot bytes = %d, want %d", snap.Bytes, len(big))
	}
	if err := os.WriteFile(filepath.Join(e.ws, "big"), []byte("small now"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Restore(testContext(t), snap.ID, ""); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(e.ws, "big"))
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("restored big file: %d bytes, err %v; want the %d bytes snapshotted", len(got), err, len(big))
	}
	if info, _ := os.Stat(filepath.Join(e.ws, "big")); info.Mode().Perm() != 0o755 {
		t.Errorf("restored mode %v, want 0755", info.Mode().Perm())
	}
}

func TestDataDirExcluded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		dataRel string // inside the workspace; "" for outside
	}{
		{"default place", ".conman"},
		{"nested", "a/b/data"},
		{"outside", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ws := t.TempDir()
			data := filepath.Join(t.TempDir(), "data")
			if tt.dataRel != "" {
				data = filepath.Join(ws, tt.dataRel)
			}
			build(t, ws, map[string]string{"f": "f", "a/b/sibling": "s"})
			build(t, data, map[string]string{"secret": "never snapshotted"})
			s := openStore(t, ws, data, false)
			snap, err := s.Snapshot(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			if snap.Files != 2 {
				t.Errorf("snapshot has %d files, want 2 (the data dir excluded)", snap.Files)
			}
			// A snapshot without a/ restored in place keeps the path to
			// the data dir and the data dir itself.
			os.RemoveAll(filepath.Join(ws, "a", "b", "sibling"))
			build(t, ws, map[string]string{"a/b/sibling": "back", "a/other": "o"})
			if _, err := s.Restore(testContext(t), snap.ID, ""); err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(filepath.Join(data, "secret")); err != nil || string(got) != "never snapshotted" {
				t.Errorf("data dir file after restore: %q, %v", got, err)
			}
			if got, err := os.ReadFile(filepath.Join(ws, "a", "b", "sibling")); err != nil || string(got) != "s" {
				t.Errorf("a/b/sibling after restore: %q, %v", got, err)
			}
			if _, err := os.Stat(filepath.Join(ws, "a", "other")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a file not in the snapshot survived the restore")
			}
		})
	}
}

func TestSpecialFilesSkipped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	build(t, e.ws, map[string]string{"f": "f"})
	if err := syscall.Mkfifo(filepath.Join(e.ws, "fifo"), 0o644); err != nil {
		t.Skip("mkfifo:", err)
	}
	snap := e.snapshot(t)
	if snap.Files != 1 || snap.Skipped != 1 {
		t.Errorf("snapshot: %d files, %d skipped; want 1 and 1", snap.Files, snap.Skipped)
	}
}

func TestDamagedIndex(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	build(t, e.ws, base)
	first := e.snapshot(t)
	flipByte(t, e.store.indexPath())
	other := openStore(t, e.ws, e.data, false)
	res, err := other.Snapshot(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Unchanged || res.Hashed != first.Hashed {
		t.Errorf("snapshot with a damaged index = %+v, want unchanged after reading all %d files", res, first.Hashed)
	}
}

func TestGitCanReadTheStore(t *testing.T) {
	t.Parallel()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git")
	}
	many := map[string]string{}
	for i := range packThreshold * 2 {
		many[fmt.Sprintf("gen/%02d/file%03d", i%7, i)] = strings.Repeat("line\n", i)
	}
	tests := []struct {
		name  string
		extra map[string]string
	}{
		{"loose objects", nil},
		{"a pack", many},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, false)
			build(t, e.ws, base)
			build(t, e.ws, tt.extra)
			want := capture(t, e.ws, ".conman")
			first := e.snapshot(t)
			build(t, e.ws, map[string]string{"src/main.go": "edited"})
			second := e.snapshot(t)
			copyTo := filepath.Join(t.TempDir(), "copy")
			if _, err := e.store.Restore(testContext(t), first.ID, copyTo); err != nil {
				t.Fatal(err)
			}
			if d := diffTrees(want, capture(t, copyTo, "")); d != "" {
				t.Errorf("restored copy differs:\n%s", d)
			}
			gitDir := filepath.Join(e.data, DirName, repoDirName)
			if packs, _ := filepath.Glob(filepath.Join(gitDir, "objects/pack/*.pack")); (len(packs) > 0) != (tt.extra != nil) {
				t.Errorf("packs: %v", packs)
			}
			run := func(args ...string) string {
				out, err := exec.Command(gitBin, append([]string{"--git-dir=" + gitDir}, args...)...).CombinedOutput()
				if err != nil {
					t.Fatalf("git %v: %v\n%s", args, err, out)
				}
				return string(out)
			}
			run("fsck", "--strict", "--no-dangling")
			if got, want := run("log", "--format=%H"), second.ID+"\n"+first.ID+"\n"; got != want {
				t.Errorf("git log = %q, want %q", got, want)
			}
			if got := run("show", "HEAD:src/main.go"); got != "edited" {
				t.Errorf("git show HEAD:src/main.go = %q", got)
			}
			if got := run("ls-tree", "HEAD", "bin/run", "link"); !strings.Contains(got, "100755 blob") || !strings.Contains(got, "120000 blob") {
				t.Errorf("git ls-tree = %q, want an executable and a symlink", got)
			}
			if got := run("ls-tree", "-r", "--name-only", "HEAD~"); strings.Count(got, "\n") != int(first.Files) {
				t.Errorf("git ls-tree -r lists %d files, want %d", strings.Count(got, "\n"), first.Files)
			}
		})
	}
}

func TestLockKeepsProcessesApart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	build(t, e.ws, map[string]string{"f": "f"})
	other := openStore(t, e.ws, e.data, false)
	if err := other.acquire(testContext(t)); err != nil {
		t.Fatal(err)
	}
	busy := make(chan struct{}, 1)
	e.store.lock.busy = func() { busy <- struct{}{} }

	ctx, cancel := context.WithCancel(testContext(t))
	errc := make(chan error, 1)
	go func() { _, err := e.store.Snapshot(ctx); errc <- err }()
	<-busy
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("snapshot while locked, canceled: err = %v", err)
	}

	go func() { _, err := e.store.Snapshot(testContext(t)); errc <- err }()
	<-busy
	other.release()
	if err := <-errc; err != nil {
		t.Fatalf("snapshot after the lock was released: %v", err)
	}
}

func TestCoalescer(t *testing.T) {
	t.Parallel()
	const waiters = 8
	var c coalescer
	waiting := make(chan struct{}, waiters)
	c.waiting = func() { waiting <- struct{}{} }
	started, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	runs := 0
	fn := func() error {
		mu.Lock()
		runs++
		n := runs
		mu.Unlock()
		if n == 1 {
			close(started)
			<-release
		}
		return nil
	}
	ctx := testContext(t)
	first := make(chan error, 1)
	go func() { first <- c.do(ctx, fn) }()
	<-started
	results := make(chan int, waiters)
	for range waiters {
		go func() {
			if err := c.do(ctx, fn); err != nil {
				t.Error(err)
			}
			mu.Lock()
			results <- runs
			mu.Unlock()
		}()
	}
	for range waiters {
		<-waiting
	}
	// A caller that gives up does not stop the run for the others.
	gaveUp, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.do(gaveUp, fn); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled caller: err = %v", err)
	}
	<-waiting
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range waiters {
		if n := <-results; n != 2 {
			t.Errorf("a waiter returned after %d runs, want exactly 2 (one that started after it arrived)", n)
		}
	}
}

func TestDamagedObjectIsRewritten(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	build(t, e.ws, base)
	snap := e.snapshot(t)
	flipByte(t, objectFile(e.data, "blob", []byte(base["README.md"])))
	if _, err := e.store.Verify(testContext(t), snap.ID); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify after damage: %v", err)
	}
	// The workspace still has the content: the next snapshot, though
	// unchanged, writes the object again.
	res := e.snapshot(t)
	if !res.Unchanged || res.Hashed != 1 || res.Written != 1 {
		t.Errorf("snapshot after damage = %+v, want unchanged, 1 read and 1 written", res)
	}
	if _, err := e.store.Verify(testContext(t), snap.ID); err != nil {
		t.Errorf("Verify after repair: %v", err)
	}
}

func TestServiceWithoutStore(t *testing.T) {
	t.Parallel()
	svc, err := New(services.Env{Logger: testLogger(t)}) // no workspace, no data dir
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop(testContext(t))
	h, err := svc.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Handle(testContext(t), &channels.Request{Command: &api.Command{Body: &api.Command_FsSnapshot{FsSnapshot: &api.FSSnapshot{}}}})
	if err == nil || !strings.Contains(err.Error(), "snapshots unavailable") {
		t.Errorf("fsSnapshot without a store: err = %v", err)
	}
}
