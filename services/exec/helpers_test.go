package exec_test

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
)

// Variables of the daemon's environment that must not reach processes.
const (
	secretConmanVar = "CONMAN_EXECTEST_SECRET"
	secretTokenVar  = "EXECTEST_API_TOKEN"
	plainVar        = "EXECTEST_PLAIN"
)

func TestMain(m *testing.M) {
	// The in-process daemon's environment is the test binary's.
	os.Setenv(secretConmanVar, "conman-only")
	os.Setenv(secretTokenVar, "hunter2")
	os.Setenv(plainVar, "visible")
	goleak.VerifyTestMain(m)
}

func execCmd(e *api.Exec) *api.Command {
	return &api.Command{Body: &api.Command_Exec{Exec: e}}
}

func args(a ...string) *api.Exec { return &api.Exec{Args: a} }

// recorder keeps every message a client receives, in order.
type recorder struct {
	mu   sync.Mutex
	cmds []*api.Command
}

func (r *recorder) trace(cmd *api.Command) {
	r.mu.Lock()
	r.cmds = append(r.cmds, cmd)
	r.mu.Unlock()
}

// on returns what arrived on channel id.
func (r *recorder) on(id int32) []*api.Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*api.Command
	for _, c := range r.cmds {
		if c.Channel == id {
			out = append(out, c)
		}
	}
	return out
}

// dialRecorded connects as the default user and records everything.
func dialRecorded(t *testing.T, d *conmantest.Daemon) (*client.Client, *recorder) {
	t.Helper()
	rec := &recorder{}
	c := conmantest.DialURL(t, d.URL(d.Token(t, conmantest.User)), client.Options{Trace: rec.trace})
	return c, rec
}

func openExec(t *testing.T, c *client.Client) *client.Channel {
	t.Helper()
	ch, err := c.Open(conmantest.Context(t), "exec", "", api.OpenChannel_CREATE)
	if err != nil {
		t.Fatalf("open exec: %v", err)
	}
	return ch
}

// run sends e and returns its reply and the output streamed before it.
func run(t *testing.T, ch *client.Channel, e *api.Exec) (reply *api.Command, stdout, stderr string) {
	t.Helper()
	reply, err := ch.Request(conmantest.Context(t), execCmd(e))
	if err != nil {
		t.Fatalf("exec %q: %v", e.Args, err)
	}
	var out, errOut strings.Builder
	for {
		m, ok := ch.TryRecv()
		if !ok {
			break
		}
		out.WriteString(m.GetOutput())
		errOut.WriteString(m.GetStderr())
	}
	return reply, out.String(), errOut.String()
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

// procStat reads state, ppid and pgrp of pid; ok is false once it is gone.
func procStat(pid int) (state byte, ppid, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, _ = strconv.Atoi(fields[1])
	pgrp, _ = strconv.Atoi(fields[2])
	return fields[0][0], ppid, pgrp, true
}

// livingInGroup lists the processes of group pgid that have not exited.
func livingInGroup(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, _, pgrp, ok := procStat(pid); ok && pgrp == pgid && state != 'Z' && state != 'X' {
			pids = append(pids, pid)
		}
	}
	return pids
}
