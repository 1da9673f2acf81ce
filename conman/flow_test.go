package conman_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/debug"
)

// rawSession is a websocket that completes the handshake and opens one
// channel by hand, and then reads only when told to: a client that stops
// reading, as a frozen tab does.
type rawSession struct {
	ws *websocket.Conn
}

func dialRaw(t *testing.T, d *conmantest.Daemon) *rawSession {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(d.URL(d.Token(t, conmantest.User)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	r := &rawSession{ws: ws}
	r.until(t, func(c *api.Command) bool { return c.GetContainerState() != nil })
	return r
}

func (r *rawSession) until(t *testing.T, match func(*api.Command) bool) *api.Command {
	t.Helper()
	r.ws.SetReadDeadline(time.Now().Add(conmantest.Timeout))
	for {
		_, data, err := r.ws.ReadMessage()
		if err != nil {
			t.Fatalf("raw read: %v", err)
		}
		cmd := new(api.Command)
		if err := proto.Unmarshal(data, cmd); err != nil {
			t.Fatal(err)
		}
		if match(cmd) {
			return cmd
		}
	}
}

func (r *rawSession) open(t *testing.T, service, name string) {
	t.Helper()
	b, _ := proto.Marshal(&api.Command{Ref: "open", Body: &api.Command_OpenChan{OpenChan: &api.OpenChannel{Service: service, Name: name, Action: api.OpenChannel_ATTACH_OR_CREATE}}})
	if err := r.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		t.Fatal(err)
	}
	r.until(t, func(c *api.Command) bool { return c.GetOpenChanRes() != nil })
}

// ended reports whether the server has closed the connection, reading (and
// discarding) whatever is still buffered.
func (r *rawSession) ended(t *testing.T) error {
	r.ws.SetReadDeadline(time.Now().Add(conmantest.Timeout))
	for {
		if _, _, err := r.ws.ReadMessage(); err != nil {
			return err
		}
	}
}

func TestSlowConsumerIsCutOff(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t, func(c *conman.Config) { c.WriteQueueBytes = 512 << 10 })
	slow := dialRaw(t, d)
	if tcp, ok := slow.ws.NetConn().(*net.TCPConn); ok {
		tcp.SetReadBuffer(16 << 10) // fill up quickly
	}
	slow.open(t, debug.Name, "firehose")

	fast := d.Dial(t)
	ch := open(t, fast, debug.Name, "firehose", api.OpenChannel_ATTACH_OR_CREATE)
	ctx := conmantest.Context(t)
	payload := strings.Repeat("x", 32<<10)
	const n = 600 // ~19 MiB through a 512 KiB queue
	go func() {
		for i := 0; i < n; i++ {
			if _, err := ch.Request(ctx, debugText(fmt.Sprintf("%d %s", i, payload))); err != nil {
				return
			}
		}
	}()
	for i := 0; i < n; {
		m := recv(t, ch)
		text := m.GetDebug().GetText()
		if text == "" {
			continue
		}
		if want := fmt.Sprintf("%d ", i); !strings.HasPrefix(text, want) {
			t.Fatalf("fast client got %.10q, want message %d", text, i)
		}
		i++
	}
	if err := slow.ended(t); err == nil {
		t.Fatal("the stalled session was not cut off")
	}
	m := conmantest.Metrics(t, d.Addr())
	if m["conman_write_queue_overflows_total"] < 1 || m[`conman_session_closes_total{reason="queue_overflow"}`] < 1 {
		t.Fatalf("overflow not counted: overflows=%v closes=%v", m["conman_write_queue_overflows_total"], m[`conman_session_closes_total{reason="queue_overflow"}`])
	}
	noViolations(t, fast)
}

func TestDeadPeerIsClosed(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t, func(c *conman.Config) {
		c.PingInterval = 50 * time.Millisecond
		c.PongWait = 300 * time.Millisecond
	})
	// A client that reads nothing never answers pings.
	dialRaw(t, d)
	key := `conman_session_closes_total{reason="ping_timeout"}`
	waitFor(t, "ping timeout", func() bool { return conmantest.Metrics(t, d.Addr())[key] >= 1 })
	// A live client answers pings and stays.
	pings := make(chan struct{}, 100)
	c := conmantest.DialURL(t, d.URL(d.Token(t, conmantest.User)), client.Options{OnPing: func() {
		select {
		case pings <- struct{}{}:
		default:
		}
	}})
	// Ten pings answered span more than the pong wait.
	for i := 0; i < 10; i++ {
		select {
		case <-pings:
		case <-c.Done():
			t.Fatalf("a live client was closed: %v", c.Err())
		case <-time.After(conmantest.Timeout):
			t.Fatal("no pings")
		}
	}
	if _, err := c.Ping(conmantest.Context(t)); err != nil {
		t.Fatalf("a live client was closed: %v", err)
	}
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	var clients []*client.Client
	for i := 0; i < 3; i++ {
		c := d.Dial(t)
		open(t, c, debug.Name, "shared", api.OpenChannel_ATTACH_OR_CREATE)
		open(t, c, debug.Name, "", api.OpenChannel_CREATE)
		clients = append(clients, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), conmantest.Timeout)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for i, c := range clients {
		if m, err := c.Chan0(ctx); err != nil || m.GetToast().GetText() != conman.ShutdownToast {
			t.Errorf("client %d: got %v %v before the close, want the shutdown toast", i, m, err)
		}
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatalf("client %d still connected", i)
		}
		var ce *client.CloseError
		if !errors.As(c.Err(), &ce) || ce.Code != 1001 {
			t.Errorf("client %d closed with %v, want 1001", i, c.Err())
		}
	}
	if _, err := client.Dial(ctx, d.URL(d.Token(t, conmantest.User)), client.Options{}); err == nil {
		t.Fatal("a new connection was accepted after shutdown")
	}
}

func TestUIServedBesideTheProtocol(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t, func(c *conman.Config) {
		c.UI = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ide at "+r.URL.Path)
		})
	})
	for path, want := range map[string]string{"/": "ide at /", "/assets/app.js": "ide at /assets/app.js"} {
		resp, err := http.Get(d.HTTP() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Errorf("GET %s = %q, want %q", path, body, want)
		}
	}
	// The protocol and the operator endpoints still win over the UI.
	if _, err := d.Dial(t).Ping(conmantest.Context(t)); err != nil {
		t.Fatal(err)
	}
	if m := conmantest.Metrics(t, d.Addr()); m["conman_sessions"] < 1 {
		t.Fatalf("metrics not served: %v", m["conman_sessions"])
	}
}
