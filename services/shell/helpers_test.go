package shell_test

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/shell"
)

// testOptions are the options of the tests' shells: bash without the
// machine's rc files, which can take seconds to run and print anything.
var testOptions shell.Options

func TestMain(m *testing.M) {
	if bash, err := exec.LookPath("bash"); err == nil {
		testOptions.Argv = []string{bash, "--norc", "--noprofile"}
	}
	shell.Configure(testOptions)
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		removeBenchFile()
		os.Exit(code)
	}))
}

// withOptions sets the shell options for the daemons a test starts, and
// restores the tests' defaults after. Tests that use it must not be
// parallel: every daemon built meanwhile gets the options.
func withOptions(t *testing.T, opts shell.Options) {
	shell.Configure(opts)
	t.Cleanup(func() { shell.Configure(testOptions) })
}

// term is one session's view of a shell channel.
type term struct {
	t   testing.TB
	ch  *client.Channel
	out strings.Builder
}

func openShell(t testing.TB, c *client.Client, name string) *term {
	t.Helper()
	ch, err := c.Open(conmantest.Context(t), shell.Name, name, api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		t.Fatalf("open shell %q: %v", name, err)
	}
	return &term{t: t, ch: ch}
}

// until reads output until it contains want, and returns all of it.
func (tm *term) until(want string) string {
	tm.t.Helper()
	ctx := conmantest.Context(tm.t)
	for !strings.Contains(tm.out.String(), want) {
		m, err := tm.ch.Recv(ctx)
		if err != nil {
			tm.t.Fatalf("waiting for %q: %v; got so far:\n%q", want, err, tail(tm.out.String()))
		}
		tm.out.WriteString(m.GetOutput())
	}
	return tm.out.String()
}

func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}

// typeLine sends line and a carriage return, as a terminal does on Enter.
func (tm *term) typeLine(line string) {
	tm.t.Helper()
	if err := tm.ch.Send(&api.Command{Body: &api.Command_Input{Input: line + "\r"}}); err != nil {
		tm.t.Fatal(err)
	}
}

// request sends cmd with a ref and fails unless it is answered ok.
func (tm *term) request(cmd *api.Command) {
	tm.t.Helper()
	r, err := tm.ch.Request(conmantest.Context(tm.t), cmd)
	if err != nil || r.GetOk() == nil {
		tm.t.Fatalf("%v: %v %v", cmd, r, err)
	}
}

func (tm *term) resize(rows, cols uint32) {
	tm.t.Helper()
	tm.request(&api.Command{Body: &api.Command_ResizeTerm{ResizeTerm: &api.ResizeTerm{Rows: rows, Cols: cols}}})
}

// marker returns a command that prints the text "<word>" followed by
// what rest prints, and the output to wait for: the typed line itself,
// echoed, never matches.
func marker(word, rest string) (line, want string) {
	half := len(word) / 2
	return "echo " + word[:half] + `""` + word[half:] + rest, word
}

func noViolations(t *testing.T, clients ...*client.Client) {
	t.Helper()
	for i, c := range clients {
		for _, v := range c.Violations() {
			t.Errorf("client %d: %s: %v", i, v.Problem, v.Command)
		}
	}
}

// waitUntil polls cond, which inspects state outside the test's reach
// (/proc), until it holds or the timeout passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(conmantest.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func processExists(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return fields[0] != "Z" && fields[0] != "X"
}

// rawClient speaks the protocol by hand so that it can stop reading, as a
// frozen tab does.
type rawClient struct {
	t  testing.TB
	ws *websocket.Conn
	id int32 // the shell channel's id
}

func dialRaw(t testing.TB, d *conmantest.Daemon, smallBuffer bool) *rawClient {
	t.Helper()
	dialer := *websocket.DefaultDialer
	if smallBuffer {
		// A small receive buffer fills up quickly. It must be set before
		// connecting: shrinking it later makes the kernel drop what it
		// already let the peer send, and the peer backs off for long.
		netDialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			var err error
			c.Control(func(fd uintptr) {
				err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
			})
			return err
		}}
		dialer.NetDialContext = netDialer.DialContext
	}
	ws, _, err := dialer.Dial(d.URL(d.Token(t, conmantest.User)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	r := &rawClient{t: t, ws: ws}
	r.next(func(c *api.Command) bool { return c.GetContainerState() != nil })
	return r
}

func (r *rawClient) openShell(name string) {
	r.t.Helper()
	b, _ := proto.Marshal(&api.Command{Ref: "open", Body: &api.Command_OpenChan{OpenChan: &api.OpenChannel{Service: shell.Name, Name: name, Action: api.OpenChannel_ATTACH_OR_CREATE}}})
	if err := r.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		r.t.Fatal(err)
	}
	r.id = r.next(func(c *api.Command) bool { return c.GetOpenChanRes() != nil }).GetOpenChanRes().Id
}

// next reads until match accepts a message.
func (r *rawClient) next(match func(*api.Command) bool) *api.Command {
	r.t.Helper()
	r.ws.SetReadDeadline(time.Now().Add(conmantest.Timeout))
	for {
		_, data, err := r.ws.ReadMessage()
		if err != nil {
			r.t.Fatalf("raw read: %v", err)
		}
		cmd := new(api.Command)
		if err := proto.Unmarshal(data, cmd); err != nil {
			r.t.Fatal(err)
		}
		if match(cmd) {
			return cmd
		}
	}
}
