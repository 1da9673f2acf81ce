// Package bench holds the daemon's end-to-end benchmarks: real daemons,
// real websockets over loopback, figures reported as custom metrics
// (p50/p99 latencies, per-session memory). Run them with
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/
//
// and record ratios, not absolutes, in docs/benchmarks.md: the machine is
// shared and noisy.
package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/channels/channelstest"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/debug"
	"github.com/conman-dev/conman/services/sink"
)

// percentile returns the p-th percentile (0..100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

func reportLatencies(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(percentile(lat, 50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(percentile(lat, 99).Microseconds()), "p99-µs")
}

// BenchmarkPingPong measures a ping/pong round trip over loopback through
// the whole daemon (websocket, decode, channel 0, writer).
func BenchmarkPingPong(b *testing.B) {
	d := conmantest.Start(b)
	c := d.Dial(b)
	ctx := context.Background()
	for i := 0; i < 1000; i++ { // warm up
		c.Ping(ctx)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rtt, err := c.Ping(ctx)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, rtt)
	}
	b.StopTimer()
	reportLatencies(b, lat)
}

// BenchmarkRawWebsocketEcho is the floor for BenchmarkPingPong: a gorilla
// websocket echo server on loopback with no protocol at all.
func BenchmarkRawWebsocketEcho(b *testing.B) {
	srv := newEchoServer(b)
	ws, _, err := websocket.DefaultDialer.Dial(srv, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Close()
	msg, _ := proto.Marshal(&api.Command{Ref: "0123456789abcdef", Body: &api.Command_Ping{Ping: &api.Ping{}}})
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := ws.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			b.Fatal(err)
		}
		if _, _, err := ws.ReadMessage(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatencies(b, lat)
}

// BenchmarkFanout1000 sends one 100-byte message to a named channel with
// 1,000 attached sessions and measures the time until the last one has
// it.
func BenchmarkFanout1000(b *testing.B) {
	const sessions = 1000
	d := conmantest.Start(b)
	ctx := context.Background()
	sender := d.Dial(b)
	send, err := sender.Open(ctx, debug.Name, "fanout", api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		b.Fatal(err)
	}
	token := d.Token(b, conmantest.User)
	// Receivers are bare websockets that count deliveries of the payload.
	payload := strings.Repeat("f", 100)
	delivered := make(chan struct{}, sessions)
	var wg sync.WaitGroup
	var conns []*websocket.Conn
	for i := 0; i < sessions; i++ {
		ws, _, err := websocket.DefaultDialer.Dial(d.URL(token), nil)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, ws)
		openRaw(b, ws, debug.Name, "fanout")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, data, err := ws.ReadMessage()
				if err != nil {
					return
				}
				cmd := new(api.Command)
				if proto.Unmarshal(data, cmd) == nil && cmd.GetDebug().GetText() == payload {
					delivered <- struct{}{}
				}
			}
		}()
	}
	defer func() {
		for _, ws := range conns {
			ws.Close()
		}
		wg.Wait()
	}()
	lat := make([]time.Duration, 0, b.N)
	msg := &api.Command{Session: -1, Body: &api.Command_Debug{Debug: &api.Debug{Text: payload}}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := send.Send(proto.Clone(msg).(*api.Command)); err != nil {
			b.Fatal(err)
		}
		for j := 0; j < sessions; j++ {
			select {
			case <-delivered:
			case <-time.After(conmantest.Timeout):
				b.Fatalf("only %d of %d deliveries", j, sessions)
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatencies(b, lat)
}

// readUntil reads from ws until match accepts a message.
func readUntil(b *testing.B, ws *websocket.Conn, match func(*api.Command) bool) {
	b.Helper()
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			b.Fatal(err)
		}
		cmd := new(api.Command)
		if proto.Unmarshal(data, cmd) == nil && match(cmd) {
			return
		}
	}
}

// openRaw completes the handshake on a bare websocket and opens a channel
// of the debug service, returning once the session has joined it.
func openRaw(b *testing.B, ws *websocket.Conn, service, name string) {
	b.Helper()
	readUntil(b, ws, func(c *api.Command) bool { return c.GetContainerState() != nil })
	msg, _ := proto.Marshal(&api.Command{Ref: "o", Body: &api.Command_OpenChan{OpenChan: &api.OpenChannel{Service: service, Name: name, Action: api.OpenChannel_ATTACH_OR_CREATE}}})
	if err := ws.WriteMessage(websocket.BinaryMessage, msg); err != nil {
		b.Fatal(err)
	}
	readUntil(b, ws, func(c *api.Command) bool { return c.GetOpenChanRes() != nil })
	// The debug service greets a session with a roster once it has
	// joined: from then on the session receives every broadcast.
	readUntil(b, ws, func(c *api.Command) bool { return c.GetRoster() != nil })
}

// BenchmarkIdleSessionMemory connects 5,000 sessions to the daemon binary
// (its own process, so the figure is the server's alone) and reports the
// growth of its resident set per session: bare sessions, and sessions that
// each hold an open channel.
func BenchmarkIdleSessionMemory(b *testing.B) {
	for _, withChannel := range []bool{false, true} {
		name := "connected"
		if withChannel {
			name = "with-channel"
		}
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				idleSessions(b, 5000, withChannel)
			}
		})
	}
}

func idleSessions(b *testing.B, sessions int, withChannel bool) {
	p := conmantest.StartProcess(b, "")
	url := client.URL(p.Addr, p.Token(b, "idle"))
	connect := func() *websocket.Conn {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		if withChannel {
			openRaw(b, ws, debug.Name, "")
		} else {
			readUntil(b, ws, func(c *api.Command) bool { return c.GetContainerState() != nil })
		}
		return ws
	}
	// One warm-up session so the runtime's fixed costs are in the
	// baseline.
	warm := connect()
	defer warm.Close()
	settle()
	before := rss(b, p.Cmd.Process.Pid)
	conns := make([]*websocket.Conn, 0, sessions)
	for j := 0; j < sessions; j++ {
		conns = append(conns, connect())
	}
	settle()
	after := rss(b, p.Cmd.Process.Pid)
	b.ReportMetric(float64(after-before)/float64(sessions)/1024, "KiB/session")
	for _, ws := range conns {
		ws.Close()
	}
}

// settle gives the daemon a moment to finish what the last connection
// started before its memory is sampled.
func settle() { time.Sleep(300 * time.Millisecond) }

// rss reads a process's resident set size in bytes.
func rss(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb * 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkRouting measures frames per second through the channel layer
// in-process: decode, route to a channel, handle in a no-op service.
func BenchmarkRouting(b *testing.B) {
	reg := channels.NewRegistry()
	sk := sink.New()
	reg.Register(sink.Name, sk)
	hub := channels.NewHub(channels.Options{Registry: reg, PingInterval: -1, Logger: conmantest.TestLogger(b)})
	defer hub.Shutdown(context.Background())
	conn := new(channelstest.Counter)
	s, err := hub.NewSession(conn, channels.Identity{UserName: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(channels.ReasonClientClosed)
	s.HandleFrame(channelstest.Encode(&api.Command{Ref: "o", Body: &api.Command_OpenChan{OpenChan: &api.OpenChannel{Service: sink.Name, Action: api.OpenChannel_CREATE}}}))
	frame := channelstest.Encode(&api.Command{Channel: 1, Body: &api.Command_Input{Input: "x"}})
	start := sk.Received()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.HandleFrame(frame)
	}
	for sk.Received()-start < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// broadcaster is a service whose channel the benchmark drives directly.
type broadcaster struct{ ch chan *channels.Channel }

func (b *broadcaster) Open(ch *channels.Channel) (channels.Handler, error) {
	select {
	case b.ch <- ch:
	default:
	}
	return b, nil
}
func (*broadcaster) Handle(context.Context, *channels.Request) (*api.Command, error) { return nil, nil }
func (*broadcaster) Close(context.Context) error                                     { return nil }

// BenchmarkFanout1000InProcess is BenchmarkFanout1000 without sockets: one
// 100-byte broadcast to 1,000 sessions whose transports only count frames,
// timed until the last writer has written it. It is the daemon's own share
// of the fan-out.
func BenchmarkFanout1000InProcess(b *testing.B) {
	const sessions = 1000
	reg := channels.NewRegistry()
	svc := &broadcaster{ch: make(chan *channels.Channel, 1)}
	reg.Register("broadcast", svc)
	hub := channels.NewHub(channels.Options{Registry: reg, PingInterval: -1, Logger: conmantest.TestLogger(b)})
	defer hub.Shutdown(context.Background())
	counters := make([]*channelstest.Counter, sessions)
	open := channelstest.Encode(&api.Command{Ref: "o", Body: &api.Command_OpenChan{OpenChan: &api.OpenChannel{Service: "broadcast", Name: "all", Action: api.OpenChannel_ATTACH_OR_CREATE}}})
	for i := range counters {
		counters[i] = new(channelstest.Counter)
		s, err := hub.NewSession(counters[i], channels.Identity{UserName: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close(channels.ReasonClientClosed)
		s.HandleFrame(open)
	}
	ch := <-svc.ch
	payload := strings.Repeat("f", 100)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		waits := make([]<-chan struct{}, sessions)
		for j, c := range counters {
			waits[j] = c.Expect(c.Frames() + 1)
		}
		start := time.Now()
		ch.Send(&api.Command{Body: &api.Command_Output{Output: payload}})
		for _, w := range waits {
			<-w
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatencies(b, lat)
}

// BenchmarkRawWebsocketFanout1000 is the floor for BenchmarkFanout1000: a
// bare gorilla server that writes one 100-byte message to 1,000 loopback
// websockets (a writer goroutine each, as the daemon has), read by the same
// kind of receivers.
func BenchmarkRawWebsocketFanout1000(b *testing.B) {
	const sessions = 1000
	upgrader := websocket.Upgrader{}
	var mu sync.Mutex
	var outs []chan []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		out := make(chan []byte, 16)
		mu.Lock()
		outs = append(outs, out)
		mu.Unlock()
		go func() {
			defer ws.Close()
			for msg := range out {
				if ws.WriteMessage(websocket.BinaryMessage, msg) != nil {
					return
				}
			}
		}()
	}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	delivered := make(chan struct{}, sessions)
	var wg sync.WaitGroup
	var conns []*websocket.Conn
	for i := 0; i < sessions; i++ {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, ws)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, data, err := ws.ReadMessage()
				if err != nil {
					return
				}
				cmd := new(api.Command)
				if proto.Unmarshal(data, cmd) == nil {
					delivered <- struct{}{}
				}
			}
		}()
	}
	for {
		mu.Lock()
		n := len(outs)
		mu.Unlock()
		if n == sessions {
			break
		}
		time.Sleep(time.Millisecond)
	}
	defer func() {
		mu.Lock()
		for _, out := range outs {
			close(out)
		}
		mu.Unlock()
		for _, ws := range conns {
			ws.Close()
		}
		wg.Wait()
	}()
	msg, _ := proto.Marshal(&api.Command{Channel: 1, Body: &api.Command_Debug{Debug: &api.Debug{Text: strings.Repeat("f", 100)}}})
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		mu.Lock()
		for _, out := range outs {
			out <- msg
		}
		mu.Unlock()
		for j := 0; j < sessions; j++ {
			<-delivered
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatencies(b, lat)
}
