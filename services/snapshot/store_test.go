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
	"github.com/go-git/go-git/v5/plumbing/object"

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
	// Modes git cannot keep.
	"secret.txt#600":            "only mine",
	"shared/notes.txt#640":      "my group may read",
	"shared/#750":               "",
	"private/#700":              "",
	"private/key#400":           "read-only key",
	"bin/mine*#700":             "#!/bin/sh\necho mine\n",
	"bin/group*#750":            "#!/bin/sh\necho group\n",
	"frozen/#500":               "",
	"frozen/data.txt#444":       "frozen data",
	"frozen/inner/#500":         "",
	"frozen/inner/deep.txt#600": "deep in read-only directories",
	"tmp/#1777":                 "",
	"tmp/scratch":               "anyone's",
	"team/#2755":                "",
	"team/plan.txt#664":         "the team's",
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
		{"chmod keeping the executable bit", func(t *testing.T, ws string) {
			for path, perm := range map[string]uint64{
				"secret.txt": 0o644, "shared/notes.txt": 0o600, "bin/mine": 0o755, "bin/group": 0o4711, "README.md": 0o640,
			} {
				if err := chmod(filepath.Join(ws, path), perm); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"chmod directories", func(t *testing.T, ws string) {
			for path, perm := range map[string]uint64{
				"shared": 0o755, "private": 0o711, "frozen/inner": 0o700, "frozen": 0o755, "tmp": 0o777, "team": 0o755, "src": 0o700,
			} {
				if err := chmod(filepath.Join(ws, path), perm); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"read-only directory replaced", func(t *testing.T, ws string) {
			openTree(filepath.Join(ws, "frozen"))
			if err := os.RemoveAll(filepath.Join(ws, "frozen")); err != nil {
				t.Fatal(err)
			}
			build(t, ws, map[string]string{"frozen/data.txt": "thawed", "frozen/extra#600": "extra", "frozen/inner/#700": ""})
		}},
		{"files changed in read-only directories", func(t *testing.T, ws string) {
			openTree(filepath.Join(ws, "frozen"))
			if err := os.Chmod(filepath.Join(ws, "frozen/data.txt"), 0o644); err != nil {
				t.Fatal(err)
			}
			build(t, ws, map[string]string{"frozen/data.txt#600": "changed", "frozen/inner/new": "new", "frozen/inner/#500": "", "frozen/#555": ""})
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
			outside := tempDir(t)
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
			if d := diffTrees(modified, capture(t, e.ws, ".conman")); d != "" {
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
		to := filepath.Join(tempDir(t), "new", "copy")
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
		to := tempDir(t)
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
		alias := filepath.Join(tempDir(t), "alias")
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
	build(t, e.ws, map[string]string{"outside-link@": tempDir(t), "full/file": "x"})

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
			forged := strings.Replace(snap.Checksum, "sha256:", "sha256:00", 1)[:len(snap.Checksum)]
			forge(t, e, snap, func(msg string) string { return strings.Replace(msg, snap.Checksum, forged, 1) })
		}, "checksum mismatch", nil},
		{"tampered mode record", func(t *testing.T, e *testEnv, snap Result) {
			forge(t, e, snap, func(msg string) string {
				return strings.Replace(msg, `Conman-Mode: 0600 "secret.txt"`, `Conman-Mode: 0644 "secret.txt"`, 1)
			})
		}, "checksum mismatch", nil},
		{"tampered directory mode record", func(t *testing.T, e *testEnv, snap Result) {
			forge(t, e, snap, func(msg string) string {
				return strings.Replace(msg, `Conman-Mode: 1777 "tmp"`, `Conman-Mode: 0777 "tmp"`, 1)
			})
		}, "checksum mismatch", nil},
		{"mode record removed", func(t *testing.T, e *testEnv, snap Result) {
			forge(t, e, snap, func(msg string) string {
				return strings.Replace(msg, `Conman-Mode: 0500 "frozen"`+"\n", "", 1)
			})
		}, "checksum mismatch", nil},
		{"usual modes changed", func(t *testing.T, e *testEnv, snap Result) {
			forge(t, e, snap, func(msg string) string {
				return strings.Replace(msg, "Conman-Usual-Modes: 0644 0755 0755", "Conman-Usual-Modes: 0664 0775 0775", 1)
			})
		}, "checksum mismatch", nil},
		{"mode record for a path the snapshot lacks", func(t *testing.T, e *testEnv, snap Result) {
			forge(t, e, snap, func(msg string) string { return msg + `Conman-Mode: 0600 "nowhere"` + "\n" })
		}, `recorded for "nowhere", which the snapshot lacks`, nil},
		{"mode record contradicting git's", func(t *testing.T, e *testEnv, snap Result) {
			forge(t, e, snap, func(msg string) string {
				return strings.Replace(msg, `Conman-Mode: 0600 "secret.txt"`, `Conman-Mode: 0700 "secret.txt"`, 1)
			})
		}, "does not match git's mode", nil},
		{"mode record for a symlink", func(t *testing.T, e *testEnv, snap Result) {
			forge(t, e, snap, func(msg string) string {
				return strings.Replace(msg, `Conman-Mode: 0700 "private"`, `Conman-Mode: 0600 "link"`+"\n"+`Conman-Mode: 0700 "private"`, 1)
			})
		}, "recorded for symlink link", nil},
		{"malformed mode record", func(t *testing.T, e *testEnv, snap Result) {
			forge(t, e, snap, func(msg string) string {
				return strings.Replace(msg, `Conman-Mode: 0600 "secret.txt"`, `Conman-Mode: 0600 secret.txt`, 1)
			})
		}, "bad Conman-Mode trailer", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, false)
			build(t, e.ws, base)
			build(t, e.ws, tt.extra)
			snap := e.snapshot(t)
			build(t, e.ws, map[string]string{"src/main.go": "edited", "new": "new", "README.md": "edited", "secret.txt": "edited", "tmp/": ""})
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
			copyTo := filepath.Join(tempDir(t), "copy")
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

// forge publishes, on top of snap, a commit of snap's tree whose message is
// snap's as edit changes it.
func forge(t *testing.T, e *testEnv, snap Result, edit func(string) string) {
	t.Helper()
	r := e.store.repo
	c, err := object.GetCommit(r.storage(), plumbing.NewHash(snap.ID))
	if err != nil {
		t.Fatal(err)
	}
	msg := edit(c.Message)
	if msg == c.Message {
		t.Fatalf("the forgery changed nothing in\n%s", msg)
	}
	id, err := r.writeCommit(c.TreeHash, plumbing.NewHash(snap.ID), later(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.publish(id, false); err != nil {
		t.Fatal(err)
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

// TestModeOnlyChange checks that a chmod alone makes a new snapshot, which
// costs a read of the file but no object other than the commit, and that
// restores give each snapshot's modes back.
func TestModeOnlyChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	build(t, e.ws, map[string]string{"a/secret#600": "s", "a/plain": "p", "d/#750": "", "d/f": "f", "run*": "r"})
	states := []map[string]string{capture(t, e.ws, ".conman")}
	snaps := []Result{e.snapshot(t)}
	changes := []struct {
		path   string
		perm   uint64
		hashed int
	}{
		{"a/secret", 0o640, 1},
		{"d", 0o700, 0},
		{"run", 0o4750, 1},
		{"a", 0o2775, 0},
	}
	for i, c := range changes {
		if err := chmod(filepath.Join(e.ws, c.path), c.perm); err != nil {
			t.Fatal(err)
		}
		states = append(states, capture(t, e.ws, ".conman"))
		store := e.store
		if i%2 == 1 {
			store = openStore(t, e.ws, e.data, false) // the index on disk
		}
		res, err := store.Snapshot(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if res.Unchanged || res.Hashed != c.hashed || res.Written != 1 {
			t.Errorf("snapshot after chmod %o %s = %+v; want a new snapshot after %d reads, of the commit alone",
				c.perm, c.path, res, c.hashed)
		}
		snaps = append(snaps, res)
		if again := e.snapshot(t); !again.Unchanged || again.ID != res.ID {
			t.Errorf("snapshot after nothing changed = %+v, want unchanged %s", again, res.ShortID())
		}
	}
	for i := len(snaps) - 1; i >= 0; i-- {
		if _, err := e.store.Restore(testContext(t), snaps[i].ID, ""); err != nil {
			t.Fatal(err)
		}
		if d := diffTrees(states[i], capture(t, e.ws, ".conman")); d != "" {
			t.Errorf("workspace after restoring snapshot %d differs:\n%s", i, d)
		}
		copyTo := filepath.Join(tempDir(t), "copy")
		if _, err := e.store.Restore(testContext(t), snaps[i].ID, copyTo); err != nil {
			t.Fatal(err)
		}
		if d := diffTrees(states[i], capture(t, copyTo, "")); d != "" {
			t.Errorf("copy of snapshot %d differs:\n%s", i, d)
		}
	}
}

// TestUsualModes checks that a workspace made under a restrictive umask
// needs no more mode records than one made under the usual one.
func TestUsualModes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	specs := map[string]string{"public#644": "for all", "dir/#700": "", "dir/sub/#700": "", "dir/sub/tool*#700": "t"}
	for i := range 20 {
		specs[fmt.Sprintf("dir/sub/f%02d#600", i)] = "private"
	}
	build(t, e.ws, specs)
	want := capture(t, e.ws, ".conman")
	snap := e.snapshot(t)
	c, err := object.GetCommit(e.store.repo.storage(), plumbing.NewHash(snap.ID))
	if err != nil {
		t.Fatal(err)
	}
	_, trailers, _ := strings.Cut(c.Message, "Conman-Usual-Modes: ")
	if trailers != "0600 0700 0700\n"+`Conman-Mode: 0644 "public"`+"\n" {
		t.Errorf("commit message:\n%s\nwant usual modes 0600 0700 0700 and one record", c.Message)
	}
	copyTo := filepath.Join(tempDir(t), "copy")
	if _, err := e.store.Restore(testContext(t), snap.ID, copyTo); err != nil {
		t.Fatal(err)
	}
	if d := diffTrees(want, capture(t, copyTo, "")); d != "" {
		t.Errorf("copy differs:\n%s", d)
	}
}

// TestModeRecordRoundTrip checks that any path survives a mode record.
func TestModeRecordRoundTrip(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"plain", "with space/and\nnewline", "quote\"d\\", "tab\there", "ünï\u2028cödé", "\xff\xfe bytes", "trailing space "} {
		rec := modeRecord{path: path, perm: 0o2750}
		line := string(appendModeRecord(nil, rec))
		key, value, _ := strings.Cut(strings.TrimSuffix(line, "\n"), ": ")
		if key != trailerMode || strings.Contains(value, "\n") {
			t.Errorf("record of %q is %q", path, line)
			continue
		}
		if got, err := parseModeRecord(value); err != nil || got != rec {
			t.Errorf("record %q parses as %+v, %v; want %+v", line, got, err, rec)
		}
	}
}

// TestFormat1 checks that snapshots stored before modes were recorded
// still verify and restore, as they did: files 0644 or 0755, existing
// directories left as they are.
func TestFormat1(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	build(t, e.ws, map[string]string{"secret#600": "s", "run*#700": "r", "private/#700": "", "private/f#640": "f", "link@": "secret"})
	snap := e.snapshot(t)
	// The same tree, committed as format 1 did.
	r := e.store.repo
	c, err := object.GetCommit(r.storage(), plumbing.NewHash(snap.ID))
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(r.storage(), c.Hash)
	v.modes = &snapshotModes{usual: gitUsual}
	if err := v.walkTree(testContext(t), c.TreeHash, "", 0); err != nil {
		t.Fatal(err)
	}
	msg := fmt.Sprintf("snapshot\n\nConman-Snapshot: 1\nConman-Files: %d\nConman-Bytes: %d\nConman-Checksum: %s\n",
		v.l.files, v.l.bytes, v.l.checksum())
	id, err := r.writeCommit(c.TreeHash, c.Hash, later(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.publish(id, false); err != nil {
		t.Fatal(err)
	}
	if info, err := e.store.Verify(testContext(t), id.String()); err != nil || info.Files != 4 {
		t.Fatalf("Verify of a format 1 snapshot = %+v, %v", info, err)
	}
	if infos, err := e.store.List(testContext(t)); err != nil || len(infos) != 2 {
		t.Fatalf("List = %+v, %v", infos, err)
	}
	if err := chmod(filepath.Join(e.ws, "private"), 0o750); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Restore(testContext(t), id.String(), ""); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"secret": "file 0644 s", "run": "file 0755 r", "private": "dir 0750", "private/f": "file 0644 f", "link": "link secret",
	}
	if d := diffTrees(want, capture(t, e.ws, ".conman")); d != "" {
		t.Errorf("workspace after restoring a format 1 snapshot differs:\n%s", d)
	}
	// Tampering is caught as before.
	forge(t, e, Result{Info: Info{ID: id.String()}}, func(msg string) string {
		return strings.Replace(msg, "Conman-Files: 4\n", "Conman-Files: 4\n"+`Conman-Mode: 0600 "secret"`+"\n", 1)
	})
	if _, err := e.store.Verify(testContext(t), "latest"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Verify of a format 1 snapshot with a mode record: err = %v, want corruption", err)
	}
}

// TestRestoreWithoutPrivileges restores read-only directories as a user
// their modes bind, as they do not bind root: run by root, the test runs
// itself again as nobody.
func TestRestoreWithoutPrivileges(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		runAsNobody(t)
		return
	}
	e := newEnv(t, false)
	build(t, e.ws, map[string]string{"keep": "k"})
	without := e.snapshot(t)
	build(t, e.ws, map[string]string{
		"ro/#500": "", "ro/a#444": "a", "ro/sub/#555": "", "ro/sub/b#600": "b",
		"ro/sub/deeper/#500": "", "ro/sub/deeper/c": "c", "ro/empty/#500": "",
	})
	want := capture(t, e.ws, ".conman")
	snap := e.snapshot(t)

	openTree(filepath.Join(e.ws, "ro"))
	if err := os.Chmod(filepath.Join(e.ws, "ro/a"), 0o644); err != nil {
		t.Fatal(err)
	}
	build(t, e.ws, map[string]string{"ro/a": "changed", "ro/new": "new", "ro/sub/deeper/#500": "", "ro/#555": ""})
	if err := os.Remove(filepath.Join(e.ws, "ro/sub/b")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Restore(testContext(t), snap.ID, ""); err != nil {
		t.Fatal(err)
	}
	if d := diffTrees(want, capture(t, e.ws, ".conman")); d != "" {
		t.Errorf("workspace after restore differs:\n%s", d)
	}
	// Restoring a snapshot without them removes read-only directories.
	if _, err := e.store.Restore(testContext(t), without.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(e.ws, "ro")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ro survived the restore of a snapshot without it: %v", err)
	}
	if _, err := e.store.Restore(testContext(t), snap.ID, ""); err != nil {
		t.Fatal(err)
	}
	if d := diffTrees(want, capture(t, e.ws, ".conman")); d != "" {
		t.Errorf("workspace after restore differs:\n%s", d)
	}
	copyTo := filepath.Join(tempDir(t), "copy")
	if _, err := e.store.Restore(testContext(t), snap.ID, copyTo); err != nil {
		t.Fatal(err)
	}
	if d := diffTrees(want, capture(t, copyTo, "")); d != "" {
		t.Errorf("copy differs:\n%s", d)
	}
}

// runAsNobody runs the test t again, in a copy of the test binary, as the
// user nobody.
func runAsNobody(t *testing.T) {
	const nobody = 65534
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir's parent is private to root.
	dir, err := os.MkdirTemp("", "conman-as-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(dir, filepath.Base(self))
	if err := os.WriteFile(copied, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for path, perm := range map[string]os.FileMode{dir: 0o755, copied: 0o755} {
		if err := os.Chmod(path, perm); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(tmp, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(testContext(t), copied, "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "HOME="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, syscall.EPERM) {
		t.Skip("cannot run as nobody:", err)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
}

func TestRacyFilesAreReadAgain(t *testing.T) {
	t.Parallel()
	ws := tempDir(t)
	data := filepath.Join(tempDir(t), "data")
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
	copyTo := filepath.Join(tempDir(t), "copy")
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
			ws := tempDir(t)
			data := filepath.Join(tempDir(t), "data")
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
			copyTo := filepath.Join(tempDir(t), "copy")
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
			// Git reads the modes as trailers.
			if got := run("log", "-1", "--format=%(trailers:key=Conman-Mode,valueonly)", "HEAD~"); !strings.Contains(got, `0600 "secret.txt"`+"\n") || !strings.Contains(got, `1777 "tmp"`+"\n") {
				t.Errorf("git's Conman-Mode trailers = %q", got)
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
