package workspace

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// testTree builds a workspace with links of every kind next to an
// "outside" directory, and opens it with its data dir at .conman.
func testTree(t testing.TB) (*FS, string) {
	t.Helper()
	base := t.TempDir()
	ws := filepath.Join(base, "ws")
	outside := filepath.Join(base, "outside")
	for _, dir := range []string{ws, outside, filepath.Join(ws, "a", "sub"), filepath.Join(ws, ".conman", "keys")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(ws, "a", "b.txt"):               "b",
		filepath.Join(ws, "file.txt"):                 "f",
		filepath.Join(ws, ".conman", "keys", "k.key"): "secret",
		filepath.Join(outside, "secret"):              "outside",
	}
	for name, content := range files {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"link-dir":     "a",
		"link-file":    "a/b.txt",
		"link-abs-in":  filepath.Join(ws, "a"),
		"link-etc":     "/etc",
		"link-outside": "../outside",
		"chain1":       "chain2",
		"chain2":       "a/../../outside",
		"loopA":        "loopB",
		"loopB":        "loopA",
		"self":         "self",
		"link-data":    ".conman",
		"a/up":         "..",
		"a/sub/up2":    "../../a",
		"dangling":     "nowhere",
		"link-empty":   "link-dir/../link-data/keys",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(ws, name)); err != nil {
			t.Fatal(err)
		}
	}
	w, err := Open(Options{Root: ws, DataDir: filepath.Join(ws, ".conman")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, ws
}

func TestResolve(t *testing.T) {
	t.Parallel()
	w, _ := testTree(t)
	tests := []struct {
		path     string
		noFollow bool
		want     string
		code     ErrorCode
	}{
		{path: "", want: "."},
		{path: "/", want: "."},
		{path: ".", want: "."},
		{path: "//./", want: "."},
		{path: "a/b.txt", want: "a/b.txt"},
		{path: "/a/b.txt", want: "a/b.txt"},
		{path: "a/./sub/../b.txt", want: "a/b.txt"},
		{path: "missing/x", want: "missing/x"},
		{path: "/etc/passwd", want: "etc/passwd"},
		{path: "a b/c\nd", want: "a b/c\nd"},
		{path: "link-dir/b.txt", want: "a/b.txt"},
		{path: "link-file", want: "a/b.txt"},
		{path: "link-file", noFollow: true, want: "link-file"},
		{path: "link-abs-in/b.txt", want: "a/b.txt"},
		{path: "a/up/file.txt", want: "file.txt"},
		{path: "a/sub/up2/b.txt", want: "a/b.txt"},
		{path: "link-dir/../file.txt", want: "file.txt"}, // .. after a link is taken from its target
		{path: "dangling", want: "nowhere"},
		{path: "dangling", noFollow: true, want: "dangling"},

		{path: "..", code: CodeInvalidPath},
		{path: "../x", code: CodeInvalidPath},
		{path: "a/../../x", code: CodeInvalidPath},
		{path: "/../etc/passwd", code: CodeInvalidPath},
		{path: "link-etc", code: CodeInvalidPath},
		{path: "link-etc", noFollow: true, want: "link-etc"},
		{path: "link-etc/passwd", code: CodeInvalidPath},
		{path: "link-etc/passwd", noFollow: true, code: CodeInvalidPath},
		{path: "link-outside/secret", code: CodeInvalidPath},
		{path: "chain1/secret", code: CodeInvalidPath},
		{path: "chain1", code: CodeInvalidPath},
		{path: "loopA", code: CodeInvalidPath},
		{path: "loopA/x", code: CodeInvalidPath},
		{path: "self", code: CodeInvalidPath},
		{path: "missing/../x", code: CodeNotFound},
		{path: "file.txt/x", code: CodeNotDir},
		{path: "a\x00b", code: CodeInvalidPath},
		{path: "a/\xff", code: CodeInvalidPath},
		{path: strings.Repeat("a/", MaxPathBytes/2+1), code: CodeInvalidPath},
		{path: strings.Repeat("n", MaxNameBytes+1), code: CodeInvalidPath},
		{path: strings.Repeat("n", MaxNameBytes), want: strings.Repeat("n", MaxNameBytes)},
		{path: ".conman", code: CodeInvalidPath},
		{path: "/.conman", code: CodeInvalidPath},
		{path: ".conman/keys/k.key", code: CodeInvalidPath},
		{path: "./.conman/../.conman/x", code: CodeInvalidPath},
		{path: ".conman/../file.txt", code: CodeInvalidPath},
		{path: "a/../.conman", code: CodeInvalidPath},
		{path: "link-data", code: CodeInvalidPath},
		{path: "link-data", noFollow: true, want: "link-data"},
		{path: "link-data/keys/k.key", code: CodeInvalidPath},
		{path: "link-empty", code: CodeInvalidPath},
	}
	for _, tt := range tests {
		name := tt.path
		if tt.noFollow {
			name += " (nofollow)"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			resolve := w.Resolve
			if tt.noFollow {
				resolve = w.ResolveNoFollow
			}
			got, err := resolve(tt.path)
			if c := Code(err); c != tt.code {
				t.Fatalf("Resolve(%q) = %q, %v (code %v), want code %v", tt.path, got, err, c, tt.code)
			}
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || !strings.HasPrefix(err.Error(), "resolve ") {
					t.Errorf("error %q is not a resolve *Error", err)
				}
				return
			}
			if got != tt.want {
				t.Errorf("Resolve(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

func TestResolveDataDirOutside(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	w, err := Open(Options{Root: ws, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got, err := w.Resolve(".conman/x"); err != nil || got != ".conman/x" {
		t.Errorf("Resolve = %q, %v; a data dir outside the workspace reserves nothing inside", got, err)
	}
}

func TestResolveWholeWorkspaceIsDataDir(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	w, err := Open(Options{Root: ws, DataDir: ws})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, p := range []string{"", "x", "a/b"} {
		if _, err := w.Resolve(p); Code(err) != CodeInvalidPath {
			t.Errorf("Resolve(%q): %v, want invalid path", p, err)
		}
	}
}

func TestCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want ErrorCode
	}{
		{nil, CodeOK},
		{errEscapes, CodeInvalidPath},
		{syscall.ENAMETOOLONG, CodeInvalidPath},
		{syscall.ELOOP, CodeInvalidPath},
		{syscall.EINVAL, CodeInvalid},
		{Invalid("bad"), CodeInvalid},
		{syscall.ENOENT, CodeNotFound},
		{os.ErrNotExist, CodeNotFound},
		{ErrNoTransfer, CodeNotFound},
		{syscall.EEXIST, CodeExists},
		{syscall.ENOTEMPTY, CodeExists},
		{syscall.ENOTDIR, CodeNotDir},
		{syscall.EISDIR, CodeIsDir},
		{tooLarge("x"), CodeTooLarge},
		{syscall.EFBIG, CodeTooLarge},
		{syscall.ENOSPC, CodeNoSpace},
		{syscall.EDQUOT, CodeNoSpace},
		{syscall.EACCES, CodePermission},
		{syscall.EPERM, CodePermission},
		{syscall.EROFS, CodePermission},
		{syscall.EIO, CodeInternal},
		{errors.New("other"), CodeInternal},
		{&Error{Op: "read", Path: "x", Err: syscall.ENOENT}, CodeNotFound},
		{&os.PathError{Op: "open", Path: "/host/x", Err: syscall.EISDIR}, CodeIsDir},
	}
	for _, tt := range tests {
		if got := Code(tt.err); got != tt.want {
			t.Errorf("Code(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Op: "read", Path: "/a/b", Err: syscall.ENOENT}, "read a/b: no such file or directory"},
		{&Error{Op: "readdir", Path: "/", Err: syscall.ENOTDIR}, "readdir /: not a directory"},
		{&Error{Op: "move", Path: "a", Dest: "b", Err: syscall.EEXIST}, "move a b: file exists"},
		{&Error{Op: "read", Path: "a\x00b", Err: errNUL}, `read "a\x00b": path contains a NUL byte`},
		{&Error{Op: "read", Path: "\xff", Err: errNotUTF8}, `read "\xff": path is not valid UTF-8`},
		{&Error{Op: "read", Path: strings.Repeat("é", 200), Err: syscall.ENAMETOOLONG}, "read " + strings.Repeat("é", 128) + "…: file name too long"},
		{&Error{Op: "write", Path: "x", Err: bare(&os.PathError{Op: "openat", Path: "/host/ws/x", Err: syscall.EACCES})}, "write x: permission denied"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// FuzzResolve checks the path sanitiser never panics, never returns a path
// that is not local, and never returns one that leads outside the workspace
// or into the data dir when the host follows it.
func FuzzResolve(f *testing.F) {
	for _, seed := range []string{"", "/", "a/b.txt", "../x", "a/../../x", "/etc/passwd", "link-etc/passwd", "chain1/secret", "loopA", ".conman/keys", "./.conman/../.conman/x", "link-data/keys", "a/up/up/x", "a\x00b", "\xff", "link-dir/../link-outside"} {
		f.Add(seed, false)
	}
	w, ws := testTree(f)
	hostRoot, err := filepath.EvalSymlinks(ws)
	if err != nil {
		f.Fatal(err)
	}
	dataDir := filepath.Join(hostRoot, ".conman")
	f.Fuzz(func(t *testing.T, p string, noFollow bool) {
		resolve := w.Resolve
		if noFollow {
			resolve = w.ResolveNoFollow
		}
		rel, err := resolve(p)
		if err != nil {
			if Code(err) == CodeInternal {
				t.Fatalf("Resolve(%q): internal error %v", p, err)
			}
			return
		}
		if rel != "." && !filepath.IsLocal(rel) {
			t.Fatalf("Resolve(%q) = %q, not local", p, rel)
		}
		host := filepath.Join(hostRoot, rel)
		if noFollow {
			host = filepath.Join(hostRoot, filepath.Dir(rel))
		}
		real, err := filepath.EvalSymlinks(host)
		if err != nil {
			return // not there (yet)
		}
		if real != hostRoot && !strings.HasPrefix(real, hostRoot+"/") {
			t.Fatalf("Resolve(%q) = %q, which leads to %s outside the workspace", p, rel, real)
		}
		if real == dataDir || strings.HasPrefix(real, dataDir+"/") {
			t.Fatalf("Resolve(%q) = %q, which leads into the data dir (%s)", p, rel, real)
		}
	})
}
