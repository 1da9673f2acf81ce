package ports_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/channels/channelstest"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services"
	"github.com/conman-dev/conman/services/ports"
)

// listenEnv makes the test binary a helper process that listens on the
// address it names, prints the port, and exits when its stdin closes.
const listenEnv = "PORTS_TEST_LISTEN"

func TestMain(m *testing.M) {
	if addr := os.Getenv(listenEnv); addr != "" {
		network := "tcp4" // "tcp" would listen on [::] for 0.0.0.0
		if strings.HasPrefix(addr, "[") {
			network = "tcp6"
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	ports.Configure(ports.Options{Interval: 20 * time.Millisecond})
	goleak.VerifyTestMain(m)
}

// listenElsewhere starts a process that listens on addr and returns its
// port and a function that ends it.
func listenElsewhere(t *testing.T, addr string) (int, func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), listenEnv+"="+addr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		stdin.Close()
		cmd.Wait()
	}
	t.Cleanup(stop)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	return port, stop
}

// waitPort reads channel-0 messages until one reports port: a portOpen
// (open) or a portClose. Other ports come and go as other tests run; they
// are skipped, but never the daemon's own.
func waitPort(t *testing.T, c *client.Client, port int, open bool, daemonPort int) *api.Command {
	t.Helper()
	ctx := conmantest.Context(t)
	for {
		m, err := c.Chan0(ctx)
		if err != nil {
			t.Fatalf("waiting for port %d (open %v): %v", port, open, err)
		}
		if po := m.GetPortOpen(); po != nil && int(po.Port) == daemonPort {
			t.Fatalf("the daemon's own port was reported: %v", m)
		}
		switch {
		case open && int(m.GetPortOpen().GetPort()) == port:
			return m
		case !open && int(m.GetPortClose().GetPort()) == port:
			return m
		}
	}
}

func TestPortsOpenAndClose(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	_, portText, _ := net.SplitHostPort(d.Addr())
	daemonPort, _ := strconv.Atoi(portText)
	early := d.Dial(t)

	port, stop := listenElsewhere(t, "127.0.0.1:0")
	m := waitPort(t, early, port, true, daemonPort).GetPortOpen()
	if m.Address != "127.0.0.1" || m.Forwarded {
		t.Fatalf("portOpen %v, want 127.0.0.1, not forwarded", m)
	}
	// A session that connects now is told at once.
	late := d.Dial(t)
	waitPort(t, late, port, true, daemonPort)

	wide, stopWide := listenElsewhere(t, "0.0.0.0:0")
	for _, c := range []*client.Client{early, late} {
		if m := waitPort(t, c, wide, true, daemonPort).GetPortOpen(); m.Address != "0.0.0.0" || !m.Forwarded {
			t.Fatalf("portOpen %v, want 0.0.0.0, forwarded", m)
		}
	}
	stop()
	for _, c := range []*client.Client{early, late} {
		if m := waitPort(t, c, port, false, daemonPort).GetPortClose(); m.Address != "127.0.0.1" {
			t.Fatalf("portClose %v", m)
		}
	}
	stopWide()
	waitPort(t, late, wide, false, daemonPort)
	for i, c := range []*client.Client{early, late} {
		for _, v := range c.Violations() {
			t.Errorf("client %d: %s: %v", i, v.Problem, v.Command)
		}
	}
}

// A fake proc directory makes every change exact.

type fakeProc struct {
	t   *testing.T
	dir string
}

func newFakeProc(t *testing.T) *fakeProc {
	dir := t.TempDir()
	for _, sub := range []string{"net", "self/fd"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := &fakeProc{t, dir}
	p.set()
	return p
}

const header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

// set replaces net/tcp with listeners given as "hexaddr:hexport inode".
func (p *fakeProc) set(listeners ...string) {
	text := header
	for i, l := range listeners {
		addr, inode, _ := strings.Cut(l, " ")
		text += fmt.Sprintf("%4d: %s 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 %s 1 0 100 0 0 10 0\n", i, addr, inode)
	}
	tmp := filepath.Join(p.dir, "net", "tcp.tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(p.dir, "net", "tcp")); err != nil {
		p.t.Fatal(err)
	}
}

func next(t *testing.T, conn *channelstest.Conn) *api.Command {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), conmantest.Timeout)
	defer cancel()
	m, err := conn.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestChangesWithAFakeProc(t *testing.T) {
	t.Parallel()
	proc := newFakeProc(t)
	// Inode 99 is one of "the daemon's" sockets.
	if err := os.Symlink("socket:[99]", filepath.Join(proc.dir, "self", "fd", "3")); err != nil {
		t.Fatal(err)
	}
	proc.set("0100007F:1F90 10", "00000000:0050 99")

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hub := channels.NewHub(channels.Options{Registry: channels.NewRegistry(), Logger: log, PingInterval: -1})
	svc := ports.New(services.Env{Hub: hub, Logger: log}, ports.Options{Interval: 5 * time.Millisecond, ProcDir: proc.dir})
	defer svc.Stop(context.Background())
	defer hub.Shutdown(context.Background())

	conn := channelstest.NewConn()
	s, err := hub.NewSession(conn, channels.Identity{UserName: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(channels.ReasonClientClosed)
	next(t, conn) // bootStatus
	next(t, conn) // containerState
	if m := next(t, conn).GetPortOpen(); m.GetPort() != 8080 || m.GetAddress() != "127.0.0.1" || m.GetForwarded() {
		t.Fatalf("greeting %v, want 127.0.0.1:8080 only (80 is the daemon's)", m)
	}

	proc.set("0100007F:1F90 10", "00000000:0050 99", "00000000:0BB8 11")
	if m := next(t, conn).GetPortOpen(); m.GetPort() != 3000 || m.GetAddress() != "0.0.0.0" || !m.GetForwarded() {
		t.Fatalf("got %v, want portOpen 0.0.0.0:3000 forwarded", m)
	}
	proc.set("00000000:0050 99", "00000000:0BB8 11")
	if m := next(t, conn).GetPortClose(); m.GetPort() != 8080 || m.GetAddress() != "127.0.0.1" {
		t.Fatalf("got %v, want portClose 127.0.0.1:8080", m)
	}
	if got := fmt.Sprint(svc.Ports()); got != "[0.0.0.0:3000]" {
		t.Fatalf("open ports %s", got)
	}

	// An unreadable proc is survived; the ports come back with it.
	os.Remove(filepath.Join(proc.dir, "net", "tcp"))
	proc.set("00000000:0BB8 11", "00000000:1F40 12")
	if m := next(t, conn).GetPortOpen(); m.GetPort() != 8000 {
		t.Fatalf("got %v, want portOpen 8000", m)
	}
	if conn.Buffered() != 0 {
		t.Fatalf("%d unexpected messages", conn.Buffered())
	}
}
