package files_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman"
)

// treeState records names, sizes, modes and times under dir, to tell
// whether anything there changed.
func treeState(t *testing.T, dir string) []string {
	t.Helper()
	var state []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		state = append(state, fmt.Sprintf("%s %v %v %d", p, fi.Mode(), fi.ModTime(), fi.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// accessWatch reports any access at all (open, read, write, attribute
// change, creation, removal) under a directory, through inotify.
type accessWatch struct{ fd int }

func watchAccess(t *testing.T, dir string) *accessWatch {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_ALL_EVENTS); err != nil {
		t.Fatal(err)
	}
	return &accessWatch{fd}
}

// events returns the names of what happened since the watch began.
func (w *accessWatch) events(t *testing.T) []string {
	t.Helper()
	var out []string
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.Read(w.fd, buf)
		if errors.Is(err, syscall.EAGAIN) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(bytes.TrimRight(buf[off+syscall.SizeofInotifyEvent:off+syscall.SizeofInotifyEvent+int(ev.Len)], "\x00"))
			out = append(out, fmt.Sprintf("%q mask %#x", name, ev.Mask))
			off += syscall.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

func fileDigest(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return string(sum[:]) + fi.ModTime().String() + fi.Mode().String()
}

// TestTraversal sends every operation with every kind of path that must not
// leave the workspace or reach the data dir, and checks each is refused
// with a clear error and that nothing outside was touched.
func TestTraversal(t *testing.T) {
	t.Parallel()
	s := start(t)
	ws := s.d.Workspace
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	relOutside, err := filepath.Rel(ws, outside)
	if err != nil {
		t.Fatal(err)
	}
	s.put("victim.txt", "victim")
	s.put("inner/", "")
	for name, target := range map[string]string{
		"to-etc":     "/etc",
		"to-outside": outside,
		"chain1":     "chain2",
		"chain2":     "inner/../" + relOutside,
		"loopA":      "loopB",
		"loopB":      "loopA",
		"inner/up":   "../..",
		"dd":         conman.DefaultDataDirName,
	} {
		if err := os.Symlink(target, filepath.Join(ws, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}

	const (
		escapes  = "path escapes from the workspace"
		loop     = "too many levels of symbolic links"
		nul      = "path contains a NUL byte"
		tooLong  = "file name too long"
		reserved = "path is reserved for the daemon's data"
	)
	paths := []struct {
		path, reason string
	}{
		{"../x", escapes},
		{"a/../../x", escapes},
		{"/../" + filepath.Base(outside) + "/secret", escapes},
		{relOutside + "/secret", escapes},
		{"to-etc/passwd", escapes},
		{"to-outside/secret", escapes},
		{"chain1/secret", escapes},
		{"inner/up/x", escapes},
		{"loopA/x", loop},
		{"a\x00b", nul},
		{strings.Repeat("a/", 2100), tooLong},
		{strings.Repeat("n", 256), tooLong},
		{".conman", reserved},
		{"/.conman/workspace-id", reserved},
		{".conman/keys", reserved},
		{"./.conman/../.conman/x", reserved},
		{".conman/../victim.txt", reserved},
		{"dd", reserved},
		{"dd/keys", reserved},
		{"inner/../dd/workspace-id", reserved},
	}
	ops := []struct {
		name string
		cmd  func(p string) *api.Command
	}{
		{"read", read},
		{"readdir", readdir},
		{"stat", stat},
		{"write", func(p string) *api.Command { return write(p, "pwned") }},
		{"mkdir", mkdir},
		{"remove", remove},
		{"tryRemove", tryRemove},
		{"move from", func(p string) *api.Command { return move(p, "moved") }},
		{"move to", func(p string) *api.Command { return move("victim.txt", p) }},
		{"persist", persist},
		{"transferStart", func(p string) *api.Command { return transferStart(p, 5) }},
	}
	// A final symbolic link is itself removed or moved, not followed:
	// those operations act on "dd" itself (tested below).
	nofollow := map[string]bool{"remove": true, "tryRemove": true, "move from": true, "move to": true}

	access := watchAccess(t, outside)
	parent := filepath.Dir(ws)
	parentBefore, _ := os.ReadDir(parent)
	dataBefore := treeState(t, s.d.DataDir)
	passwdBefore := fileDigest(t, "/etc/passwd")

	for _, tt := range paths {
		for _, op := range ops {
			if tt.path == "dd" && nofollow[op.name] {
				continue
			}
			text := s.fails(op.cmd(tt.path))
			if !strings.HasSuffix(text, ": "+tt.reason) {
				t.Errorf("%s %q: got %q, want it to end in %q", op.name, tt.path, text, tt.reason)
			}
			if strings.Contains(text, ws) || strings.Contains(text, outside) {
				t.Errorf("%s %q: %q shows a host path", op.name, tt.path, text)
			}
		}
	}

	if got := access.events(t); len(got) > 0 {
		t.Errorf("the directory outside was accessed: %q", got)
	}
	if got := treeState(t, s.d.DataDir); !slices.Equal(got, dataBefore) {
		t.Errorf("the data dir changed:\n%q\nwant\n%q", got, dataBefore)
	}
	if parentAfter, _ := os.ReadDir(parent); len(parentAfter) != len(parentBefore) {
		t.Errorf("the workspace's parent changed: %v, was %v", parentAfter, parentBefore)
	}
	if got, _ := s.disk("victim.txt"); got != "victim" {
		t.Errorf("victim.txt = %q", got)
	}
	if _, err := os.Lstat(filepath.Join(ws, "moved")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("moved exists: %v", err)
	}
	noTemps(t, ws)

	t.Run("leading slash is the workspace root", func(t *testing.T) {
		s := s.fork(t)
		if text := s.fails(read("/etc/passwd")); text != "read etc/passwd: no such file or directory" {
			t.Errorf("got %q", text)
		}
		s.ok(write("/etc/passwd", "workspace file"))
		if got, _ := s.disk("etc/passwd"); got != "workspace file" {
			t.Errorf("<ws>/etc/passwd = %q", got)
		}
		if fileDigest(t, "/etc/passwd") != passwdBefore {
			t.Error("the host's /etc/passwd changed")
		}
		s.ok(remove("/etc"))
	})
	t.Run("a final link is removed, not followed", func(t *testing.T) {
		s := s.fork(t)
		s.ok(remove("dd"))
		if _, err := os.Stat(filepath.Join(s.d.DataDir, "workspace-id")); err != nil {
			t.Errorf("data dir: %v", err)
		}
		s.ok(move("to-etc", "etc-link"))
		if target, err := os.Readlink(filepath.Join(ws, "etc-link")); err != nil || target != "/etc" {
			t.Errorf("etc-link = %q, %v", target, err)
		}
	})
	t.Run("data dir hidden from its parent", func(t *testing.T) {
		s := s.fork(t)
		for _, f := range s.do(readdir("/")).GetFiles().GetFiles() {
			if f.Path == conman.DefaultDataDirName {
				t.Errorf("readdir / lists the data dir")
			}
		}
	})
	t.Run("names with spaces and newlines", func(t *testing.T) {
		s := s.fork(t)
		for _, name := range []string{"with space.txt", "new\nline.txt", "dir with space/tab\there.txt", "  ", "-rf", "back\\slash"} {
			s.ok(write(name, "odd "+name))
			if got := s.do(read(name)).GetFile().GetContent(); string(got) != "odd "+name {
				t.Errorf("read %q = %q", name, got)
			}
			if got, _ := s.disk(name); got != "odd "+name {
				t.Errorf("disk %q = %q", name, got)
			}
			s.ok(move(name, name+".moved"))
			s.ok(remove(name + ".moved"))
		}
	})
	t.Run("names that are not UTF-8", func(t *testing.T) {
		s := s.fork(t)
		// A name on disk that is not UTF-8 cannot travel in a protobuf
		// string: listings leave it out.
		s.put("bad-\xff-name", "x")
		for _, f := range s.do(readdir("/")).GetFiles().GetFiles() {
			if strings.HasPrefix(f.Path, "bad-") {
				t.Errorf("readdir lists %q", f.Path)
			}
		}
		// A client that sends one anyway has it repaired by the frame
		// decoder (each run of bad bytes becomes one U+FFFD): it names
		// another, valid, file, never this one.
		reply := s.raw(t, read("bad-ZZ-name"), "ZZ", "\xff\xfe")
		if e := reply.GetError(); e != "read bad-\ufffd-name: no such file or directory" {
			t.Errorf("got %v", reply)
		}
		reply = s.raw(t, write("bad-ZZ-name", "repaired"), "ZZ", "\xff\xfe")
		if reply.GetOk() == nil {
			t.Fatalf("got %v", reply)
		}
		if got, _ := s.disk("bad-\ufffd-name"); got != "repaired" {
			t.Errorf("repaired name = %q", got)
		}
		if got, _ := s.disk("bad-\xff-name"); got != "x" {
			t.Errorf("the file with the raw name changed: %q", got)
		}
	})
}

// raw sends cmd with marker (which must occur exactly once in its
// encoding) replaced by bytes of the same length, for frames a well-behaved
// encoder refuses to produce, and returns the reply.
func (s *session) raw(t *testing.T, cmd *api.Command, marker, bytesOut string) *api.Command {
	t.Helper()
	cmd.Channel = s.ch.ID()
	cmd.Ref = "raw-" + t.Name()
	frame, err := proto.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(frame, []byte(marker)) != 1 || len(marker) != len(bytesOut) {
		t.Fatalf("marker %q must occur once and keep its length", marker)
	}
	frame = bytes.Replace(frame, []byte(marker), []byte(bytesOut), 1)
	if err := s.c.WriteRaw(websocket.BinaryMessage, frame); err != nil {
		t.Fatal(err)
	}
	for {
		reply, err := s.ch.Recv(s.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if reply.Ref == cmd.Ref {
			return reply
		}
	}
}

func TestDiskFull(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("a full disk needs a small tmpfs, and mounting one needs root")
	}
	mnt := t.TempDir()
	if err := mountTmpfs(mnt, false, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unmount(mnt); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	dataDir := t.TempDir()
	s := start(t, func(cfg *conman.Config) {
		cfg.Workspace = mnt
		cfg.DataDir = dataDir
	})
	s.ok(write("f.txt", "old content"))
	big := strings.Repeat("x", 2<<20)

	if text := s.fails(write("f.txt", big)); text != "write f.txt: no space left on device" {
		t.Errorf("got %q", text)
	}
	if got, _ := s.disk("f.txt"); got != "old content" {
		t.Errorf("old content lost: %q", got)
	}
	if text := s.fails(write("new/g.txt", big)); text != "write new/g.txt: no space left on device" {
		t.Errorf("got %q", text)
	}
	if _, ok := s.disk("new/g.txt"); ok {
		t.Error("a file that did not fit exists")
	}
	if text := s.fails(transferStart("up.bin", 2<<20)); text != "upload up.bin: no space left on device" {
		t.Errorf("got %q", text)
	}
	noTemps(t, mnt)
	// The disk is usable again once the failed writes are gone.
	s.ok(write("f.txt", "new content"))
	if got, _ := s.disk("f.txt"); got != "new content" {
		t.Errorf("f.txt = %q", got)
	}
}
