package supervise_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/supervise"
)

// Options of every in-process daemon of this package: quick kills and a
// short backoff, so that a crash loop takes well under a second.
var testOptions = supervise.Options{
	KillGrace:  300 * time.Millisecond,
	BackoffMin: 100 * time.Millisecond,
	BackoffMax: time.Second,
	QuickExit:  10 * time.Second,
	CrashLoop:  4,
}

func TestMain(m *testing.M) {
	supervise.Configure(testOptions)
	goleak.VerifyTestMain(m)
}

func openServices(t *testing.T, c *client.Client, name string) *client.Channel {
	t.Helper()
	action := api.OpenChannel_CREATE
	if name != "" {
		action = api.OpenChannel_ATTACH_OR_CREATE
	}
	ch, err := c.Open(conmantest.Context(t), supervise.Name, name, action)
	if err != nil {
		t.Fatalf("open services %q: %v", name, err)
	}
	return ch
}

func request(t *testing.T, ch *client.Channel, cmd *api.Command) *api.Command {
	t.Helper()
	reply, err := ch.Request(conmantest.Context(t), cmd)
	if err != nil {
		t.Fatalf("request %v: %v", cmd, err)
	}
	return reply
}

func enableCmd(spec *api.ServiceSpec) *api.Command {
	return &api.Command{Body: &api.Command_ServiceEnable{ServiceEnable: spec}}
}

func disableCmd(name string) *api.Command {
	return &api.Command{Body: &api.Command_ServiceDisable{ServiceDisable: &api.ServiceRef{Name: name}}}
}

func destroyCmd(name string) *api.Command {
	return &api.Command{Body: &api.Command_ServiceDestroy{ServiceDestroy: &api.ServiceRef{Name: name}}}
}

// enable defines and enables a service and returns its status.
func enable(t *testing.T, ch *client.Channel, spec *api.ServiceSpec) *api.ServiceStatus {
	t.Helper()
	reply := request(t, ch, enableCmd(spec))
	st := reply.GetService()
	if st == nil || !st.Enabled {
		t.Fatalf("enable %v: reply %v", spec, reply)
	}
	return st
}

func list(t *testing.T, ch *client.Channel, filter api.ServiceList_Filter) map[string]*api.ServiceStatus {
	t.Helper()
	reply := request(t, ch, &api.Command{Body: &api.Command_ServiceList{ServiceList: &api.ServiceList{Filter: filter}}})
	res := reply.GetServiceListRes()
	if res == nil {
		t.Fatalf("serviceList: reply %v", reply)
	}
	out := map[string]*api.ServiceStatus{}
	for _, st := range res.Services {
		out[st.Name] = st
	}
	return out
}

func recv(t *testing.T, ch *client.Channel) *api.Command {
	t.Helper()
	cmd, err := ch.Recv(conmantest.Context(t))
	if err != nil {
		t.Fatalf("recv on channel %d: %v", ch.ID(), err)
	}
	return cmd
}

// waitStatus reads the status changes on ch until service name satisfies
// cond, and returns that status; seen, if set, gets every status of name.
func waitStatus(t *testing.T, ch *client.Channel, name string, cond func(*api.ServiceStatus) bool, seen func(*api.ServiceStatus)) *api.ServiceStatus {
	t.Helper()
	for {
		cmd := recv(t, ch)
		st := cmd.GetService()
		if st == nil {
			t.Fatalf("unexpected message %v", cmd)
		}
		if st.Name != name {
			continue
		}
		if seen != nil {
			seen(st)
		}
		if cond(st) {
			return st
		}
	}
}

func inState(state api.ServiceStatus_State) func(*api.ServiceStatus) bool {
	return func(st *api.ServiceStatus) bool { return st.State == state }
}

// recvLog returns the next line on a log:<name> channel.
func recvLog(t *testing.T, ch *client.Channel) *api.LogLine {
	t.Helper()
	cmd := recv(t, ch)
	line := cmd.GetServiceLog()
	if line == nil {
		t.Fatalf("unexpected message on a log channel: %v", cmd)
	}
	return line
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

// alive reports whether pid is a process that has not exited.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

// gate is a file a process waits for.
type gate string

func newGate(dir, name string) gate { return gate(filepath.Join(dir, name)) }

// wait is shell code that waits until the gate is opened.
func (g gate) wait() string {
	return "while [ ! -e '" + string(g) + "' ]; do sleep 0.02; done"
}

func (g gate) open(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(string(g), nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

func sh(script string) []string { return []string{"sh", "-c", script} }
