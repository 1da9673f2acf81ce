package snapshot

import (
	"cmp"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testTimeout bounds what one test waits for.
const testTimeout = 20 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// later is a clock an hour ahead, so the files a test has just written
// are not "racy" and are trusted by their stat data like old files.
func later() time.Time { return time.Now().Add(time.Hour) }

type testEnv struct {
	ws, data string
	store    *Store
}

// newEnv makes a workspace with its data dir at .conman inside and opens
// a store on it. The store skips syncing unless sync is set.
func newEnv(t testing.TB, sync bool) *testEnv {
	t.Helper()
	ws := tempDir(t)
	e := &testEnv{ws: ws, data: filepath.Join(ws, ".conman")}
	if err := os.MkdirAll(e.data, 0o700); err != nil {
		t.Fatal(err)
	}
	e.store = openStore(t, ws, e.data, sync)
	return e
}

func openStore(t testing.TB, ws, data string, sync bool) *Store {
	t.Helper()
	s, err := Open(Options{Workspace: ws, DataDir: data, Now: later, NoSync: !sync, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// tempDir is t.TempDir, emptied even as a user other than root when
// restores have left read-only directories in it.
func tempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() { openTree(filepath.Dir(dir)) })
	return dir
}

// openTree gives the owner full access to every directory under dir.
func openTree(dir string) {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if info, err := d.Info(); err == nil && info.Mode().Perm()&0o700 != 0o700 {
				os.Chmod(path, info.Mode().Perm()|0o700)
			}
		}
		return nil
	})
}

// build creates a tree under dir from specs: "path" → content for a file
// (mode 0644), "path*" for an executable (0755), "path@" → target for a
// symlink, "path/" for a directory (0755). A file's or directory's spec
// may end in "#<octal mode>" for another mode ("secret#600", "tmp/#1777"),
// which directories get once everything is built, deepest first.
func build(t testing.TB, dir string, specs map[string]string) {
	t.Helper()
	type dirMode struct {
		path string
		perm uint64
	}
	var dirModes []dirMode
	for spec, content := range specs {
		var perm uint64
		hasPerm := false
		if i := strings.LastIndexByte(spec, '#'); i >= 0 {
			p, err := strconv.ParseUint(spec[i+1:], 8, 32)
			if err != nil {
				t.Fatalf("spec %q: %v", spec, err)
			}
			spec, perm, hasPerm = spec[:i], p, true
		}
		path := filepath.Join(dir, filepath.FromSlash(strings.TrimRight(spec, "*@/")))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasSuffix(spec, "/"):
			err = os.MkdirAll(path, 0o755)
			if hasPerm {
				dirModes = append(dirModes, dirMode{path, perm})
			}
		case strings.HasSuffix(spec, "@"):
			os.Remove(path)
			err = os.Symlink(content, path)
		default:
			if !hasPerm {
				perm = 0o644
				if strings.HasSuffix(spec, "*") {
					perm = 0o755
				}
			}
			if err = os.WriteFile(path, []byte(content), 0o600); err == nil {
				err = chmod(path, perm)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.SortFunc(dirModes, func(a, b dirMode) int { return cmp.Compare(b.path, a.path) })
	for _, d := range dirModes {
		if err := chmod(d.path, d.perm); err != nil {
			t.Fatal(err)
		}
	}
}

// chmod sets all of path's permission bits, setuid, setgid and sticky
// included.
func chmod(path string, perm uint64) error {
	return os.Chmod(path, osMode(uint32(perm)))
}

// capture describes everything under dir except skip (a slash path
// relative to dir): "dir <mode>", "file <mode> <content>" or
// "link <target>", modes being all the permission bits in 4 octal digits.
func capture(t testing.TB, dir, skip string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if skip != "" && rel == skip {
			return filepath.SkipDir
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st, _ := statFromInfo(info)
		switch {
		case info.IsDir():
			out[rel] = fmt.Sprintf("dir %04o", st.perm())
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			out[rel] = "link " + target
		default:
			content, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("file %04o %s", st.perm(), content)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffTrees(want, got map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(want) {
		if got[k] != want[k] {
			fmt.Fprintf(&b, "  %s: got %.60q, want %.60q\n", k, got[k], want[k])
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "  %s: unexpected %.60q\n", k, got[k])
		}
	}
	return b.String()
}

func (e *testEnv) snapshot(t testing.TB) Result {
	t.Helper()
	res, err := e.store.Snapshot(testContext(t))
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return res
}

// objectFile is where the loose object of the given type and content
// lives in the store of data.
func objectFile(data, kind string, content []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "%s %d\x00", kind, len(content))
	h.Write(content)
	hex := fmt.Sprintf("%x", h.Sum(nil))
	return filepath.Join(data, DirName, repoDirName, "objects", hex[:2], hex[2:])
}

// flipByte inverts one byte in the middle of file.
func flipByte(t testing.TB, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o444); err != nil {
		t.Fatal(err)
	}
}

// countObjects counts the objects in the store of data, loose and packed.
func countObjects(t testing.TB, data string) int {
	t.Helper()
	n := 0
	objects := filepath.Join(data, DirName, repoDirName, "objects")
	dirs, err := filepath.Glob(filepath.Join(objects, "??"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		n += len(entries)
	}
	idxs, err := filepath.Glob(filepath.Join(objects, "pack", "*.idx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, idx := range idxs {
		// A version 2 index: magic, version, then 256 cumulative
		// counts; the last is the number of objects.
		b, err := os.ReadFile(idx)
		if err != nil || len(b) < 8+256*4 {
			t.Fatalf("pack index %s: %v", idx, err)
		}
		n += int(binary.BigEndian.Uint32(b[8+255*4:]))
	}
	return n
}
