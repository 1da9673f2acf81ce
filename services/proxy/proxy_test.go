package proxy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/proxy"
)

// names resolves the tests' made-up names and leaves the rest to the
// system.
type names map[string][]netip.Addr

func (n names) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if addrs, ok := n[host]; ok {
		return addrs, nil
	}
	return net.DefaultResolver.LookupNetIP(ctx, network, host)
}

func TestMain(m *testing.M) {
	proxy.Configure(proxy.Options{
		Allow: []string{}, // not the environment's
		Resolver: names{
			"evil.test":  {netip.MustParseAddr("10.1.2.3")},
			"mixed.test": {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.1.2.3")},
		},
	})
	goleak.VerifyTestMain(m)
}

// server is a loopback TCP server whose connections the test sees.
type server struct {
	ln    net.Listener
	conns chan net.Conn
	wg    sync.WaitGroup
}

// startServer listens on loopback; handle (nil: keep the connection for
// the test) runs for each connection.
func startServer(t *testing.T, handle func(net.Conn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, conns: make(chan net.Conn, 16)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			if handle == nil {
				s.conns <- conn
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer conn.Close()
				handle(conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(s.conns)
		for conn := range s.conns {
			conn.Close()
		}
		s.wg.Wait()
	})
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

func (s *server) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case conn := <-s.conns:
		t.Cleanup(func() { conn.Close() })
		return conn
	case <-conmantest.Context(t).Done():
		t.Fatal("no connection")
		return nil
	}
}

func echo(conn net.Conn) { io.Copy(conn, conn) }

func connectCmd(addr string) *api.Command {
	return &api.Command{Body: &api.Command_Connect{Connect: &api.Connect{Proto: "tcp", Addr: addr}}}
}

func sendCmd(b []byte) *api.Command {
	return &api.Command{Body: &api.Command_Send{Send: &api.Send{Buff: b}}}
}

func openProxy(t *testing.T, c *client.Client) *client.Channel {
	t.Helper()
	ch, err := c.Open(conmantest.Context(t), proxy.Name, "", api.OpenChannel_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func request(t *testing.T, ch *client.Channel, cmd *api.Command) *api.Command {
	t.Helper()
	r, err := ch.Request(conmantest.Context(t), cmd)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func connect(t *testing.T, c *client.Client, addr string) *client.Channel {
	t.Helper()
	ch := openProxy(t, c)
	if r := request(t, ch, connectCmd(addr)); r.GetOk() == nil {
		t.Fatalf("connect %s: %v", addr, r)
	}
	return ch
}

// readN reads recv messages until n bytes came.
func readN(t *testing.T, ch *client.Channel, n int) []byte {
	t.Helper()
	ctx := conmantest.Context(t)
	var got []byte
	for len(got) < n {
		m, err := ch.Recv(ctx)
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v", len(got), n, err)
		}
		if m.GetRecv() == nil {
			t.Fatalf("after %d of %d bytes: got %v", len(got), n, m)
		}
		got = append(got, m.GetRecv().GetBuff()...)
	}
	return got
}

func noViolations(t *testing.T, clients ...*client.Client) {
	t.Helper()
	for i, c := range clients {
		for _, v := range c.Violations() {
			t.Errorf("client %d: %s: %v", i, v.Problem, v.Command)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	srv := startServer(t, echo)
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := connect(t, c, srv.addr())
	if r := request(t, ch, sendCmd([]byte("hello"))); r.GetOk() == nil {
		t.Fatalf("send: %v", r)
	}
	if got := readN(t, ch, 5); string(got) != "hello" {
		t.Fatalf("got %q", got)
	}
	if r := request(t, ch, connectCmd(srv.addr())); !client.IsError(r, "proxy: already connected") {
		t.Fatalf("second connect: %v", r)
	}
	noViolations(t, c)
}

// TestLargeTransferWithBackpressure pushes 16 MiB through an echo server
// with a 256 KiB write queue: the daemon must pace the server's bytes to
// the session (or the session would be cut off), and the client's writes
// wait while the server is not reading.
func TestLargeTransferWithBackpressure(t *testing.T) {
	t.Parallel()
	srv := startServer(t, echo)
	d := conmantest.Start(t, func(cfg *conman.Config) { cfg.WriteQueueBytes = 256 << 10 })
	c := d.Dial(t)
	ch := connect(t, c, srv.addr())
	data := make([]byte, 16<<20)
	rand.Read(data)
	sendErr := make(chan error, 1)
	go func() {
		for off := 0; off < len(data); off += 64 << 10 {
			if err := ch.Send(sendCmd(data[off : off+64<<10])); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	got := readN(t, ch, len(data))
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the bytes that came back differ")
	}
	if c.Err() != nil {
		t.Fatalf("session ended: %v", c.Err())
	}
	noViolations(t, c)
}

// TestServerClose: the server closing ends the channel with disconnect.
func TestServerClose(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(conn net.Conn) { conn.Write([]byte("bye")) })
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := connect(t, c, srv.addr())
	if got := readN(t, ch, 3); string(got) != "bye" {
		t.Fatalf("got %q", got)
	}
	m, err := ch.Recv(conmantest.Context(t))
	if err != nil || m.GetDisconnect() == nil || m.GetDisconnect().GetError() != "" {
		t.Fatalf("got %v %v, want disconnect without an error", m, err)
	}
	select {
	case <-ch.Gone():
	case <-conmantest.Context(t).Done():
		t.Fatal("channel not closed")
	}
	noViolations(t, c)
}

// TestClientCloses: closing the channel, or sending disconnect, closes the
// connection.
func TestClientCloses(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	d := conmantest.Start(t)
	c := d.Dial(t)
	ctx := conmantest.Context(t)
	for _, how := range []string{"closeChan", "disconnect", "connection"} {
		t.Run(how, func(t *testing.T) {
			cl := c
			if how == "connection" {
				cl = d.Dial(t)
			}
			ch := connect(t, cl, srv.addr())
			conn := srv.accept(t)
			switch how {
			case "closeChan":
				if _, err := ch.Close(ctx, api.CloseChannel_TRY_CLOSE); err != nil {
					t.Fatal(err)
				}
			case "disconnect":
				if r := request(t, ch, &api.Command{Body: &api.Command_Disconnect{Disconnect: &api.Disconnect{}}}); r.GetOk() == nil {
					t.Fatalf("disconnect: %v", r)
				}
				<-ch.Gone()
			case "connection":
				cl.Close()
			}
			if n, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Fatalf("server read %d, %v; want EOF", n, err)
			}
		})
	}
	noViolations(t, c)
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	srv := startServer(t, echo)
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := openProxy(t, c)
	for _, tc := range []struct {
		cmd  *api.Command
		want string
	}{
		{sendCmd([]byte("x")), "proxy: not connected"},
		{connectCmd("10.0.0.1:80"), "proxy: refusing 10.0.0.1:80: 10.0.0.1 is not a loopback address"},
		{connectCmd("8.8.8.8:53"), "8.8.8.8 is not a loopback address"},
		{connectCmd("0.0.0.0:80"), "0.0.0.0 is an unspecified address"},
		{connectCmd("[::]:80"), ":: is an unspecified address"},
		{connectCmd("evil.test:80"), "proxy: refusing evil.test:80: 10.1.2.3 is not a loopback address"},
		{connectCmd("mixed.test:80"), "10.1.2.3 is not a loopback address"},
		{&api.Command{Body: &api.Command_Connect{Connect: &api.Connect{Proto: "udp", Addr: srv.addr()}}}, "unsupported protocol"},
		{connectCmd("127.0.0.1:1"), "proxy: connect 127.0.0.1:1: connect: connection refused"},
	} {
		if r := request(t, ch, tc.cmd); !client.IsError(r, tc.want) {
			t.Errorf("%v: got %v, want error %q", tc.cmd, r, tc.want)
		}
	}
	// The channel is still usable after refusals; a name that resolves
	// to loopback is fine.
	_, port, _ := net.SplitHostPort(srv.addr())
	if r := request(t, ch, connectCmd("localhost:"+port)); r.GetOk() == nil {
		t.Fatalf("connect localhost: %v", r)
	}

	// Read-only sessions may not connect; a body the service does not
	// serve is unsupported for them too, not refused.
	ro := d.DialAs(t, auth.Claims{UserID: 5, UserName: "viewer", ReadOnly: true})
	roCh := openProxy(t, ro)
	if r := request(t, roCh, connectCmd(srv.addr())); !client.IsError(r, "permission denied") {
		t.Fatalf("read-only connect: %v", r)
	}
	if r := request(t, roCh, &api.Command{Body: &api.Command_Read{Read: &api.File{Path: "x"}}}); !client.IsError(r, "unsupported command read on service proxy") {
		t.Fatalf("read-only read: %v", r)
	}

	// On a named channel the stream is its connecting session's.
	a, b := d.Dial(t), d.Dial(t)
	cha, err := a.Open(conmantest.Context(t), proxy.Name, "shared", api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	if r := request(t, cha, connectCmd(srv.addr())); r.GetOk() == nil {
		t.Fatalf("connect: %v", r)
	}
	chb, err := b.Open(conmantest.Context(t), proxy.Name, "shared", api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	if r := request(t, chb, sendCmd([]byte("x"))); !client.IsError(r, "permission denied") {
		t.Fatalf("another session's send: %v", r)
	}
	noViolations(t, c, ro, a, b)
}
