package channels_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/channels/channelstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

const timeout = 10 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func TestRegistryDuplicatePanics(t *testing.T) {
	reg := channels.NewRegistry()
	reg.Register("a", channels.ServiceFunc(func(*channels.Channel) (channels.Handler, error) { return nil, nil }))
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), `"a" registered twice`) {
			t.Fatalf("recover() = %v, want a duplicate-name panic", r)
		}
	}()
	reg.Register("a", channels.ServiceFunc(func(*channels.Channel) (channels.Handler, error) { return nil, nil }))
}

// lingering is a named-channel service that outlives its last session for
// a while, and counts how it ends.
type lingering struct {
	linger time.Duration
	closed chan struct{}
}

func (l *lingering) Open(*channels.Channel) (channels.Handler, error) { return l, nil }
func (l *lingering) Handle(context.Context, *channels.Request) (*api.Command, error) {
	return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}}, nil
}
func (l *lingering) Close(context.Context) error { close(l.closed); return nil }
func (l *lingering) Linger() time.Duration       { return l.linger }

// session starts a session on hub over an in-memory conn and reads past
// the handshake.
func session(t *testing.T, hub *channels.Hub, ident channels.Identity) (*channels.Session, *channelstest.Conn) {
	t.Helper()
	conn := channelstest.NewConn()
	s, err := hub.NewSession(conn, ident)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // bootStatus, containerState
		if _, err := conn.Next(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	return s, conn
}

func openNamed(t *testing.T, s *channels.Session, conn *channelstest.Conn, service, name string) int32 {
	t.Helper()
	s.HandleFrame(channelstest.Encode(&api.Command{Ref: "o", Body: &api.Command_OpenChan{OpenChan: &api.OpenChannel{Service: service, Name: name, Action: api.OpenChannel_ATTACH_OR_CREATE}}}))
	m, err := conn.Next(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	res := m.GetOpenChanRes()
	if res == nil || res.State == api.OpenChannelRes_ERROR {
		t.Fatalf("open: %v", m)
	}
	return res.Id
}

func TestLingerKeepsANamedChannelForAWhile(t *testing.T) {
	reg := channels.NewRegistry()
	svc := &lingering{linger: 50 * time.Millisecond, closed: make(chan struct{})}
	reg.Register("lingering", svc)
	hub := channels.NewHub(channels.Options{Registry: reg, Logger: discardLogger(), PingInterval: -1})
	defer hub.Shutdown(context.Background())

	a, aconn := session(t, hub, channels.Identity{UserName: "a"})
	openNamed(t, a, aconn, "lingering", "shell")
	a.Close(channels.ReasonClientClosed) // the last session vanishes

	// Re-attaching within the linger time finds the same instance.
	b, bconn := session(t, hub, channels.Identity{UserName: "b"})
	b.HandleFrame(channelstest.Encode(&api.Command{Ref: "o", Body: &api.Command_OpenChan{OpenChan: &api.OpenChannel{Service: "lingering", Name: "shell", Action: api.OpenChannel_ATTACH}}}))
	m, err := bconn.Next(ctxT(t))
	if err != nil || m.GetOpenChanRes().GetState() != api.OpenChannelRes_ATTACHED {
		t.Fatalf("re-attach within the linger time: %v %v", m, err)
	}
	select {
	case <-svc.closed:
		t.Fatal("instance closed while a session was attached")
	default:
	}
	b.Close(channels.ReasonClientClosed)
	select {
	case <-svc.closed:
	case <-time.After(timeout):
		t.Fatal("instance not closed after the linger time")
	}
}

func TestTryCloseEndsALingeringChannelAtOnce(t *testing.T) {
	reg := channels.NewRegistry()
	svc := &lingering{linger: time.Hour, closed: make(chan struct{})}
	reg.Register("lingering", svc)
	hub := channels.NewHub(channels.Options{Registry: reg, Logger: discardLogger(), PingInterval: -1})
	defer hub.Shutdown(context.Background())
	s, conn := session(t, hub, channels.Identity{UserName: "a"})
	id := openNamed(t, s, conn, "lingering", "shell")
	s.HandleFrame(channelstest.Encode(&api.Command{Ref: "c", Body: &api.Command_CloseChan{CloseChan: &api.CloseChannel{Id: id, Action: api.CloseChannel_TRY_CLOSE}}}))
	m, err := conn.Next(ctxT(t))
	if err != nil || m.GetCloseChanRes().GetStatus() != api.CloseChannelRes_CLOSE {
		t.Fatalf("got %v %v, want closeChanRes{CLOSE}", m, err)
	}
	select {
	case <-svc.closed:
	case <-time.After(timeout):
		t.Fatal("instance not closed")
	}
	s.Close(channels.ReasonClientClosed)
}

// TestOverflowClosesOnlyTheSlowSession uses stalled in-memory conns: the
// stalled session is closed with the overflow reason; the other gets
// every message.
func TestOverflowClosesOnlyTheSlowSession(t *testing.T) {
	reg := channels.NewRegistry()
	reg.Register("lingering", &lingering{closed: make(chan struct{})})
	hub := channels.NewHub(channels.Options{Registry: reg, Logger: discardLogger(), PingInterval: -1, WriteQueueBytes: 64 << 10})
	defer hub.Shutdown(ctxT(t))

	slow, slowConn := session(t, hub, channels.Identity{UserName: "slow"})
	fast, fastConn := session(t, hub, channels.Identity{UserName: "fast"})
	slowConn.Stall()
	// Each broadcast waits until the fast session has it, so only the
	// stalled session's queue grows.
	for i := 0; i < 200; i++ {
		hub.Broadcast0(&api.Command{Body: &api.Command_Toast{Toast: &api.Toast{Text: strings.Repeat("t", 1024)}}})
		m, err := fastConn.Next(ctxT(t))
		if err != nil || m.GetToast() == nil {
			t.Fatalf("fast session message %d: %v %v", i, m, err)
		}
	}
	select {
	case <-slowConn.Done():
	case <-time.After(timeout):
		t.Fatal("slow session not closed")
	}
	if code, _, _ := slowConn.CloseStatus(); code != channels.CloseTryAgainLater {
		t.Fatalf("slow session closed with %d, want %d", code, channels.CloseTryAgainLater)
	}
	slow.Close(channels.ReasonClientClosed)
	fast.Close(channels.ReasonClientClosed)
}

type frameLog struct {
	mu     sync.Mutex
	frames []*api.Command
	dirs   []bool
}

func (l *frameLog) RecordFrame(in bool, prefix, body []byte) {
	cmd := new(api.Command)
	if err := proto.Unmarshal(append(append([]byte(nil), prefix...), body...), cmd); err != nil {
		panic(err)
	}
	l.mu.Lock()
	l.frames = append(l.frames, cmd)
	l.dirs = append(l.dirs, in)
	l.mu.Unlock()
}

func TestRecorderSeesFramesBothWays(t *testing.T) {
	reg := channels.NewRegistry()
	hub := channels.NewHub(channels.Options{Registry: reg, Logger: discardLogger(), PingInterval: -1})
	defer hub.Shutdown(ctxT(t))
	s, conn := session(t, hub, channels.Identity{UserName: "a"})
	defer s.Close(channels.ReasonClientClosed)
	log := new(frameLog)
	s.SetRecorder(log)
	s.HandleFrame(channelstest.Encode(&api.Command{Ref: "p1", Body: &api.Command_Ping{Ping: &api.Ping{}}}))
	if _, err := conn.Next(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	s.SetRecorder(nil)
	s.HandleFrame(channelstest.Encode(&api.Command{Ref: "p2", Body: &api.Command_Ping{Ping: &api.Ping{}}}))
	if _, err := conn.Next(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.frames) != 2 || !log.dirs[0] || log.dirs[1] || log.frames[0].GetPing() == nil || log.frames[1].GetPong() == nil || log.frames[1].Ref != "p1" {
		t.Fatalf("recorded %v (in: %v), want the ping in and the pong out", log.frames, log.dirs)
	}
}

func TestOnSessionStartGreetsAfterReady(t *testing.T) {
	reg := channels.NewRegistry()
	hub := channels.NewHub(channels.Options{Registry: reg, Logger: discardLogger(), PingInterval: -1})
	defer hub.Shutdown(ctxT(t))
	var started []int32
	hub.OnSessionStart(func(s *channels.Session) {
		started = append(started, s.ID())
		s.Send0(&api.Command{Body: &api.Command_Toast{Toast: &api.Toast{Text: "hello"}}})
	})
	hub.OnSessionStart(func(*channels.Session) { panic("a broken hook") })

	conn := channelstest.NewConn()
	s, err := hub.NewSession(conn, channels.Identity{UserName: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(channels.ReasonClientClosed)
	var got []string
	for i := 0; i < 3; i++ {
		m, err := conn.Next(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, channels.BodyName(m))
	}
	if strings.Join(got, " ") != "bootStatus containerState toast" {
		t.Fatalf("got %v, want bootStatus, containerState, then the hook's toast", got)
	}
	if len(started) != 1 || started[0] != s.ID() {
		t.Fatalf("hook saw sessions %v, want [%d]", started, s.ID())
	}
	// A panicking hook does not break the session.
	s.HandleFrame(channelstest.Encode(&api.Command{Ref: "p", Body: &api.Command_Ping{Ping: &api.Ping{}}}))
	if m, err := conn.Next(ctxT(t)); err != nil || m.GetPong() == nil {
		t.Fatalf("after a panicking hook: %v %v, want pong", m, err)
	}
}

// TestShutdownEndsSessionsNobodyCloses: a transport whose read loop never
// ends its session (here: none at all) cannot hold shutdown past its
// context.
func TestShutdownEndsSessionsNobodyCloses(t *testing.T) {
	reg := channels.NewRegistry()
	hub := channels.NewHub(channels.Options{Registry: reg, Logger: discardLogger(), PingInterval: -1})
	_, conn := session(t, hub, channels.Identity{UserName: "a"})
	conn.Stall() // the final flush cannot finish either
	hub.Toast("bye")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- hub.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("shutdown reported a clean stop although it had to cut a session off")
		}
	case <-time.After(timeout):
		t.Fatal("shutdown hung on a session nobody closed")
	}
	if _, _, closed := conn.CloseStatus(); !closed {
		t.Fatal("the transport was not closed")
	}
}

// TestCloseChannelZero: closeChan{id: 0} is answered with an error, never
// with a closeChanRes whose id is 0.
func TestCloseChannelZero(t *testing.T) {
	hub := channels.NewHub(channels.Options{Registry: channels.NewRegistry(), Logger: discardLogger(), PingInterval: -1})
	defer hub.Shutdown(context.Background())
	s, conn := session(t, hub, channels.Identity{UserName: "a"})
	defer s.Close(channels.ReasonClientClosed)
	s.HandleFrame(channelstest.Encode(&api.Command{Ref: "c", Body: &api.Command_CloseChan{CloseChan: &api.CloseChannel{}}}))
	m, err := conn.Next(ctxT(t))
	if err != nil || m.Ref != "c" || m.GetError() != "closeChan: channel 0 cannot be closed" {
		t.Fatalf("got %v %v, want an error with the ref", m, err)
	}
}
