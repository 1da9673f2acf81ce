package ot_test

import (
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/ot"
)

// TestCrash: editors stream ops to the daemon binary, which is killed with
// SIGKILL at random moments (after a random number of acknowledgements)
// and restarted, again and again. Every packet any editor received (every
// acknowledged op among them) must be in the history afterwards, unchanged,
// and the history must replay to the document, which flush puts on disk.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the daemon binary over and over")
	}
	t.Parallel()
	const (
		file    = "crash.txt"
		rounds  = 30
		editors = 3 // users 0, 1, 2; user 99 checks the history
	)
	ws := t.TempDir()
	put(t, ws, file, "crash test\n")
	p := conmantest.StartProcess(t, ws)
	addr := p.Addr
	tokens := make(map[uint32]string)
	for _, i := range []int{0, 1, 2, 99} {
		u := user(i)
		tokens[u.UserID] = p.Token(t, u.UserName, "--user-id", strconv.Itoa(int(u.UserID)))
	}
	dial := func(t testing.TB, claims auth.Claims) *client.Client {
		c, err := client.Dial(conmantest.Context(t), client.URL(addr, tokens[claims.UserID]), client.Options{})
		if err != nil {
			t.Errorf("dial: %v", err)
			return nil
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	var (
		mu    sync.Mutex
		seen  = make(map[uint32]*api.OTPacket) // every packet any editor received
		acked int
	)
	record := func(e *editor, p *api.OTPacket) {
		mu.Lock()
		defer mu.Unlock()
		if old, ok := seen[p.Version]; ok && !proto.Equal(old, p) {
			e.fatalf("version %d was %v and is now %v", p.Version, old, p)
		}
		seen[p.Version] = proto.Clone(p).(*api.OTPacket)
	}

	rng := rand.New(rand.NewPCG(7, 7))
	for round := range rounds + 1 {
		verifyHistory(t, dial, file, ws, seen)
		if round == rounds {
			break
		}
		// Kill after a random number of acknowledgements or, in every
		// other round, at a random moment soon after the editors start.
		killAfter := int64(3 + rng.IntN(60))
		var killAt <-chan time.Time
		if round%2 == 1 {
			killAt = time.After(time.Duration(rng.IntN(100)) * time.Millisecond)
		}
		var acks atomic.Int64
		reached := make(chan struct{})
		var once sync.Once
		var wg sync.WaitGroup
		for i := range editors {
			e := newEditor(t, dial, fmt.Sprintf("r%d-e%d", round, i), file, user(i), uint64(round*editors+i))
			e.tolerant = true
			e.onPacket = func(p *api.OTPacket) { record(e, p) }
			e.onAck = func() {
				mu.Lock()
				acked++
				mu.Unlock()
				if acks.Add(1) == killAfter {
					once.Do(func() { close(reached) })
				}
			}
			wg.Go(e.runUntilDead)
		}
		select {
		case <-reached:
		case <-killAt:
		case <-p.Exited():
			t.Fatalf("the daemon exited by itself:\n%s", p.Log())
		}
		p.Signal(syscall.SIGKILL)
		p.Wait(t)
		wg.Wait()
		if t.Failed() {
			return
		}
		p = conmantest.StartProcess(t, ws, "--listen", addr)
	}
	t.Logf("%d rounds, %d versions received, %d acknowledged", rounds, len(seen), acked)
}

// verifyHistory checks, on a fresh connection, that the history holds every
// packet in seen, replays to the document, and reaches the disk on flush.
func verifyHistory(t *testing.T, dial dialer, file, ws string, seen map[uint32]*api.OTPacket) {
	t.Helper()
	ctx := conmantest.Context(t)
	c := dial(t, user(99))
	if c == nil {
		t.FailNow()
	}
	defer c.Close()
	ch := openOT(t, ctx, c, file)
	st := recv(t, ctx, ch).GetOtstatus()
	if st == nil {
		t.Fatal("no otstatus")
	}
	if st.LinkedFile == nil {
		if len(seen) > 0 {
			t.Fatal("the file lost its history")
		}
		res := request(t, ctx, ch, linkCmd(file)).GetOtLinkFileResponse()
		st = &api.OTStatus{Version: res.GetVersion(), Contents: string(res.GetLinkedFile().GetContent())}
	}
	text := ""
	for from := uint32(1); from <= st.Version; {
		res := request(t, ctx, ch, fetchCmd(from, st.Version)).GetOtFetchResponse()
		if len(res.GetPackets()) == 0 {
			t.Fatalf("fetch %d..%d: nothing", from, st.Version)
		}
		for _, p := range res.Packets {
			if p.Version != from {
				t.Fatalf("fetched version %d, want %d", p.Version, from)
			}
			var err error
			if text, err = ot.Apply(text, unwire(p.Ops)); err != nil {
				t.Fatalf("version %d does not replay: %v", p.Version, err)
			}
			if crc32.ChecksumIEEE([]byte(text)) != p.Crc32 {
				t.Fatalf("version %d replays to a text with another crc", p.Version)
			}
			if old, ok := seen[p.Version]; ok && !proto.Equal(old, p) {
				t.Fatalf("version %d was sent as %v, the history has %v", p.Version, old, p)
			}
			from++
		}
	}
	for v := range seen {
		if v > st.Version {
			t.Fatalf("version %d was sent before the crash, the history ends at %d", v, st.Version)
		}
	}
	if text != st.Contents {
		t.Fatalf("the history replays to %q, otstatus has %q", shorten(text), shorten(st.Contents))
	}
	mustOK(t, request(t, ctx, ch, flushCmd()))
	if got := onDisk(t, ws, file); got != text {
		t.Fatalf("on disk %q, the document is %q", shorten(got), shorten(text))
	}
}

// runUntilDead types and handles messages until the connection ends.
func (e *editor) runUntilDead() {
	for !e.dead {
		switch e.rng.IntN(3) {
		case 0:
			e.typeOne()
		case 1:
			e.drain()
		case 2:
			if !e.idle() && !e.step() {
				return
			}
		}
		if e.c.Err() != nil {
			return
		}
	}
}
