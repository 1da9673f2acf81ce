package ot_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/ot"
	"github.com/conman-dev/conman/services/files"
)

// run types ops random edits, interleaved at random with handling what
// arrives. With reconnect, halfway it drops its connection, types a few
// edits offline, reconnects and catches up with otFetch.
func (e *editor) run(ops int, reconnect bool) {
	for typed := 0; typed < ops; {
		switch e.rng.IntN(4) {
		case 0, 1:
			e.typeOne()
			typed++
		case 2:
			e.drain()
		case 3:
			if !e.idle() {
				e.step()
			}
		}
		if reconnect && typed == ops/2 {
			reconnect = false
			e.settle()
			e.disconnect()
			for range 5 {
				e.typeOne()
			}
			e.connect(false)
		}
	}
	e.settle()
}

// converge brings every editor to the last version and checks that they,
// the server and the file on disk agree. It returns the text.
func converge(t *testing.T, d *conmantest.Daemon, file string, eds []*editor, base uint32) string {
	t.Helper()
	total := base
	for _, e := range eds {
		total += uint32(e.sent)
	}
	for _, e := range eds {
		e.catchUp(total)
	}
	text := eds[0].serverText()
	for _, e := range eds {
		if e.version != total || e.localText() != e.serverText() || e.serverText() != text {
			t.Fatalf("%s at version %d: local %q, server %q; %s has %q", e.name, e.version, shorten(e.localText()), shorten(e.serverText()), eds[0].name, shorten(text))
		}
	}
	mustOK(t, eds[0].request(flushCmd()))
	if got := onDisk(t, d.Workspace, file); got != text {
		t.Fatalf("on disk %q, the document is %q", shorten(got), shorten(text))
	}
	st := statusOf(t, d, file)
	if st.Version != total || st.Contents != text {
		t.Fatalf("a new session sees version %d %q, want %d %q", st.Version, shorten(st.Contents), total, shorten(text))
	}
	return text
}

// TestConcurrentEditors: several editors type random edits into one file
// at once (one of them drops out halfway and catches up with otFetch); all
// replicas, the server and the file end up the same.
func TestConcurrentEditors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		editors int
		ops     int
	}{
		{"2x200", 2, 200},
		{"5x100", 5, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := startIn(t, "")
			file := "src/shared.txt"
			put(t, d.Workspace, file, "the start\n")
			eds := make([]*editor, tc.editors)
			for i := range eds {
				eds[i] = newEditor(t, daemonDialer(d), fmt.Sprintf("e%d", i), file, user(i), uint64(1000*tc.editors+i))
			}
			var wg sync.WaitGroup
			for i, e := range eds {
				wg.Go(func() { e.run(tc.ops, i == 1) })
			}
			// Followers join and leave meanwhile: each must see every
			// version after its otstatus exactly once, in order (the
			// editor checks the numbering and every CRC).
			stop := make(chan struct{})
			var followers sync.WaitGroup
			joins := 0
			followers.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					joins++
					f := newEditor(t, daemonDialer(d), fmt.Sprintf("follower%d", i), file, user(50+i%3), uint64(i))
					for joined := f.version; f.version < joined+5; {
						select {
						case cmd, ok := <-f.in:
							if !ok {
								f.fatalf("%s: channel ended", f.name)
							}
							f.handle(cmd)
							continue
						case <-stop:
						}
						break
					}
					f.close()
				}
			})
			wg.Wait()
			close(stop)
			followers.Wait()
			t.Logf("%d followers joined while the editors typed", joins)
			if t.Failed() {
				return
			}
			converge(t, d, file, eds, 1)
			for _, e := range eds {
				e.close()
			}
		})
	}
}

// TestCursors: cursors go to the others (not back to their author), carry
// the author's identity, are listed in otstatus, move with the text, and
// are deleted, for everyone, by otDeleteCursor and when their session
// leaves.
func TestCursors(t *testing.T) {
	t.Parallel()
	d := startIn(t, "")
	put(t, d.Workspace, "c.txt", "0123456789")
	dial := daemonDialer(d)
	a := newEditor(t, dial, "a", "c.txt", user(1), 1)
	b := newEditor(t, dial, "b", "c.txt", user(2), 2)
	defer a.close()

	send := func(e *editor, cmd *api.Command) {
		if err := e.ch.Send(cmd); err != nil {
			t.Fatal(err)
		}
	}
	newCursor := func(id string, pos uint32) *api.Command {
		return &api.Command{Body: &api.Command_OtNewCursor{OtNewCursor: &api.OTCursor{Id: id, Position: pos, SelectionStart: pos, SelectionEnd: pos + 2}}}
	}
	send(a, newCursor("a1", 3))
	b.waitFor("a's cursor", func() bool { return b.cursors["a1"] != nil })
	got := b.cursors["a1"]
	if got.Position != 3 || got.SelectionEnd != 5 || got.User.GetId() != user(1).UserID || got.User.GetName() != user(1).UserName || got.User.GetSession() < 2 {
		t.Fatalf("b got cursor %v", got)
	}
	// With a ref, it is answered.
	mustOK(t, b.request(newCursor("b1", 8)))
	a.waitFor("b's cursor", func() bool { return a.cursors["b1"] != nil })
	if a.cursors["a1"] != nil {
		t.Fatal("a got its own cursor back")
	}
	// Someone else's id is not taken over.
	if msg := mustFail(t, b.request(newCursor("a1", 0))); !strings.Contains(msg, "another session") {
		t.Fatalf("taking a1: %q", msg)
	}

	// A newcomer sees both; an insert before them moves them.
	a.typeOp(ot.Op{ot.Insert("ab")})
	a.settle()
	b.catchUp(a.version)
	c := newEditor(t, dial, "c", "c.txt", user(3), 3)
	defer c.close()
	if len(c.cursors) != 2 || c.cursors["a1"].GetPosition() != 5 || c.cursors["b1"].GetSelectionEnd() != 12 {
		t.Fatalf("otstatus cursors: %v", c.cursors)
	}

	send(a, &api.Command{Body: &api.Command_OtDeleteCursor{OtDeleteCursor: &api.OTCursor{Id: "a1"}}})
	b.waitFor("a1 deleted", func() bool { return b.cursors["a1"] == nil })
	c.waitFor("a1 deleted", func() bool { return c.cursors["a1"] == nil })

	b.close()
	a.waitFor("b's cursor gone with b", func() bool { return a.cursors["b1"] == nil })
	c.waitFor("b's cursor gone with b", func() bool { return c.cursors["b1"] == nil })
	if st := statusOf(t, d, "c.txt"); len(st.Cursors) != 0 {
		t.Fatalf("cursors left: %v", st.Cursors)
	}
}

// TestOutsideChanges: a write by another process and a write through the
// files service to a file being edited become the next version, for
// everyone; the daemon's own writes do not come back as versions; edits
// go on across them.
func TestOutsideChanges(t *testing.T) {
	t.Parallel()
	d := startIn(t, "")
	file := "o.txt"
	put(t, d.Workspace, file, "one\ntwo\nthree\n")
	dial := daemonDialer(d)
	a := newEditor(t, dial, "a", file, user(1), 11)
	b := newEditor(t, dial, "b", file, user(2), 12)

	// Our own write, then an outside one: the outside one is the only
	// new version (the watcher reports both, in order).
	a.typeOp(ot.Op{ot.Skip(4), ot.Insert("TWO ")})
	a.settle()
	mustOK(t, a.request(flushCmd()))
	if got := onDisk(t, d.Workspace, file); got != "one\nTWO two\nthree\n" {
		t.Fatalf("after flush: %q", got)
	}
	mine := a.version
	put(t, d.Workspace, file, "one\nTWO two\nthree\nfour\n")
	a.waitFor("the outside change", func() bool { return a.version > mine })
	if a.version != mine+1 || a.serverText() != "one\nTWO two\nthree\nfour\n" {
		t.Fatalf("after an outside write: version %d (want %d) %q", a.version, mine+1, a.serverText())
	}
	p := fetch(t, a, a.version)
	if p.UserId != 0 || !proto.Equal(&api.OTPacket{Ops: p.Ops}, &api.OTPacket{Ops: wire(ot.Op{ot.Skip(18), ot.Insert("four\n")})}) {
		t.Fatalf("outside change recorded as %v", p)
	}
	b.catchUp(a.version)

	// Through the files service: ok means the file holds it.
	fc, err := a.c.Open(a.ctx, files.Name, "", api.OpenChannel_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	want := "zero\none\nTWO two\nthree\nfour\n"
	mustOK(t, request(t, a.ctx, fc, &api.Command{Body: &api.Command_Write{Write: &api.File{Path: "/" + file, Content: []byte(want)}}}))
	if got := onDisk(t, d.Workspace, file); got != want {
		t.Fatalf("after files.write: on disk %q", got)
	}
	b.waitFor("the files.write", func() bool { return b.serverText() == want })
	if got := unwire(fetch(t, b, b.version).Ops); !equalOps(got, ot.Op{ot.Insert("zero\n")}) {
		t.Fatalf("files.write recorded as %v", got)
	}
	// Binary content is refused for a file being edited.
	if msg := mustFail(t, request(t, a.ctx, fc, &api.Command{Body: &api.Command_Write{Write: &api.File{Path: file, Content: []byte{0, 1, 2}}}})); !strings.Contains(msg, "not a text file") {
		t.Fatalf("binary files.write: %q", msg)
	}

	// Outside writes while both type.
	var wg sync.WaitGroup
	for _, e := range []*editor{a, b} {
		wg.Go(func() { e.run(60, false) })
	}
	for i := range 3 {
		put(t, d.Workspace, file, fmt.Sprintf("rewritten %d\n", i))
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// Settle the outside writes: one more write, waited for, comes after
	// them in the watcher's order.
	a.settle()
	mustOK(t, a.request(flushCmd()))
	barrier := onDisk(t, d.Workspace, file) + "barrier\n"
	put(t, d.Workspace, file, barrier)
	a.waitFor("the barrier", func() bool { return a.serverText() == barrier })
	b.waitFor("the barrier", func() bool { return b.serverText() == barrier })
	if a.version != b.version || a.localText() != barrier || b.localText() != barrier {
		t.Fatalf("a at %d %q, b at %d %q", a.version, a.localText(), b.version, b.localText())
	}
	mustOK(t, a.request(flushCmd()))
	if got := onDisk(t, d.Workspace, file); got != barrier {
		t.Fatalf("on disk %q, want %q", got, barrier)
	}

	// Binary content from outside is neither imported nor overwritten
	// unseen: a flush says so; text written over it is imported.
	put(t, d.Workspace, file, "\x00\x01binary")
	a.typeOp(ot.Op{ot.Insert("!")})
	a.settle()
	if msg := mustFail(t, a.request(flushCmd())); !strings.Contains(msg, "not imported") {
		t.Fatalf("flush over binary content: %q", msg)
	}
	if got := onDisk(t, d.Workspace, file); got != "\x00\x01binary" {
		t.Fatalf("binary content overwritten: %q", got)
	}
	put(t, d.Workspace, file, "text again\n")
	a.waitFor("the text", func() bool { return a.serverText() == "text again\n" })
	mustOK(t, a.request(flushCmd()))
	a.close()
	b.close()
}

// fetch returns packet v.
func fetch(t testing.TB, e *editor, v uint32) *api.OTPacket {
	t.Helper()
	res := e.request(fetchCmd(v, v)).GetOtFetchResponse()
	if len(res.GetPackets()) != 1 {
		t.Fatalf("fetch %d: %v", v, res)
	}
	return res.Packets[0]
}

func equalOps(a, b ot.Op) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRestart: versions, packets and the text survive a restart; a change
// made while the daemon was down becomes the next version.
func TestRestart(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	d1 := startIn(t, ws)
	put(t, ws, "keep.txt", "kept\n")
	e := newEditor(t, daemonDialer(d1), "e", "keep.txt", user(1), 5)
	e.run(40, false)
	before := e.request(fetchCmd(1, e.version)).GetOtFetchResponse().GetPackets()
	version, text := e.version, e.serverText()
	e.close()
	if err := d1.Shutdown(conmantest.Context(t)); err != nil {
		t.Fatal(err)
	}
	if got := onDisk(t, ws, "keep.txt"); got != text {
		t.Fatalf("after shutdown the file is %q, want %q", got, text)
	}

	d2 := startIn(t, ws)
	e2 := newEditor(t, daemonDialer(d2), "e2", "keep.txt", user(1), 6)
	if e2.version != version || e2.serverText() != text {
		t.Fatalf("after restart: version %d %q, want %d %q", e2.version, e2.serverText(), version, text)
	}
	after := e2.request(fetchCmd(1, version)).GetOtFetchResponse().GetPackets()
	if len(after) != len(before) {
		t.Fatalf("fetched %d packets after restart, %d before", len(after), len(before))
	}
	for i := range before {
		if !proto.Equal(before[i], after[i]) {
			t.Fatalf("packet %d: %v before, %v after", i+1, before[i], after[i])
		}
	}
	e2.run(10, false)
	e2.close()
	if err := d2.Shutdown(conmantest.Context(t)); err != nil {
		t.Fatal(err)
	}

	// Changed while down.
	changed := onDisk(t, ws, "keep.txt") + "added offline\n"
	put(t, ws, "keep.txt", changed)
	d3 := startIn(t, ws)
	e3 := newEditor(t, daemonDialer(d3), "e3", "keep.txt", user(1), 7)
	if e3.version != e2.version+1 || e3.serverText() != changed {
		t.Fatalf("after an offline change: version %d %q, want %d %q", e3.version, e3.serverText(), e2.version+1, changed)
	}
	if p := fetch(t, e3, e3.version); !equalOps(unwire(p.Ops), ot.Op{ot.Skip(len([]rune(changed)) - 14), ot.Insert("added offline\n")}) {
		t.Fatalf("offline change recorded as %v", unwire(p.Ops))
	}
	e3.close()
}

// TestManyFiles: many documents open at once on one connection.
func TestManyFiles(t *testing.T) {
	t.Parallel()
	d := startIn(t, "")
	const n = 100
	ctx := conmantest.Context(t)
	c := d.Dial(t)
	chans := make([]*clientChannel, n)
	for i := range chans {
		name := fmt.Sprintf("many/f%03d.txt", i)
		put(t, d.Workspace, name, fmt.Sprintf("file %d\n", i))
		ch := openOT(t, ctx, c, name)
		recv(t, ctx, ch)
		if res := request(t, ctx, ch, linkCmd(name)).GetOtLinkFileResponse(); res.GetVersion() != 1 {
			t.Fatalf("%s: %v", name, res)
		}
		chans[i] = &clientChannel{ch, name}
	}
	for i, cc := range chans {
		mustOK(t, request(t, ctx, cc.ch, otCmd(1, ot.Op{ot.Insert(fmt.Sprintf("#%d ", i))}, 0)))
	}
	for i, cc := range chans {
		mustOK(t, request(t, ctx, cc.ch, flushCmd()))
		if got, want := onDisk(t, d.Workspace, cc.name), fmt.Sprintf("#%d file %d\n", i, i); got != want {
			t.Fatalf("%s: %q, want %q", cc.name, got, want)
		}
	}
}

// TestLinkHandOver: a session attached before the channel was linked gets
// nothing of the document until it links itself, and then continues
// exactly from the version its otLinkFileResponse carries.
func TestLinkHandOver(t *testing.T) {
	t.Parallel()
	d := startIn(t, "")
	put(t, d.Workspace, "h.txt", "hand")
	ctx := conmantest.Context(t)
	a := openOT(t, ctx, d.DialAs(t, user(1)), "h.txt")
	b := openOT(t, ctx, d.DialAs(t, user(2)), "h.txt")
	for _, ch := range []*clientChannel{{a, "a"}, {b, "b"}} {
		if st := recv(t, ctx, ch.ch).GetOtstatus(); st == nil || st.LinkedFile != nil {
			t.Fatalf("%s: %v", ch.name, st)
		}
	}
	request(t, ctx, a, linkCmd("h.txt"))
	mustOK(t, request(t, ctx, a, otCmd(1, ot.Op{ot.Skip(4), ot.Insert(" over")}, 1)))
	res := request(t, ctx, b, linkCmd("h.txt")).GetOtLinkFileResponse()
	if res.GetVersion() != 2 || string(res.LinkedFile.GetContent()) != "hand over" {
		t.Fatalf("b linked at %v", res)
	}
	if msg, ok := b.TryRecv(); ok {
		t.Fatalf("b received %v before it linked", msg)
	}
	mustOK(t, request(t, ctx, a, otCmd(2, ot.Op{ot.Insert("-> ")}, 2)))
	if p := recv(t, ctx, b).GetOt(); p.GetVersion() != 3 {
		t.Fatalf("b: got %v, want version 3", p)
	}
}
