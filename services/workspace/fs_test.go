package workspace

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestMain(m *testing.M) {
	// Files are created with the umask applied; pin it so modes are
	// predictable.
	syscall.Umask(0o022)
	os.Exit(m.Run())
}

// noTemps fails when a temporary file is left anywhere under dir.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && IsTempName(d.Name()) {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

func TestWriteKeepsModeAndLinks(t *testing.T) {
	t.Parallel()
	w, ws := testTree(t)
	target := filepath.Join(ws, "a", "b.txt")
	if err := os.Chmod(target, 0o751); err != nil {
		t.Fatal(err)
	}
	if err := w.Write("link-file", []byte("new")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o751 {
		t.Errorf("mode = %v, want -rwxr-x--x kept", fi.Mode())
	}
	if got, _ := os.ReadFile(target); string(got) != "new" {
		t.Errorf("content = %q", got)
	}
	if lfi, err := os.Lstat(filepath.Join(ws, "link-file")); err != nil || lfi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the symbolic link was replaced: %v %v", lfi, err)
	}
	if err := w.Write("new/deep/file", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(ws, "new", "deep", "file")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("new file: %v %v, want -rw-r--r--", fi, err)
	}
	noTemps(t, ws)
}

func TestOperationErrors(t *testing.T) {
	t.Parallel()
	w, ws := testTree(t)
	tests := []struct {
		name string
		op   func() error
		code ErrorCode
		text string
	}{
		{"read missing", func() error { _, err := w.Read("nope"); return err }, CodeNotFound, "read nope: no such file or directory"},
		{"read dir", func() error { _, err := w.Read("/a"); return err }, CodeIsDir, "read a: is a directory"},
		{"read through file", func() error { _, err := w.Read("file.txt/x"); return err }, CodeNotDir, "read file.txt/x: not a directory"},
		{"readdir file", func() error { _, err := w.List("file.txt"); return err }, CodeNotDir, "readdir file.txt: not a directory"},
		{"write dir", func() error { return w.Write("a", nil) }, CodeIsDir, "write a: is a directory"},
		{"write root", func() error { return w.Write("/", nil) }, CodeIsDir, "write /: is a directory"},
		{"write under file", func() error { return w.Write("file.txt/x", nil) }, CodeNotDir, "write file.txt/x: not a directory"},
		{"mkdir over file", func() error { return w.Mkdir("file.txt") }, CodeExists, "mkdir file.txt: file exists"},
		{"remove missing", func() error { return w.Remove("nope") }, CodeNotFound, "remove nope: no such file or directory"},
		{"remove root", func() error { return w.Remove("/") }, CodeInvalidPath, "remove /: not permitted on the workspace root"},
		{"move missing", func() error { return w.Move("nope", "x") }, CodeNotFound, "move nope x: no such file or directory"},
		{"move onto file", func() error { return w.Move("file.txt", "a/b.txt") }, CodeExists, "move file.txt a/b.txt: file exists"},
		{"move onto dir", func() error { return w.Move("file.txt", "a") }, CodeExists, "move file.txt a: file exists"},
		{"move into itself", func() error { return w.Move("a", "a/sub/a") }, CodeInvalid, "move a a/sub/a: cannot move a directory into itself"},
		{"move root", func() error { return w.Move("/", "x") }, CodeInvalidPath, "move / x: not permitted on the workspace root"},
		{"move into data", func() error { return w.Move("file.txt", ".conman/f") }, CodeInvalidPath, "move file.txt .conman/f: path is reserved for the daemon's data"},
		{"persist missing", func() error { return w.Persist("nope") }, CodeNotFound, "persist nope: no such file or directory"},
		{"upload negative", func() error { _, err := w.BeginUpload("u", -1); return err }, CodeInvalid, "upload u: negative size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			if Code(err) != tt.code || err.Error() != tt.text {
				t.Errorf("got %v (code %v), want %q (code %v)", err, Code(err), tt.text, tt.code)
			}
			if strings.Contains(err.Error(), ws) {
				t.Errorf("error %q shows a host path", err)
			}
		})
	}
	noTemps(t, ws)
}

func TestRemoveKeepsDataDir(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	data := filepath.Join(base, "sub", "state")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	w, err := Open(Options{Root: base, DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, op := range []func() error{
		func() error { return w.Remove("sub") },
		func() error { return w.TryRemove("sub") },
		func() error { return w.Move("sub", "elsewhere") },
	} {
		if err := op(); Code(err) != CodeInvalidPath {
			t.Errorf("got %v, want invalid path", err)
		}
	}
	if _, err := os.Stat(data); err != nil {
		t.Errorf("data dir: %v", err)
	}
	if err := w.TryRemove("nope/deeper"); err != nil {
		t.Errorf("TryRemove of a missing path: %v", err)
	}
}

func TestMoveSameFile(t *testing.T) {
	t.Parallel()
	w, ws := testTree(t)
	if err := w.Move("file.txt", "/file.txt"); err != nil {
		t.Errorf("move onto itself: %v", err)
	}
	if err := os.Link(filepath.Join(ws, "file.txt"), filepath.Join(ws, "hard.txt")); err != nil {
		t.Fatal(err)
	}
	if err := w.Move("file.txt", "hard.txt"); err != nil {
		t.Errorf("move onto a hard link of itself: %v", err)
	}
	if err := w.Move("link-etc", "moved-link"); err != nil {
		t.Errorf("moving a link that points outside moves the link: %v", err)
	}
	if target, err := os.Readlink(filepath.Join(ws, "moved-link")); err != nil || target != "/etc" {
		t.Errorf("moved link = %q, %v", target, err)
	}
}

func TestUpload(t *testing.T) {
	t.Parallel()
	w, ws := testTree(t)
	content := bytes.Repeat([]byte("0123456789"), 1000)
	sum := crc32.ChecksumIEEE(content)

	t.Run("ok", func(t *testing.T) {
		os.Chmod(filepath.Join(ws, "file.txt"), 0o600)
		u, err := w.BeginUpload("file.txt", int64(len(content)))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(content); i += 3000 {
			if err := u.Write(content[i:min(i+3000, len(content))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := u.Commit(sum); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(filepath.Join(ws, "file.txt"))
		if !bytes.Equal(got, content) {
			t.Error("content differs")
		}
		if fi, _ := os.Stat(filepath.Join(ws, "file.txt")); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode = %v, want kept", fi.Mode())
		}
		if err := u.Write([]byte("x")); !errors.Is(err, ErrNoTransfer) {
			t.Errorf("write after commit: %v", err)
		}
	})
	failures := []struct {
		name  string
		size  int64
		chunk []byte
		sum   uint32
		code  ErrorCode
		text  string
	}{
		{"short", int64(len(content)) + 1, content, sum, CodeInvalid, "upload up.bin: size mismatch: received 10000 of 10001 bytes"},
		{"checksum", int64(len(content)), content, sum + 1, CodeInvalid, "checksum mismatch"},
		{"too much", 10, content, sum, CodeTooLarge, "upload up.bin: file too large (more than the announced 10 bytes)"},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			u, err := w.BeginUpload("up.bin", tt.size)
			if err != nil {
				t.Fatal(err)
			}
			err = u.Write(tt.chunk)
			if err == nil {
				err = u.Commit(tt.sum)
			}
			if Code(err) != tt.code || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("got %v (code %v), want %q (code %v)", err, Code(err), tt.text, tt.code)
			}
			if _, err := os.Stat(filepath.Join(ws, "up.bin")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("target exists after a failed upload: %v", err)
			}
			noTemps(t, ws)
		})
	}
	t.Run("abort", func(t *testing.T) {
		u, err := w.BeginUpload("dir/new/up.bin", 100)
		if err != nil {
			t.Fatal(err)
		}
		u.Write([]byte("partial"))
		u.Abort()
		u.Abort()
		noTemps(t, ws)
	})
}

// fakeInterceptor records the writes it takes.
type fakeInterceptor struct {
	mu      sync.Mutex
	handled bool
	err     error
	got     map[string]string
}

func (f *fakeInterceptor) InterceptWrite(path string, content []byte) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.got == nil {
		f.got = make(map[string]string)
	}
	f.got[path] = string(content)
	return f.handled, f.err
}

func TestInterceptors(t *testing.T) {
	t.Parallel()
	w, ws := testTree(t)
	fake := &fakeInterceptor{handled: true}
	unregister, err := w.Intercept("link-file", fake) // resolves to a/b.txt
	if err != nil {
		t.Fatal(err)
	}
	if err := InterceptorsFor(ws).Register("a/b.txt", &fakeInterceptor{}); !errors.Is(err, ErrClaimed) {
		t.Errorf("second claim: %v, want ErrClaimed", err)
	}
	if err := w.Write("a/sub/../b.txt", []byte("through the hook")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(ws, "a", "b.txt")); string(got) != "b" {
		t.Errorf("the file was written: %q", got)
	}
	if fake.got["a/b.txt"] != "through the hook" {
		t.Errorf("interceptor got %q", fake.got)
	}
	u, err := w.BeginUpload("a/b.txt", 3)
	if err != nil {
		t.Fatal(err)
	}
	u.Write([]byte("upl"))
	if err := u.Commit(crc32.ChecksumIEEE([]byte("upl"))); err != nil {
		t.Fatal(err)
	}
	if fake.got["a/b.txt"] != "upl" {
		t.Errorf("interceptor got %q after an upload", fake.got)
	}
	noTemps(t, ws)

	fake.err = errors.New("document is locked")
	if err := w.Write("a/b.txt", nil); err == nil || err.Error() != "write a/b.txt: document is locked" {
		t.Errorf("interceptor error: %v", err)
	}
	fake.handled, fake.err = false, nil
	if err := w.Write("a/b.txt", []byte("declined")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(ws, "a", "b.txt")); string(got) != "declined" {
		t.Errorf("a declined write did not reach the file: %q", got)
	}
	fake.handled = true
	if err := w.WriteDirect("a/b.txt", []byte("direct")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(ws, "a", "b.txt")); string(got) != "direct" {
		t.Errorf("WriteDirect: %q", got)
	}
	unregister()
	if err := w.Write("a/b.txt", []byte("after")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(ws, "a", "b.txt")); string(got) != "after" {
		t.Errorf("after unregister: %q", got)
	}
}

func TestListHides(t *testing.T) {
	t.Parallel()
	w, ws := testTree(t)
	for _, name := range []string{"\xffbad", TempPrefix + "0123", "with space", "new\nline"} {
		if err := os.WriteFile(filepath.Join(ws, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := w.List("/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	dirs := map[string]bool{}
	for _, e := range entries {
		names = append(names, e.Name)
		dirs[e.Name] = e.Dir
	}
	got := strings.Join(names, ",")
	want := "a,chain1,chain2,dangling,file.txt,link-abs-in,link-data,link-dir,link-empty,link-etc,link-file,link-outside,loopA,loopB,new\nline,self,with space"
	if got != want {
		t.Errorf("List = %q, want %q", got, want)
	}
	if !dirs["a"] || !dirs["link-dir"] || dirs["link-etc"] || dirs["file.txt"] {
		t.Errorf("types: %v (a link counts as a directory only when it leads to one inside)", dirs)
	}
}
