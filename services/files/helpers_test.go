package files_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/files"
	"github.com/conman-dev/conman/services/workspace"
)

func TestMain(m *testing.M) {
	// Modes in the tests assume the usual umask.
	syscall.Umask(0o022)
	goleak.VerifyTestMain(m)
}

// session is one client with a files channel open.
type session struct {
	t   testing.TB
	d   *conmantest.Daemon
	c   *client.Client
	ch  *client.Channel
	ctx context.Context
}

// start starts a daemon and opens a files channel on it as the default
// user.
func start(t testing.TB, configure ...func(*conman.Config)) *session {
	t.Helper()
	d := conmantest.Start(t, configure...)
	return dial(t, d, conmantest.User, files.Name)
}

// dial connects to d as claims and opens service (files or gcsfiles).
func dial(t testing.TB, d *conmantest.Daemon, claims auth.Claims, service string) *session {
	t.Helper()
	ctx := conmantest.Context(t)
	c := d.DialAs(t, claims)
	ch, err := c.Open(ctx, service, "", api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		t.Fatalf("open %s: %v", service, err)
	}
	t.Cleanup(func() {
		if v := c.Violations(); len(v) > 0 {
			t.Errorf("protocol violations: %+v", v)
		}
	})
	return &session{t: t, d: d, c: c, ch: ch, ctx: ctx}
}

// fork returns a session for subtest t on the same connection, with a
// files channel of its own (requests on one channel are handled one at a
// time; separate channels run in parallel, as a browser's tabs do) and a
// deadline of its own.
func (s *session) fork(t testing.TB) *session {
	t.Helper()
	ctx := conmantest.Context(t)
	ch, err := s.c.Open(ctx, files.Name, "", api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		t.Fatalf("open %s: %v", files.Name, err)
	}
	return &session{t: t, d: s.d, c: s.c, ch: ch, ctx: ctx}
}

// do sends cmd and returns the reply.
func (s *session) do(cmd *api.Command) *api.Command {
	s.t.Helper()
	reply, err := s.ch.Request(s.ctx, cmd)
	if err != nil {
		s.t.Fatalf("%v: %v", cmd, err)
	}
	return reply
}

// ok sends cmd and fails unless the reply is ok.
func (s *session) ok(cmd *api.Command) {
	s.t.Helper()
	if reply := s.do(cmd); reply.GetOk() == nil {
		s.t.Fatalf("%v: got %v, want ok", cmd.Body, reply)
	}
}

// fails sends cmd and returns the text of its error reply.
func (s *session) fails(cmd *api.Command) string {
	s.t.Helper()
	reply := s.do(cmd)
	e, ok := reply.Body.(*api.Command_Error)
	if !ok {
		s.t.Fatalf("%v: got %v, want an error", cmd.Body, reply)
	}
	return e.Error
}

// put writes a file (or a directory, when the name ends in "/") into the
// workspace directly.
func (s *session) put(name, content string) {
	s.t.Helper()
	p := filepath.Join(s.d.Workspace, filepath.FromSlash(name))
	if strings.HasSuffix(name, "/") {
		if err := os.MkdirAll(p, 0o755); err != nil {
			s.t.Fatal(err)
		}
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// disk reads a workspace file directly; ok is false when it is missing.
func (s *session) disk(name string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(s.d.Workspace, filepath.FromSlash(name)))
	return string(b), err == nil
}

// noTemps fails when a temporary file is left under dir.
func noTemps(t testing.TB, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && workspace.IsTempName(d.Name()) {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

func file(p string) *api.File { return &api.File{Path: p} }

func read(p string) *api.Command { return &api.Command{Body: &api.Command_Read{Read: file(p)}} }
func readdir(p string) *api.Command {
	return &api.Command{Body: &api.Command_Readdir{Readdir: file(p)}}
}
func write(p, content string) *api.Command {
	return &api.Command{Body: &api.Command_Write{Write: &api.File{Path: p, Content: []byte(content)}}}
}
func mkdir(p string) *api.Command  { return &api.Command{Body: &api.Command_Mkdir{Mkdir: file(p)}} }
func remove(p string) *api.Command { return &api.Command{Body: &api.Command_Remove{Remove: file(p)}} }
func tryRemove(p string) *api.Command {
	return &api.Command{Body: &api.Command_TryRemove{TryRemove: file(p)}}
}
func move(from, to string) *api.Command {
	return &api.Command{Body: &api.Command_Move{Move: &api.Move{OldPath: from, NewPath: to}}}
}
func stat(p string) *api.Command { return &api.Command{Body: &api.Command_Stat{Stat: file(p)}} }
func persist(p string) *api.Command {
	return &api.Command{Body: &api.Command_Persist{Persist: file(p)}}
}
func transferStart(p string, size int64) *api.Command {
	return &api.Command{Body: &api.Command_TransferStart{TransferStart: &api.TransferStart{Path: p, Size: size}}}
}
func transferChunk(id string, content []byte) *api.Command {
	return &api.Command{Body: &api.Command_TransferChunk{TransferChunk: &api.TransferChunk{Id: id, Content: content}}}
}
func transferComplete(id string, sum uint32) *api.Command {
	return &api.Command{Body: &api.Command_TransferComplete{TransferComplete: &api.TransferComplete{Id: id, Crc32: sum}}}
}
func transferCancel(id string) *api.Command {
	return &api.Command{Body: &api.Command_TransferCancel{TransferCancel: &api.Transfer{Id: id}}}
}

// startTransfer starts an upload and returns its id.
func (s *session) startTransfer(p string, size int64) string {
	s.t.Helper()
	reply := s.do(transferStart(p, size))
	id := reply.GetTransfer().GetId()
	if id == "" {
		s.t.Fatalf("transferStart %s: got %v, want transfer{id}", p, reply)
	}
	return id
}
