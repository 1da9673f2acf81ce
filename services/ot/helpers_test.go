package ot_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/ot"
	_ "github.com/conman-dev/conman/services/files"
	otsvc "github.com/conman-dev/conman/services/ot"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startIn starts a daemon on workspace ws (a fresh one when empty).
func startIn(t testing.TB, ws string) *conmantest.Daemon {
	t.Helper()
	if ws == "" {
		return conmantest.Start(t)
	}
	return conmantest.Start(t, func(c *conman.Config) { c.Workspace = ws })
}

// put writes a file into the workspace as another process would.
func put(t testing.TB, ws, name, content string) {
	t.Helper()
	p := filepath.Join(ws, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// onDisk reads a workspace file.
func onDisk(t testing.TB, ws, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ws, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// user returns the claims of the n-th test user.
func user(n int) auth.Claims {
	return auth.Claims{UserID: uint32(100 + n), UserName: fmt.Sprintf("user%d", n)}
}

// dialer connects a client: in-process daemons and daemon processes
// differ only in how they mint tokens.
type dialer func(t testing.TB, claims auth.Claims) *client.Client

func daemonDialer(d *conmantest.Daemon) dialer {
	return func(t testing.TB, claims auth.Claims) *client.Client { return d.DialAs(t, claims) }
}

// openOT opens the named ot channel of file on c.
func openOT(t testing.TB, ctx context.Context, c *client.Client, file string) *client.Channel {
	t.Helper()
	ch, err := c.Open(ctx, otsvc.Name, "ot:"+file, api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		t.Fatalf("open ot:%s: %v", file, err)
	}
	t.Cleanup(func() {
		if v := c.Violations(); len(v) > 0 {
			t.Errorf("protocol violations: %+v", v)
		}
	})
	return ch
}

// recv returns the next message on ch that is not a reply to a pending
// request.
func recv(t testing.TB, ctx context.Context, ch *client.Channel) *api.Command {
	t.Helper()
	cmd, err := ch.Recv(ctx)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return cmd
}

// request sends cmd and returns its reply.
func request(t testing.TB, ctx context.Context, ch *client.Channel, cmd *api.Command) *api.Command {
	t.Helper()
	reply, err := ch.Request(ctx, cmd)
	if err != nil {
		t.Fatalf("%v: %v", cmd.Body, err)
	}
	return reply
}

// mustOK fails unless reply is ok.
func mustOK(t testing.TB, reply *api.Command) {
	t.Helper()
	if reply.GetOk() == nil {
		t.Fatalf("got %v, want ok", reply)
	}
}

// mustFail returns the text of an error reply.
func mustFail(t testing.TB, reply *api.Command) string {
	t.Helper()
	e, ok := reply.Body.(*api.Command_Error)
	if !ok {
		t.Fatalf("got %v, want an error", reply)
	}
	return e.Error
}

func linkCmd(path string) *api.Command {
	return &api.Command{Body: &api.Command_OtLinkFile{OtLinkFile: &api.OTLinkFile{File: &api.File{Path: path}}}}
}

func flushCmd() *api.Command { return &api.Command{Body: &api.Command_Flush{Flush: &api.Flush{}}} }

func fetchCmd(from, to uint32) *api.Command {
	return &api.Command{Body: &api.Command_OtFetchRequest{OtFetchRequest: &api.OTFetchRequest{VersionFrom: from, VersionTo: to}}}
}

func otCmd(base uint32, op ot.Op, nonce uint32) *api.Command {
	return &api.Command{Body: &api.Command_Ot{Ot: &api.OTPacket{SpookyVersion: base, Ops: wire(op), Nonce: nonce}}}
}

// wire converts an op to its wire components.
func wire(op ot.Op) []*api.OTRuneTransformOp {
	var out []*api.OTRuneTransformOp
	for _, c := range op {
		switch {
		case c.Insert != "":
			out = append(out, &api.OTRuneTransformOp{Op: &api.OTRuneTransformOp_Insert{Insert: c.Insert}})
		case c.Delete > 0:
			out = append(out, &api.OTRuneTransformOp{Op: &api.OTRuneTransformOp_Delete{Delete: uint32(c.Delete)}})
		case c.Skip > 0:
			out = append(out, &api.OTRuneTransformOp{Op: &api.OTRuneTransformOp_Skip{Skip: uint32(c.Skip)}})
		}
	}
	return out
}

// unwire converts wire components to an op, one for one.
func unwire(comps []*api.OTRuneTransformOp) ot.Op {
	op := ot.Op{}
	for _, c := range comps {
		switch v := c.Op.(type) {
		case *api.OTRuneTransformOp_Skip:
			op = append(op, ot.Skip(int(v.Skip)))
		case *api.OTRuneTransformOp_Delete:
			op = append(op, ot.Delete(int(v.Delete)))
		case *api.OTRuneTransformOp_Insert:
			op = append(op, ot.Insert(v.Insert))
		default:
			op = append(op, ot.Component{})
		}
	}
	return op
}

// pieces are what random edits insert: ASCII, accents, emoji outside the
// BMP, newlines.
var pieces = []string{"a", "b", "xyz", " ", "\n", "é", "ñ", "💃", "🤖👻", "日本", "ok\n"}

// randomEdit returns a random normalised op on a text n code points long.
func randomEdit(rng *rand.Rand, n int) ot.Op {
	pos := rng.IntN(n + 1)
	op := ot.Op{ot.Skip(pos)}
	if pos < n && rng.IntN(3) == 0 {
		op = append(op, ot.Delete(1+rng.IntN(min(5, n-pos))))
	}
	if len(op) == 1 || rng.IntN(2) == 0 {
		op = append(op, ot.Insert(pieces[rng.IntN(len(pieces))]))
	}
	norm, err := ot.Normalize(op)
	if err != nil {
		panic(err)
	}
	return norm
}

// editor acts as the official client does: it keeps one op in flight,
// composes what is typed meanwhile into a pending op, transforms both
// against every packet from others, checks the CRC of every packet
// against its copy of the server's document, and recognises the echo of
// its own op (it must equal, component by component, the in-flight op as
// the editor transformed it).
type editor struct {
	t      testing.TB
	name   string
	file   string
	claims auth.Claims
	dial   dialer
	rng    *rand.Rand

	c      *client.Client
	ch     *client.Channel
	ctx    context.Context
	cancel context.CancelFunc
	in     chan *api.Command
	pumped chan struct{}

	version  uint32
	server   *ot.Doc // the document at version
	local    *ot.Doc // server with inflight and pending applied
	inflight ot.Op   // sent, echo not seen; nil when none
	nonce    uint32  // of inflight
	ref      string  // of the ot request not yet answered
	echoed   bool    // the echo of the request ref arrived
	pending  ot.Op   // typed while inflight was out; nil when none
	sent     int     // ops sent (each takes one version)
	packets  int     // packets received
	cursors  map[string]*api.OTCursor
	latency  func(time.Duration)
	sentAt   time.Time

	tolerant bool                // the connection may die: stop instead of failing
	dead     bool                // it died
	onPacket func(*api.OTPacket) // sees every packet
	onAck    func()              // called for every acknowledged op
}

var nextRef atomic.Uint64

// newEditor connects an editor to file (which it links) and waits for the
// document.
func newEditor(t testing.TB, dial dialer, name, file string, claims auth.Claims, seed uint64) *editor {
	t.Helper()
	e := &editor{t: t, name: name, file: file, claims: claims, dial: dial, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), cursors: map[string]*api.OTCursor{}}
	e.connect(true)
	return e
}

// connect dials, opens the channel and takes the document from otstatus
// (linking first if needed). With fresh it adopts the document; otherwise
// it catches up with otFetch from its own version.
func (e *editor) connect(fresh bool) {
	t := e.t
	t.Helper()
	e.ctx, e.cancel = context.WithTimeout(context.Background(), 2*conmantest.Timeout)
	e.c = e.dial(t, e.claims)
	if e.c == nil {
		e.fatalf("%s: cannot connect", e.name)
	}
	var err error
	e.ch, err = e.c.Open(e.ctx, otsvc.Name, "ot:"+e.file, api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		e.fatalf("%s: open: %v", e.name, err)
	}
	first, err := e.ch.Recv(e.ctx)
	if err != nil {
		e.fatalf("%s: first message: %v", e.name, err)
	}
	st := first.GetOtstatus()
	if st == nil {
		e.fatalf("%s: first message is %v, want otstatus", e.name, first)
	}
	version, contents := st.Version, st.Contents
	for _, c := range st.Cursors {
		e.cursors[c.Id] = c
	}
	if st.LinkedFile == nil {
		res := e.request(linkCmd(e.file)).GetOtLinkFileResponse()
		if res == nil {
			e.fatalf("%s: otLinkFile not answered with otLinkFileResponse", e.name)
		}
		version, contents = res.Version, string(res.LinkedFile.GetContent())
	} else if st.LinkedFile.Path != e.file {
		e.fatalf("%s: linked to %q, want %q", e.name, st.LinkedFile.Path, e.file)
	}
	e.in = make(chan *api.Command, 1<<16)
	e.pumped = make(chan struct{})
	go e.pump(e.ch, e.in, e.pumped)
	if fresh {
		e.version, e.server, e.local = version, mustDoc(e.t, contents), mustDoc(e.t, contents)
		return
	}
	// Catch up: the packets after our version up to the status, then
	// whatever arrived live meanwhile.
	if version > e.version {
		res := e.request(fetchCmd(e.version+1, version)).GetOtFetchResponse()
		if res == nil {
			e.fatalf("%s: otFetchRequest not answered with otFetchResponse", e.name)
		}
		if len(res.Packets) != int(version-e.version) {
			e.fatalf("%s: fetched %d packets, want %d", e.name, len(res.Packets), version-e.version)
		}
		for _, p := range res.Packets {
			e.packet(p)
		}
	}
	if e.version != version || e.server.String() != contents {
		e.fatalf("%s: caught up to version %d %q, the status says %d %q", e.name, e.version, e.server.String(), version, contents)
	}
	if e.ref == "" {
		e.sendPending()
	}
}

// pump moves the channel's messages to in.
func (e *editor) pump(ch *client.Channel, in chan<- *api.Command, done chan<- struct{}) {
	defer close(done)
	defer close(in)
	for {
		cmd, err := ch.Recv(e.ctx)
		if err != nil {
			return
		}
		in <- cmd
	}
}

// disconnect closes the connection, first handling what already arrived.
// The editor must have no op in flight.
func (e *editor) disconnect() {
	if e.ref != "" {
		e.fatalf("%s: disconnect with an op in flight", e.name)
	}
	e.c.Close()
	<-e.pumped
	for cmd := range e.in {
		e.handle(cmd)
	}
	e.cancel()
}

// close ends the editor's connection.
func (e *editor) close() {
	e.c.Close()
	<-e.pumped
	e.cancel()
}

// typeOne makes a random local edit.
func (e *editor) typeOne() {
	op := randomEdit(e.rng, e.local.Len())
	e.typeOp(op)
}

// typeOp makes a local edit.
func (e *editor) typeOp(op ot.Op) {
	var err error
	if err = e.local.Apply(op); err != nil {
		e.fatalf("%s: local edit: %v", e.name, err)
	}
	if e.pending == nil {
		e.pending = op
	} else if e.pending, err = ot.Compose(e.pending, op); err != nil {
		e.fatalf("%s: compose: %v", e.name, err)
	}
	if e.ref == "" && e.c.Err() == nil {
		e.sendPending()
	}
}

// sendPending sends the pending op as the new in-flight op.
func (e *editor) sendPending() {
	if e.pending == nil {
		return
	}
	e.inflight, e.pending = e.pending, nil
	e.nonce = e.rng.Uint32()
	e.ref = fmt.Sprintf("%s-%d", e.name, nextRef.Add(1))
	e.echoed = false
	e.sent++
	cmd := otCmd(e.version, e.inflight, e.nonce)
	cmd.Ref = e.ref
	e.sentAt = time.Now()
	if err := e.ch.Send(cmd); err != nil {
		if e.tolerant {
			e.dead = true
			return
		}
		e.fatalf("%s: send: %v", e.name, err)
	}
}

// idle reports whether nothing of the editor's is unacknowledged.
func (e *editor) idle() bool { return e.ref == "" && e.pending == nil }

// step handles one message, waiting for it; false when the channel ended.
func (e *editor) step() bool {
	select {
	case cmd, ok := <-e.in:
		if !ok {
			return false
		}
		e.handle(cmd)
		return true
	case <-e.ctx.Done():
		e.fatalf("%s: timed out at version %d (in flight %v, ref %q)", e.name, e.version, e.inflight, e.ref)
		return false
	}
}

// drain handles the messages already received.
func (e *editor) drain() {
	for {
		select {
		case cmd, ok := <-e.in:
			if !ok {
				return
			}
			e.handle(cmd)
		default:
			return
		}
	}
}

// settle waits until everything the editor sent is acknowledged.
func (e *editor) settle() {
	for !e.idle() {
		if !e.step() {
			e.fatalf("%s: channel ended while settling", e.name)
		}
	}
}

// catchUp handles messages until the editor has version v.
func (e *editor) catchUp(v uint32) {
	for e.version < v {
		if !e.step() {
			e.fatalf("%s: channel ended at version %d, want %d", e.name, e.version, v)
		}
	}
}

// handle processes one message from the server.
func (e *editor) handle(cmd *api.Command) {
	switch body := cmd.Body.(type) {
	case *api.Command_Ot:
		if cmd.Ref != "" {
			e.fatalf("%s: packet with a ref", e.name)
		}
		e.packet(body.Ot)
	case *api.Command_Ok:
		if cmd.Ref == "" || cmd.Ref != e.ref {
			return // a cursor or flush answer
		}
		if !e.echoed {
			e.fatalf("%s: ok before the echo of the op", e.name)
		}
		if e.latency != nil {
			e.latency(time.Since(e.sentAt))
		}
		if e.onAck != nil {
			e.onAck()
		}
		e.ref = ""
		e.sendPending()
	case *api.Command_Error:
		e.fatalf("%s: error %q (ref %q)", e.name, body.Error, cmd.Ref)
	case *api.Command_OtNewCursor:
		e.cursors[body.OtNewCursor.Id] = body.OtNewCursor
	case *api.Command_OtDeleteCursor:
		delete(e.cursors, body.OtDeleteCursor.Id)
	default:
		e.fatalf("%s: unexpected %v", e.name, cmd)
	}
}

// packet applies a packet of the server's history.
func (e *editor) packet(p *api.OTPacket) {
	t := e.t
	if p.Version != e.version+1 || p.SpookyVersion != p.Version {
		e.fatalf("%s: packet version %d/%d after version %d", e.name, p.Version, p.SpookyVersion, e.version)
	}
	op := unwire(p.Ops)
	norm, err := ot.Normalize(op)
	if err != nil || !reflect.DeepEqual(norm, op) {
		e.fatalf("%s: version %d: op %v is not in normal form", e.name, p.Version, op)
	}
	if err = e.server.Apply(op); err != nil {
		e.fatalf("%s: version %d does not apply: %v", e.name, p.Version, err)
	}
	if got := e.server.CRC32(); got != p.Crc32 {
		e.fatalf("%s: version %d: crc %08x, the packet says %08x", e.name, p.Version, got, p.Crc32)
	}
	e.version = p.Version
	e.packets++
	if e.onPacket != nil {
		e.onPacket(p)
	}
	if e.inflight != nil && p.Nonce == e.nonce && p.UserId == e.claims.UserID {
		if !reflect.DeepEqual(op, e.inflight) {
			e.fatalf("%s: echo of version %d is %v, the op in flight is %v", e.name, p.Version, op, e.inflight)
		}
		e.inflight, e.echoed = nil, true
		return
	}
	// Someone else's op: it wins ties against ours.
	if e.inflight != nil {
		mine := e.inflight
		e.inflight = transform(t, mine, op, ot.Right)
		op = transform(t, op, mine, ot.Left)
	}
	if e.pending != nil {
		mine := e.pending
		e.pending = transform(t, mine, op, ot.Right)
		op = transform(t, op, mine, ot.Left)
	}
	if err = e.local.Apply(op); err != nil {
		e.fatalf("%s: version %d transformed does not apply locally: %v", e.name, p.Version, err)
	}
}

func transform(t testing.TB, op, other ot.Op, side ot.Side) ot.Op {
	out, err := ot.Transform(op, other, side)
	if err != nil {
		t.Error(err)
		runtime.Goexit()
	}
	return out
}

// waitFor calls check until it reports true, handling messages in between.
func (e *editor) waitFor(what string, check func() bool) {
	for !check() {
		if !e.step() {
			e.fatalf("%s: channel ended waiting for %s", e.name, what)
		}
	}
}

// shorten abbreviates a long text for messages.
func shorten(s string) string {
	if len(s) <= 80 {
		return s
	}
	return s[:40] + "…" + s[len(s)-40:] + fmt.Sprintf(" (%d bytes)", len(s))
}

// fatalf fails the test and ends the calling goroutine, which may be one of
// the test's own (t.Fatalf is only for the test's goroutine).
func (e *editor) fatalf(format string, args ...any) {
	e.t.Helper()
	e.t.Errorf(format, args...)
	runtime.Goexit()
}

// request sends cmd and returns its reply.
func (e *editor) request(cmd *api.Command) *api.Command {
	reply, err := e.ch.Request(e.ctx, cmd)
	if err != nil {
		e.fatalf("%s: %v: %v", e.name, cmd.Body, err)
	}
	return reply
}

// clientChannel is a channel and the file it edits.
type clientChannel struct {
	ch   *client.Channel
	name string
}

// mustDoc makes a document of text.
func mustDoc(t testing.TB, text string) *ot.Doc {
	d, err := ot.NewDoc(text)
	if err != nil {
		t.Error(err)
		runtime.Goexit()
	}
	return d
}

// serverText is the editor's copy of the server's document.
func (e *editor) serverText() string { return e.server.String() }

// localText is the editor's document with its own edits.
func (e *editor) localText() string { return e.local.String() }
