package files_test

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fsnotify/fsnotify"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/files"
	"github.com/conman-dev/conman/services/workspace"
)

// opCase is one request against a fresh directory of its own: "{}" in
// paths and texts stands for that directory.
type opCase struct {
	name string
	// files are created first: "dir/" is a directory, "name=content" a
	// file, "name->target" a symbolic link.
	files []string
	cmd   func(at func(string) string) *api.Command
	// err is the wanted error text; "" wants success.
	err string
	// check looks at the reply and the disk.
	check func(t *testing.T, s *session, at func(string) string, reply *api.Command)
}

func TestOperations(t *testing.T) {
	t.Parallel()
	s := start(t)
	tests := []opCase{
		{
			name:  "read",
			files: []string{"a.txt=hello"},
			cmd:   func(at func(string) string) *api.Command { return read(at("a.txt")) },
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				if f := r.GetFile(); f == nil || f.Path != at("a.txt") || string(f.Content) != "hello" {
					t.Errorf("got %v, want file{%s, hello}", r, at("a.txt"))
				}
			},
		},
		{
			name:  "read with a leading slash",
			files: []string{"a.txt=hello"},
			cmd:   func(at func(string) string) *api.Command { return read("/" + at("a.txt")) },
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				if string(r.GetFile().GetContent()) != "hello" {
					t.Errorf("got %v", r)
				}
			},
		},
		{
			name:  "read through a symlink inside",
			files: []string{"real/a.txt=linked", "link->real"},
			cmd:   func(at func(string) string) *api.Command { return read(at("link/a.txt")) },
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				if string(r.GetFile().GetContent()) != "linked" {
					t.Errorf("got %v", r)
				}
			},
		},
		{
			name:  "read empty",
			files: []string{"empty="},
			cmd:   func(at func(string) string) *api.Command { return read(at("empty")) },
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				if f := r.GetFile(); f == nil || len(f.Content) != 0 {
					t.Errorf("got %v", r)
				}
			},
		},
		{name: "read missing", cmd: func(at func(string) string) *api.Command { return read(at("nope")) }, err: "read {}/nope: no such file or directory"},
		{name: "read a directory", files: []string{"d/"}, cmd: func(at func(string) string) *api.Command { return read(at("d")) }, err: "read {}/d: is a directory"},
		{name: "read through a file", files: []string{"f=x"}, cmd: func(at func(string) string) *api.Command { return read(at("f/x")) }, err: "read {}/f/x: not a directory"},
		{
			name:  "readdir",
			files: []string{"z.txt=1", "a/", "m b.txt=2", "link->a", TempPrefixFile()},
			cmd:   func(at func(string) string) *api.Command { return readdir(at("")) },
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				var got []string
				for _, f := range r.GetFiles().GetFiles() {
					got = append(got, fmt.Sprintf("%s:%v", f.Path, f.Type))
				}
				want := []string{"a:DIRECTORY", "link:DIRECTORY", "m b.txt:REGULAR", "z.txt:REGULAR"}
				if !slices.Equal(got, want) {
					t.Errorf("readdir = %v, want %v (sorted, temporary files hidden)", got, want)
				}
				os.Remove(filepath.Join(s.d.Workspace, at(strings.Split(TempPrefixFile(), "=")[0])))
			},
		},
		{name: "readdir a file", files: []string{"f=x"}, cmd: func(at func(string) string) *api.Command { return readdir(at("f")) }, err: "readdir {}/f: not a directory"},
		{name: "readdir missing", cmd: func(at func(string) string) *api.Command { return readdir(at("nope")) }, err: "readdir {}/nope: no such file or directory"},
		{
			name: "write creates parents",
			cmd:  func(at func(string) string) *api.Command { return write(at("x/y/z.txt"), "deep") },
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				if got, _ := s.disk(at("x/y/z.txt")); got != "deep" {
					t.Errorf("disk = %q", got)
				}
			},
		},
		{
			name:  "write replaces and keeps the mode",
			files: []string{"f=old"},
			cmd: func(at func(string) string) *api.Command {
				os.Chmod(filepath.Join(s.d.Workspace, at("f")), 0o600)
				return write(at("f"), "new")
			},
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				if got, _ := s.disk(at("f")); got != "new" {
					t.Errorf("disk = %q", got)
				}
				if fi, err := os.Stat(filepath.Join(s.d.Workspace, at("f"))); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("mode: %v %v, want -rw------- kept", fi.Mode(), err)
				}
			},
		},
		{name: "write onto a directory", files: []string{"d/"}, cmd: func(at func(string) string) *api.Command { return write(at("d"), "x") }, err: "write {}/d: is a directory"},
		{name: "write under a file", files: []string{"f=x"}, cmd: func(at func(string) string) *api.Command { return write(at("f/g"), "x") }, err: "write {}/f/g: not a directory"},
		{
			name: "mkdir creates parents",
			cmd:  func(at func(string) string) *api.Command { return mkdir(at("p/q/r")) },
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				if fi, err := os.Stat(filepath.Join(s.d.Workspace, at("p/q/r"))); err != nil || !fi.IsDir() {
					t.Errorf("stat: %v", err)
				}
			},
		},
		{name: "mkdir of an existing directory", files: []string{"d/"}, cmd: func(at func(string) string) *api.Command { return mkdir(at("d")) }},
		{name: "mkdir over a file", files: []string{"f=x"}, cmd: func(at func(string) string) *api.Command { return mkdir(at("f")) }, err: "mkdir {}/f: file exists"},
		{name: "mkdir under a file", files: []string{"f=x"}, cmd: func(at func(string) string) *api.Command { return mkdir(at("f/g")) }, err: "mkdir {}/f/g: not a directory"},
		{
			name:  "remove a file",
			files: []string{"f=x"},
			cmd:   func(at func(string) string) *api.Command { return remove(at("f")) },
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				if _, ok := s.disk(at("f")); ok {
					t.Error("still there")
				}
			},
		},
		{
			name:  "remove a whole directory",
			files: []string{"d/e/f=x", "d/g=y"},
			cmd:   func(at func(string) string) *api.Command { return remove(at("d")) },
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				if _, err := os.Lstat(filepath.Join(s.d.Workspace, at("d"))); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("still there: %v", err)
				}
			},
		},
		{
			name:  "remove a link removes the link",
			files: []string{"t=target", "l->t"},
			cmd:   func(at func(string) string) *api.Command { return remove(at("l")) },
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				if got, _ := s.disk(at("t")); got != "target" {
					t.Errorf("target: %q", got)
				}
			},
		},
		{name: "remove missing", cmd: func(at func(string) string) *api.Command { return remove(at("nope")) }, err: "remove {}/nope: no such file or directory"},
		{name: "tryRemove missing", cmd: func(at func(string) string) *api.Command { return tryRemove(at("nope/deeper")) }},
		{
			name:  "tryRemove a directory",
			files: []string{"d/e=x"},
			cmd:   func(at func(string) string) *api.Command { return tryRemove(at("d")) },
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				if _, ok := s.disk(at("d/e")); ok {
					t.Error("still there")
				}
			},
		},
		{
			name:  "move a file",
			files: []string{"a=content"},
			cmd:   func(at func(string) string) *api.Command { return move(at("a"), at("b")) },
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				if got, _ := s.disk(at("b")); got != "content" {
					t.Errorf("b = %q", got)
				}
				if _, ok := s.disk(at("a")); ok {
					t.Error("a still there")
				}
			},
		},
		{
			name:  "move a directory",
			files: []string{"d/e/f=x"},
			cmd:   func(at func(string) string) *api.Command { return move(at("d"), at("moved")) },
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				if got, _ := s.disk(at("moved/e/f")); got != "x" {
					t.Errorf("moved/e/f = %q", got)
				}
			},
		},
		{name: "move onto itself", files: []string{"a=x"}, cmd: func(at func(string) string) *api.Command { return move(at("a"), "/"+at("a")) }},
		{
			name:  "move onto an existing file",
			files: []string{"a=1", "b=2"},
			cmd:   func(at func(string) string) *api.Command { return move(at("a"), at("b")) },
			err:   "move {}/a {}/b: file exists",
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				if got, _ := s.disk(at("b")); got != "2" {
					t.Errorf("b replaced: %q", got)
				}
			},
		},
		{name: "move onto an existing directory", files: []string{"a=1", "d/"}, cmd: func(at func(string) string) *api.Command { return move(at("a"), at("d")) }, err: "move {}/a {}/d: file exists"},
		{name: "move missing", cmd: func(at func(string) string) *api.Command { return move(at("nope"), at("b")) }, err: "move {}/nope {}/b: no such file or directory"},
		{name: "move into a missing directory", files: []string{"a=1"}, cmd: func(at func(string) string) *api.Command { return move(at("a"), at("no/b")) }, err: "move {}/a {}/no/b: no such file or directory"},
		{name: "move into itself", files: []string{"d/"}, cmd: func(at func(string) string) *api.Command { return move(at("d"), at("d/e")) }, err: "move {}/d {}/d/e: cannot move a directory into itself"},
		{
			name:  "stat a file",
			files: []string{"f=12345"},
			cmd:   func(at func(string) string) *api.Command { return stat(at("f")) },
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				res := r.GetStatRes()
				fi, _ := os.Stat(filepath.Join(s.d.Workspace, at("f")))
				if res == nil || !res.Exists || res.Type != api.File_REGULAR || res.Size != 5 || res.FileMode != "-rw-r--r--" || res.ModTime != fi.ModTime().Unix() {
					t.Errorf("got %v", r)
				}
			},
		},
		{
			name:  "stat a directory",
			files: []string{"d/"},
			cmd:   func(at func(string) string) *api.Command { return stat(at("d")) },
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				if res := r.GetStatRes(); res == nil || !res.Exists || res.Type != api.File_DIRECTORY || res.FileMode != "drwxr-xr-x" {
					t.Errorf("got %v", r)
				}
			},
		},
		{
			name: "stat missing",
			cmd:  func(at func(string) string) *api.Command { return stat(at("nope/x")) },
			check: func(t *testing.T, s *session, at func(string) string, r *api.Command) {
				if res := r.GetStatRes(); res == nil || res.Exists {
					t.Errorf("got %v, want statRes{exists:false}", r)
				}
			},
		},
		{name: "persist", files: []string{"f=x"}, cmd: func(at func(string) string) *api.Command { return persist(at("f")) }},
		{name: "persist missing", cmd: func(at func(string) string) *api.Command { return persist(at("nope")) }, err: "persist {}/nope: no such file or directory"},
		{
			name: "unsupported body",
			cmd: func(at func(string) string) *api.Command {
				return &api.Command{Body: &api.Command_Debug{Debug: &api.Debug{Text: "x"}}}
			},
			err: "unsupported command debug on service files",
		},
		{name: "transfer chunk for no transfer", cmd: func(at func(string) string) *api.Command { return transferChunk("nope", []byte("x")) }, err: "transfer nope: no such transfer"},
		{name: "transfer complete for no transfer", cmd: func(at func(string) string) *api.Command { return transferComplete("nope", 0) }, err: "transfer nope: no such transfer"},
		{name: "transfer cancel for no transfer", cmd: func(at func(string) string) *api.Command { return transferCancel("nope") }},
		{name: "transfer of a negative size", cmd: func(at func(string) string) *api.Command { return transferStart(at("f"), -1) }, err: "upload {}/f: negative size"},
		{name: "transfer onto a directory", files: []string{"d/"}, cmd: func(at func(string) string) *api.Command { return transferStart(at("d"), 1) }, err: "upload {}/d: is a directory"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := s.fork(t)
			dir := fmt.Sprintf("ops/%02d", i)
			at := func(p string) string {
				if p == "" {
					return dir
				}
				return dir + "/" + p
			}
			s.put(dir+"/", "")
			for _, f := range tt.files {
				if name, target, ok := strings.Cut(f, "->"); ok {
					if err := os.Symlink(target, filepath.Join(s.d.Workspace, at(name))); err != nil {
						t.Fatal(err)
					}
					continue
				}
				name, content, _ := strings.Cut(f, "=")
				s.put(at(name), content)
			}
			reply := s.do(tt.cmd(at))
			if tt.err != "" {
				want := strings.ReplaceAll(tt.err, "{}", dir)
				if e, ok := reply.Body.(*api.Command_Error); !ok || e.Error != want {
					t.Fatalf("got %v, want error %q", reply, want)
				}
			} else if e, ok := reply.Body.(*api.Command_Error); ok {
				t.Fatalf("got error %q", e.Error)
			}
			if tt.check != nil {
				tt.check(t, s, at, reply)
			}
			noTemps(t, filepath.Join(s.d.Workspace, dir))
		})
	}
}

// TempPrefixFile is a readdir fixture: a daemon's temporary file.
func TempPrefixFile() string { return workspace.TempPrefix + "0011223344556677=partial" }

func TestGCSFilesIsFiles(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	s := dial(t, d, conmantest.User, files.GCSName)
	s.ok(write("g.txt", "via gcsfiles"))
	if got := s.do(read("g.txt")).GetFile().GetContent(); string(got) != "via gcsfiles" {
		t.Errorf("read = %q", got)
	}
}

func TestReadOnlySession(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	rw := dial(t, d, conmantest.User, files.Name)
	rw.put("keep.txt", "keep")
	rw.put("dir/", "")
	ro := dial(t, d, auth.Claims{UserID: 8, UserName: "reader", ReadOnly: true}, files.Name)
	for _, cmd := range []*api.Command{
		write("keep.txt", "changed"),
		write("new.txt", "x"),
		mkdir("newdir"),
		remove("keep.txt"),
		tryRemove("keep.txt"),
		move("keep.txt", "moved.txt"),
		persist("keep.txt"),
		transferStart("up.bin", 1),
		transferChunk("x", []byte("x")),
		transferComplete("x", 0),
	} {
		if text := ro.fails(cmd); text != "permission denied" {
			t.Errorf("%v: got %q, want permission denied", cmd.Body, text)
		}
	}
	if got, _ := rw.disk("keep.txt"); got != "keep" {
		t.Errorf("keep.txt = %q", got)
	}
	for _, name := range []string{"new.txt", "newdir", "moved.txt", "up.bin"} {
		if _, err := os.Lstat(filepath.Join(d.Workspace, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a refused mutation: %v", name, err)
		}
	}
	noTemps(t, d.Workspace)
	// Reading is allowed.
	if got := ro.do(read("keep.txt")).GetFile().GetContent(); string(got) != "keep" {
		t.Errorf("read = %q", got)
	}
	if ro.do(readdir("/")).GetFiles() == nil || ro.do(stat("keep.txt")).GetStatRes() == nil {
		t.Error("readdir and stat refused to a read-only session")
	}
}

func TestLargeFiles(t *testing.T) {
	t.Parallel()
	s := start(t)
	limit := workspace.DefaultMaxReadSize
	big := bytes.Repeat([]byte{'x'}, limit)
	s.ok(write("limit.bin", string(big)))
	if got := s.do(read("limit.bin")).GetFile().GetContent(); len(got) != limit {
		t.Errorf("read %d bytes, want %d", len(got), limit)
	}
	if err := os.WriteFile(filepath.Join(s.d.Workspace, "over.bin"), append(big, 'y'), 0o644); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("read over.bin: file too large (%d bytes, the limit is %d)", limit+1, limit)
	if text := s.fails(read("over.bin")); text != want {
		t.Errorf("got %q, want %q", text, want)
	}
	// The session survived the big reply: its queue took it.
	if _, err := s.c.Ping(s.ctx); err != nil {
		t.Fatal(err)
	}
}

func TestTransfer(t *testing.T) {
	t.Parallel()
	s := start(t)
	content := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	sum := crc32.ChecksumIEEE(content)

	t.Run("ok", func(t *testing.T) {
		s := s.fork(t)
		s.put("up/old.bin", "old")
		os.Chmod(filepath.Join(s.d.Workspace, "up", "old.bin"), 0o640)
		id := s.startTransfer("up/old.bin", int64(len(content)))
		for i := 0; i < len(content); i += 300 << 10 {
			s.ok(transferChunk(id, content[i:min(i+300<<10, len(content))]))
		}
		if got, _ := s.disk("up/old.bin"); got != "old" {
			t.Error("the target changed before the transfer completed")
		}
		s.ok(transferComplete(id, sum))
		if got, _ := s.disk("up/old.bin"); got != string(content) {
			t.Error("content differs")
		}
		if fi, _ := os.Stat(filepath.Join(s.d.Workspace, "up", "old.bin")); fi.Mode().Perm() != 0o640 {
			t.Errorf("mode %v, want kept", fi.Mode())
		}
		if text := s.fails(transferChunk(id, []byte("x"))); !strings.Contains(text, "no such transfer") {
			t.Errorf("chunk after completion: %q", text)
		}
	})
	failures := []struct {
		name string
		size int64
		sum  uint32
		want string
	}{
		{"checksum mismatch", int64(len(content)), sum ^ 1, fmt.Sprintf("upload up/bad.bin: checksum mismatch: received data has crc32 %08x, expected %08x", sum, sum^1)},
		{"short", int64(len(content)) + 1, sum, fmt.Sprintf("upload up/bad.bin: size mismatch: received %d of %d bytes", len(content), len(content)+1)},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			s := s.fork(t)
			id := s.startTransfer("up/bad.bin", tt.size)
			s.ok(transferChunk(id, content))
			if text := s.fails(transferComplete(id, tt.sum)); text != tt.want {
				t.Errorf("got %q, want %q", text, tt.want)
			}
			if _, ok := s.disk("up/bad.bin"); ok {
				t.Error("the target exists")
			}
			noTemps(t, s.d.Workspace)
		})
	}
	t.Run("too much", func(t *testing.T) {
		s := s.fork(t)
		id := s.startTransfer("up/bad.bin", 4)
		if text := s.fails(transferChunk(id, []byte("12345"))); text != "upload up/bad.bin: file too large (more than the announced 4 bytes)" {
			t.Errorf("got %q", text)
		}
		noTemps(t, s.d.Workspace)
	})
	t.Run("cancel", func(t *testing.T) {
		s := s.fork(t)
		id := s.startTransfer("up/cancel.bin", 10)
		s.ok(transferChunk(id, []byte("12345")))
		s.ok(transferCancel(id))
		noTemps(t, s.d.Workspace)
		if _, ok := s.disk("up/cancel.bin"); ok {
			t.Error("the target exists")
		}
	})
	t.Run("bounded per channel", func(t *testing.T) {
		s := s.fork(t)
		var ids []string
		for i := range files.DefaultMaxTransfers {
			ids = append(ids, s.startTransfer(fmt.Sprintf("up/par%d", i), 1))
		}
		want := fmt.Sprintf("upload up/one-more: too many uploads in progress on this channel (at most %d)", files.DefaultMaxTransfers)
		if text := s.fails(transferStart("up/one-more", 1)); text != want {
			t.Errorf("got %q, want %q", text, want)
		}
		s.ok(transferCancel(ids[0]))
		ids[0] = s.startTransfer("up/one-more", 1)
		for _, id := range ids {
			s.ok(transferCancel(id))
		}
		noTemps(t, s.d.Workspace)
	})
}

// TestTransferRemovedWhenChannelCloses checks that a partial upload does
// not outlive its channel.
func TestTransferRemovedWhenChannelCloses(t *testing.T) {
	t.Parallel()
	s := start(t)
	s.put("up/", "")
	id := s.startTransfer("up/partial.bin", 100)
	s.ok(transferChunk(id, []byte("partial")))
	temps := tempFiles(t, filepath.Join(s.d.Workspace, "up"))
	if len(temps) != 1 {
		t.Fatalf("temporary files: %v, want one", temps)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(filepath.Join(s.d.Workspace, "up")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ch.Close(s.ctx, api.CloseChannel_TRY_CLOSE); err != nil {
		t.Fatal(err)
	}
	for {
		if len(tempFiles(t, filepath.Join(s.d.Workspace, "up"))) == 0 {
			break
		}
		select {
		case <-w.Events:
		case err := <-w.Errors:
			t.Fatal(err)
		case <-s.ctx.Done():
			t.Fatal("the temporary file outlived the channel")
		}
	}
	if _, ok := s.disk("up/partial.bin"); ok {
		t.Error("the target exists")
	}
}

// TestTransferRemovedAtShutdown checks the same for a daemon that stops.
func TestTransferRemovedAtShutdown(t *testing.T) {
	t.Parallel()
	s := start(t)
	id := s.startTransfer("partial.bin", 100)
	s.ok(transferChunk(id, []byte("partial")))
	if err := s.d.Shutdown(s.ctx); err != nil {
		t.Fatal(err)
	}
	noTemps(t, s.d.Workspace)
}

func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if workspace.IsTempName(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names
}

// fakeInterceptor stands for the collaborative editing service.
type fakeInterceptor struct {
	mu      sync.Mutex
	handled bool
	err     error
	writes  []string
}

func (f *fakeInterceptor) InterceptWrite(path string, content []byte) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes = append(f.writes, path+"="+string(content))
	return f.handled, f.err
}

func (f *fakeInterceptor) set(handled bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handled, f.err = handled, err
}

func (f *fakeInterceptor) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.writes)
}

func TestWriteInterceptor(t *testing.T) {
	t.Parallel()
	s := start(t)
	s.put("doc.txt", "on disk")
	s.put("alias/", "")
	if err := os.Symlink("../doc.txt", filepath.Join(s.d.Workspace, "alias", "doc.txt")); err != nil {
		t.Fatal(err)
	}
	fake := &fakeInterceptor{handled: true}
	hooks := workspace.InterceptorsFor(s.d.Workspace)
	if err := hooks.Register("doc.txt", fake); err != nil {
		t.Fatal(err)
	}
	defer hooks.Unregister("doc.txt", fake)

	s.ok(write("/doc.txt", "edit 1"))
	s.ok(write("alias/doc.txt", "edit 2"))
	id := s.startTransfer("doc.txt", 6)
	s.ok(transferChunk(id, []byte("edit 3")))
	s.ok(transferComplete(id, crc32.ChecksumIEEE([]byte("edit 3"))))
	if got, _ := s.disk("doc.txt"); got != "on disk" {
		t.Errorf("an intercepted write reached the disk: %q", got)
	}
	if got, want := fake.got(), []string{"doc.txt=edit 1", "doc.txt=edit 2", "doc.txt=edit 3"}; !slices.Equal(got, want) {
		t.Errorf("interceptor saw %q, want %q", got, want)
	}
	noTemps(t, s.d.Workspace)

	fake.set(true, errors.New("document is closing"))
	if text := s.fails(write("doc.txt", "x")); text != "write doc.txt: document is closing" {
		t.Errorf("got %q", text)
	}
	fake.set(false, nil)
	s.ok(write("doc.txt", "declined"))
	if got, _ := s.disk("doc.txt"); got != "declined" {
		t.Errorf("a declined write did not reach the disk: %q", got)
	}
	s.ok(write("other.txt", "not hooked"))
	for _, w := range fake.got() {
		if strings.HasPrefix(w, "other.txt") {
			t.Errorf("interceptor saw %q: other paths must not reach it", w)
		}
	}
}

// TestPermission checks the permission class: a read-only mount as root,
// a directory without write permission otherwise.
func TestPermission(t *testing.T) {
	t.Parallel()
	s := start(t)
	s.put("locked/f", "x")
	dir := filepath.Join(s.d.Workspace, "locked")
	if os.Geteuid() == 0 {
		if err := mountTmpfs(dir, true, "size=64k"); err != nil {
			t.Skipf("as root, permissions need a read-only mount, and mounting failed: %v", err)
		}
		t.Cleanup(func() { unmount(dir) })
	} else {
		os.Chmod(dir, 0o555)
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
	}
	text := s.fails(write("locked/g", "x"))
	if !strings.HasPrefix(text, "write locked/g: ") || !(strings.HasSuffix(text, "permission denied") || strings.HasSuffix(text, "read-only file system")) {
		t.Errorf("got %q, want permission denied or read-only file system", text)
	}
}

// TestSessionsSeeEachOther checks that a second session reads what the
// first wrote (the service keeps no per-session state).
func TestSessionsSeeEachOther(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	a := dial(t, d, conmantest.User, files.Name)
	b := dial(t, d, auth.Claims{UserID: 9, UserName: "bob"}, files.Name)
	a.ok(write("shared.txt", "from a"))
	if got := b.do(read("shared.txt")).GetFile().GetContent(); string(got) != "from a" {
		t.Errorf("b read %q", got)
	}
	b.ok(move("shared.txt", "moved.txt"))
	if res := a.do(stat("shared.txt")).GetStatRes(); res.GetExists() {
		t.Error("a still sees shared.txt")
	}
}
