package fsevents_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/fsevents"
	// The daemon's own writes come through the files service.
	"github.com/conman-dev/conman/services/files"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env is a daemon with a writing session on the files service.
type env struct {
	t     testing.TB
	d     *conmantest.Daemon
	files *client.Channel
	ctx   context.Context
	quiet int
}

func newEnv(t testing.TB) *env {
	t.Helper()
	d := conmantest.Start(t)
	ctx := conmantest.Context(t)
	c := d.Dial(t)
	ch, err := c.Open(ctx, files.Name, "", api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	checkViolations(t, c)
	return &env{t: t, d: d, files: ch, ctx: ctx}
}

func checkViolations(t testing.TB, c *client.Client) {
	t.Cleanup(func() {
		if v := c.Violations(); len(v) > 0 {
			t.Errorf("protocol violations: %+v", v)
		}
	})
}

// host is the host path of a workspace path.
func (e *env) host(p string) string { return filepath.Join(e.d.Workspace, filepath.FromSlash(p)) }

// mkdirs creates directories in the workspace directly.
func (e *env) mkdirs(paths ...string) {
	e.t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(e.host(p), 0o755); err != nil {
			e.t.Fatal(err)
		}
	}
}

// put writes a workspace file directly, as another process would.
func (e *env) put(p, content string) {
	e.t.Helper()
	if err := os.WriteFile(e.host(p), []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// do runs a files command and requires ok.
func (e *env) do(cmd *api.Command) {
	e.t.Helper()
	reply, err := e.files.Request(e.ctx, cmd)
	if err != nil {
		e.t.Fatal(err)
	}
	if reply.GetOk() == nil && reply.GetTransfer() == nil {
		e.t.Fatalf("%v: got %v", cmd.Body, reply)
	}
}

// watcher is a session on an fsevents channel.
type watcher struct {
	e  *env
	c  *client.Client
	ch *client.Channel
}

// watch connects a new session, opens fsevents and subscribes paths.
func (e *env) watch(paths ...string) *watcher {
	e.t.Helper()
	return e.watchAs(conmantest.User, paths...)
}

func (e *env) watchAs(claims auth.Claims, paths ...string) *watcher {
	e.t.Helper()
	c := e.d.DialAs(e.t, claims)
	checkViolations(e.t, c)
	ch, err := c.Open(e.ctx, fsevents.Name, "", api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		e.t.Fatal(err)
	}
	w := &watcher{e: e, c: c, ch: ch}
	if len(paths) > 0 {
		if reply := w.subscribe(paths...); reply.GetOk() == nil {
			e.t.Fatalf("subscribe %q: %v", paths, reply)
		}
	}
	return w
}

func subscribeCmd(paths ...string) *api.Command {
	sub := &api.SubscribeFile{}
	for _, p := range paths {
		sub.Files = append(sub.Files, &api.File{Path: p})
	}
	return &api.Command{Body: &api.Command_SubscribeFile{SubscribeFile: sub}}
}

// subscribe sends subscribeFile with a ref and returns the reply.
func (w *watcher) subscribe(paths ...string) *api.Command {
	w.e.t.Helper()
	reply, err := w.ch.Request(w.e.ctx, subscribeCmd(paths...))
	if err != nil {
		w.e.t.Fatal(err)
	}
	return reply
}

// format renders an event as "Op path[/][ -> dest[/]]"; a trailing slash
// marks a directory.
func format(ev *api.FileEvent) string {
	name := func(f *api.File) string {
		if f.GetType() == api.File_DIRECTORY {
			return f.GetPath() + "/"
		}
		return f.GetPath()
	}
	s := ev.Op.String() + " " + name(ev.File)
	if ev.Op == api.FileEvent_Move {
		s += " -> " + name(ev.Dest)
	}
	return s
}

// next returns the next message on the channel, which must be an event.
func (w *watcher) next() string {
	w.e.t.Helper()
	cmd, err := w.ch.Recv(w.e.ctx)
	if err != nil {
		w.e.t.Fatalf("waiting for an event: %v", err)
	}
	ev := cmd.GetFileEvent()
	if ev == nil {
		w.e.t.Fatalf("got %v, want a fileEvent", cmd)
	}
	if cmd.Ref != "" {
		w.e.t.Errorf("event %v carries a ref", cmd)
	}
	return format(ev)
}

// expect requires the next events to be want, in order.
func (w *watcher) expect(want ...string) {
	w.e.t.Helper()
	for _, wantEv := range want {
		if got := w.next(); got != wantEv {
			w.e.t.Fatalf("got event %q, want %q", got, wantEv)
		}
	}
}

// expectAll requires the next events to be want, in any order (changes
// made one after another may be reported in one burst or in several).
func (w *watcher) expectAll(want ...string) {
	w.e.t.Helper()
	got := make([]string, len(want))
	for i := range want {
		got[i] = w.next()
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		w.e.t.Fatalf("got events %q, want %q", got, want)
	}
}

// quiet requires that nothing but want arrives before a marker file
// created now in dir (which the watcher must see) is reported, and that
// the marker comes last: whatever a flush reports comes before what a
// later one does.
func (w *watcher) quiet(dir string, want ...string) {
	w.e.t.Helper()
	w.e.quiet++
	marker := fmt.Sprintf("zz-quiet-%d", w.e.quiet)
	p, seenAs := marker, marker
	if dir != "" {
		p = dir + "/" + marker
		seenAs = p
	}
	if dir == "real" {
		seenAs = "alias/" + marker
	}
	w.e.put(p, "")
	w.expectAll(append(want, "Create "+seenAs)...)
}

// metric reads a gauge or counter from the daemon's /metrics.
func metric(t testing.TB, d *conmantest.Daemon, name string) float64 {
	t.Helper()
	resp, err := http.Get(d.HTTP() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if value, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func file(p string) *api.File { return &api.File{Path: p} }

func write(p, content string) *api.Command {
	return &api.Command{Body: &api.Command_Write{Write: &api.File{Path: p, Content: []byte(content)}}}
}

func TestDaemonWritesSeenByOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mkdirs("a")
	w := e.watch("a")
	e.do(write("a/f.txt", "one"))
	w.expect("Create a/f.txt")
	e.do(write("/a/f.txt", "two"))
	w.expect("Modify a/f.txt")
	e.do(&api.Command{Body: &api.Command_Mkdir{Mkdir: file("a/sub/deeper")}})
	w.expect("Create a/sub/")
	e.do(&api.Command{Body: &api.Command_Move{Move: &api.Move{OldPath: "a/f.txt", NewPath: "a/g.txt"}}})
	w.expect("Move a/f.txt -> a/g.txt")
	e.do(&api.Command{Body: &api.Command_Remove{Remove: file("a/g.txt")}})
	w.expect("Remove a/g.txt")
	e.do(&api.Command{Body: &api.Command_Remove{Remove: file("a/sub")}})
	w.expect("Remove a/sub/")
	w.quiet("a")
}

func TestExternalChanges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		setup  func(e *env)
		watch  []string
		change func(e *env)
		check  func(w *watcher)
	}{
		{
			name:  "editor save is one modify",
			setup: func(e *env) { e.mkdirs("ed"); e.put("ed/doc.txt", "old") },
			watch: []string{"ed"},
			change: func(e *env) {
				e.put("ed/.doc.txt.swp", "new")
				must(e.t, os.Rename(e.host("ed/.doc.txt.swp"), e.host("ed/doc.txt")))
				must(e.t, os.Chmod(e.host("ed/doc.txt"), 0o600))
			},
			check: func(w *watcher) { w.quiet("ed", "Modify ed/doc.txt") },
		},
		{
			name:  "truncate, write and chmod are one modify",
			setup: func(e *env) { e.mkdirs("tw"); e.put("tw/f", "old") },
			watch: []string{"tw"},
			change: func(e *env) {
				must(e.t, os.Truncate(e.host("tw/f"), 0))
				e.put("tw/f", "again")
				must(e.t, os.Chmod(e.host("tw/f"), 0o600))
			},
			check: func(w *watcher) { w.quiet("tw", "Modify tw/f") },
		},
		{
			name:  "create then remove is nothing",
			setup: func(e *env) { e.mkdirs("cr") },
			watch: []string{"cr"},
			change: func(e *env) {
				e.put("cr/tmp", "x")
				must(e.t, os.Remove(e.host("cr/tmp")))
			},
			check: func(w *watcher) { w.quiet("cr") },
		},
		{
			name: "moves between watched and unwatched directories",
			setup: func(e *env) {
				e.mkdirs("m1/dir", "m2", "elsewhere")
				e.put("m1/x", "x")
				e.put("elsewhere/in", "in")
			},
			watch: []string{"m1", "m2"},
			change: func(e *env) {
				must(e.t, os.Rename(e.host("m1/x"), e.host("m2/x")))
				must(e.t, os.Rename(e.host("m1/dir"), e.host("m2/dir")))
				must(e.t, os.Rename(e.host("elsewhere/in"), e.host("m1/in")))
				must(e.t, os.Rename(e.host("m2/x"), e.host("elsewhere/x")))
			},
			check: func(w *watcher) {
				w.expectAll("Move m1/dir/ -> m2/dir/", "Remove m1/x", "Create m1/in")
				w.quiet("m1")
			},
		},
		{
			name: "a move seen from both sides",
			setup: func(e *env) {
				e.mkdirs("s1", "s2")
				e.put("s1/f", "f")
			},
			watch:  []string{"s1", "s2"},
			change: func(e *env) { must(e.t, os.Rename(e.host("s1/f"), e.host("s2/g"))) },
			check:  func(w *watcher) { w.quiet("s1", "Move s1/f -> s2/g") },
		},
		{
			name:   "move onto an existing file",
			setup:  func(e *env) { e.mkdirs("mo"); e.put("mo/a", "a"); e.put("mo/b", "b") },
			watch:  []string{"mo"},
			change: func(e *env) { must(e.t, os.Rename(e.host("mo/a"), e.host("mo/b"))) },
			check:  func(w *watcher) { w.quiet("mo", "Move mo/a -> mo/b") },
		},
		{
			name:  "type change",
			setup: func(e *env) { e.mkdirs("ty"); e.put("ty/x", "file") },
			watch: []string{"ty"},
			change: func(e *env) {
				must(e.t, os.Remove(e.host("ty/x")))
				must(e.t, os.Mkdir(e.host("ty/x"), 0o755))
			},
			check: func(w *watcher) { w.expectAll("Remove ty/x", "Create ty/x/"); w.quiet("ty") },
		},
		{
			name:  "a watched file, not its neighbours",
			setup: func(e *env) { e.mkdirs("fw"); e.put("fw/neighbour", "n") },
			watch: []string{"fw/only.txt"},
			change: func(e *env) {
				e.put("fw/other.txt", "x")
				e.put("fw/neighbour", "changed")
				e.put("fw/only.txt", "here")
			},
			check: func(w *watcher) {
				w.expect("Create fw/only.txt")
				w.e.put("fw/only.txt", "again")
				w.expect("Modify fw/only.txt")
			},
		},
		{
			name:  "data dir and temporary files are never reported",
			watch: []string{"/"},
			change: func(e *env) {
				must(e.t, os.WriteFile(filepath.Join(e.d.DataDir, "private"), []byte("x"), 0o600))
				e.put(".conman-tmp-0123456789abcdef", "partial")
				must(e.t, os.Remove(e.host(".conman-tmp-0123456789abcdef")))
			},
			check: func(w *watcher) { w.quiet("") },
		},
		{
			name: "symlinked directory is spelled as subscribed",
			setup: func(e *env) {
				e.mkdirs("real")
				must(e.t, os.Symlink("real", e.host("alias")))
			},
			watch:  []string{"alias"},
			change: func(e *env) { e.put("real/x", "x") },
			check:  func(w *watcher) { w.quiet("real", "Create alias/x") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if tt.setup != nil {
				tt.setup(e)
			}
			w := e.watch(tt.watch...)
			tt.change(e)
			tt.check(w)
		})
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestUploadInProgressIsHidden(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mkdirs("up")
	w := e.watch("up")
	reply, err := e.files.Request(e.ctx, &api.Command{Body: &api.Command_TransferStart{TransferStart: &api.TransferStart{Path: "up/big.bin", Size: 3}}})
	if err != nil || reply.GetTransfer() == nil {
		t.Fatalf("transferStart: %v %v", reply, err)
	}
	id := reply.GetTransfer().Id
	e.do(&api.Command{Body: &api.Command_TransferChunk{TransferChunk: &api.TransferChunk{Id: id, Content: []byte("abc")}}})
	w.quiet("up")
	e.do(&api.Command{Body: &api.Command_TransferComplete{TransferComplete: &api.TransferComplete{Id: id, Crc32: 0x352441c2}}})
	w.expect("Create up/big.bin")
}

func TestWatchedFileLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mkdirs("f")
	w := e.watch("f/only.txt")
	e.put("f/only.txt", "1")
	w.expect("Create f/only.txt")
	e.do(write("f/only.txt", "2"))
	w.expect("Modify f/only.txt")
	must(t, os.Remove(e.host("f/only.txt")))
	w.expect("Remove f/only.txt")
}

func TestWatchedDirectoryRemoved(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mkdirs("gone", "stays")
	e.put("gone/x", "x")
	w := e.watch("gone", "stays")
	must(t, os.RemoveAll(e.host("gone")))
	// The child's removal may come first, in its own burst.
	if got := w.next(); got != "Remove gone/" {
		if got != "Remove gone/x" {
			t.Fatalf("got %q, want Remove gone/x or Remove gone/", got)
		}
		w.expect("Remove gone/")
	}
	w.quiet("stays")
	// Subscribing again once it is back starts over.
	e.mkdirs("gone")
	if reply := w.subscribe("gone"); reply.GetOk() == nil {
		t.Fatalf("subscribe again: %v", reply)
	}
	e.put("gone/y", "y")
	w.expect("Create gone/y")
}

func TestSubscribe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mkdirs("d", "e")
	e.put("file.txt", "x")
	w := e.watch()

	errs := []struct{ path, want string }{
		{".conman", "subscribe .conman: path is reserved for the daemon's data"},
		{"/.conman/keys", "subscribe .conman/keys: path is reserved for the daemon's data"},
		{"../x", "subscribe ../x: path escapes from the workspace"},
		{"nope/x", "subscribe nope/x: no such file or directory"},
		{"file.txt/x", "subscribe file.txt/x: not a directory"},
	}
	for _, tt := range errs {
		if reply := w.subscribe(tt.path); reply.GetError() != tt.want {
			t.Errorf("subscribe %q: got %v, want error %q", tt.path, reply, tt.want)
		}
	}
	if got := w.subscribe("d", "../y", "../z").GetError(); got != "subscribe ../y: path escapes from the workspace (and 1 more paths)" {
		t.Errorf("got %q", got)
	}
	// Without a ref: no reply on success, an error message without a ref
	// on failure.
	must(t, w.ch.Send(subscribeCmd("d")))
	must(t, w.ch.Send(subscribeCmd("/d", "e")))
	must(t, w.ch.Send(subscribeCmd("../w")))
	cmd, err := w.ch.Recv(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.GetError() != "subscribe ../w: path escapes from the workspace" || cmd.Ref != "" {
		t.Errorf("got %v, want an error without a ref", cmd)
	}
	// "d" is subscribed once however often it was asked for.
	e.put("d/x", "x")
	w.quiet("d", "Create d/x")
	e.put("e/x", "x")
	w.expect("Create e/x")
}

func TestReadOnlySessionsMayWatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mkdirs("ro")
	w := e.watchAs(auth.Claims{UserID: 3, UserName: "viewer", ReadOnly: true}, "ro")
	e.do(write("ro/x", "x"))
	w.expect("Create ro/x")
}

func TestNamedChannelBroadcasts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mkdirs("n")
	var chans []*client.Channel
	for range 2 {
		c := e.d.Dial(t)
		ch, err := c.Open(e.ctx, fsevents.Name, "tree", api.OpenChannel_ATTACH_OR_CREATE)
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
	}
	if reply, err := chans[0].Request(e.ctx, subscribeCmd("n")); err != nil || reply.GetOk() == nil {
		t.Fatalf("subscribe: %v %v", reply, err)
	}
	e.do(write("n/x", "x"))
	for i, ch := range chans {
		cmd, err := ch.Recv(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := format(cmd.GetFileEvent()); got != "Create n/x" {
			t.Errorf("session %d got %q", i, got)
		}
	}
}

// TestWatchesBounded runs alone: it changes the options of the service.
func TestWatchesBounded(t *testing.T) {
	defer fsevents.SetDefaultOptions(fsevents.Options{MaxWatches: 2})()
	e := newEnv(t)
	e.mkdirs("d1", "d2", "d3", "d4")
	a := e.watch("d1", "d2/file")
	if got := metric(t, e.d, "conman_fsevents_watches"); got != 2 {
		t.Errorf("watches = %v, want 2", got)
	}
	b := e.watch("d1") // shares a's watch
	want := "subscribe d3: too many watched directories (at most 2)"
	if got := b.subscribe("d3").GetError(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// Closing a releases d2 (d1 is still b's): d3 fits once that is done.
	if _, err := a.ch.Close(e.ctx, api.CloseChannel_TRY_CLOSE); err != nil {
		t.Fatal(err)
	}
	for b.subscribe("d3").GetOk() == nil {
		if e.ctx.Err() != nil {
			t.Fatal("d2's watch was never released")
		}
	}
	if got := metric(t, e.d, "conman_fsevents_watches"); got != 2 {
		t.Errorf("watches = %v, want 2 (d1, d3)", got)
	}
	b.c.Close()
	c := e.watch()
	for c.subscribe("d2", "d4").GetOk() == nil {
		if e.ctx.Err() != nil {
			t.Fatal("b's watches were never released")
		}
	}
	e.put("d4/x", "x")
	c.expect("Create d4/x")
}
