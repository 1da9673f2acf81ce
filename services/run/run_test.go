package run_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/run"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// runner is one session's view of a run channel: the states and output
// it received, in order, as a list of events ("Running", "Stopped", and
// output lines).
type runner struct {
	t      *testing.T
	ch     *client.Channel
	events []string
	out    strings.Builder
}

func openRunner(t *testing.T, c *client.Client, service string) *runner {
	t.Helper()
	ch, err := c.Open(conmantest.Context(t), service, "shellrunner", api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		t.Fatalf("open %s: %v", service, err)
	}
	return &runner{t: t, ch: ch}
}

// recv receives one message and records it.
func (r *runner) recv() {
	r.t.Helper()
	m, err := r.ch.Recv(conmantest.Context(r.t))
	if err != nil {
		r.t.Fatalf("recv: %v; events: %q", err, r.events)
	}
	switch body := m.Body.(type) {
	case *api.Command_State:
		r.events = append(r.events, body.State.String())
	case *api.Command_Output:
		r.out.WriteString(body.Output)
		r.events = append(r.events, "out:"+body.Output)
	default:
		r.t.Fatalf("unexpected message %v", m)
	}
}

// until receives until the output contains want n times in all; it
// returns the events received so far.
func (r *runner) until(want string) []string {
	r.t.Helper()
	return r.untilN(want, 1)
}

func (r *runner) untilN(want string, n int) []string {
	r.t.Helper()
	for strings.Count(r.out.String(), want) < n {
		r.recv()
	}
	return r.events
}

// untilStates receives until the states received so far are want, and
// fails as soon as they cannot become want.
func (r *runner) untilStates(want string) {
	r.t.Helper()
	for got := states(r.events); got != want; got = states(r.events) {
		if !strings.HasPrefix(want, got) {
			r.t.Fatalf("states %q, want %q", got, want)
		}
		r.recv()
	}
}

// states returns the state events, in order.
func states(events []string) string {
	var s []string
	for _, e := range events {
		if !strings.HasPrefix(e, "out:") {
			s = append(s, e)
		}
	}
	return strings.Join(s, " ")
}

func (r *runner) request(cmd *api.Command) *api.Command {
	r.t.Helper()
	reply, err := r.ch.Request(conmantest.Context(r.t), cmd)
	if err != nil {
		r.t.Fatalf("%v: %v", cmd, err)
	}
	return reply
}

func runMain() *api.Command {
	return &api.Command{Body: &api.Command_RunMain{RunMain: &api.RunMain{}}}
}

func clearCmd() *api.Command { return &api.Command{Body: &api.Command_Clear{Clear: &api.Clear{}}} }

func writeReplit(t *testing.T, dir, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, ".replit"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func noViolations(t *testing.T, clients ...*client.Client) {
	t.Helper()
	for i, c := range clients {
		for _, v := range c.Violations() {
			t.Errorf("client %d: %s: %v", i, v.Problem, v.Command)
		}
	}
}

// TestRunSequence: state on attach, runMain starts, clear stops, runMain
// while running restarts, a program that ends by itself is Stopped; every
// name of the service behaves alike.
func TestRunSequence(t *testing.T) {
	t.Parallel()
	for _, service := range run.Names {
		t.Run(service, func(t *testing.T) {
			t.Parallel()
			d := conmantest.Start(t)
			c := d.Dial(t)
			writeReplit(t, d.Workspace, `run = "echo run-$RANDOM-started; exec sleep 1000"`)
			r := openRunner(t, c, service)
			r.untilStates("Stopped") // on attach

			if reply := r.request(runMain()); reply.GetOk() == nil {
				t.Fatalf("runMain: %v", reply)
			}
			r.untilN("-started", 1)
			r.untilStates("Stopped Running")
			if reply := r.request(clearCmd()); reply.GetOk() == nil {
				t.Fatalf("clear: %v", reply)
			}
			r.untilStates("Stopped Running Stopped")

			r.request(runMain())
			r.untilN("-started", 2)
			r.request(runMain()) // restarts
			r.untilN("-started", 3)
			r.untilStates("Stopped Running Stopped Running Stopped Running")

			writeReplit(t, d.Workspace, `run = ["echo", "short-lived"]`)
			r.request(runMain())
			r.until("short-lived")
			r.untilStates("Stopped Running Stopped Running Stopped Running Stopped Running Stopped")
			noViolations(t, c)
		})
	}
}

// TestAttachMidRun: a session attaching while a program runs is told
// Running, then sees its output so far.
func TestAttachMidRun(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	a, b := d.Dial(t), d.Dial(t)
	writeReplit(t, d.Workspace, `run = "echo early-output; exec cat"`)
	ra := openRunner(t, a, "shellrun2")
	ra.untilStates("Stopped")
	ra.request(runMain())
	ra.until("early-output")
	ra.untilStates("Stopped Running")

	rb := openRunner(t, b, "shellrun2")
	events := rb.until("early-output")
	if events[0] != "Running" {
		t.Fatalf("first event %q, want Running", events[0])
	}
	// input reaches the program; both sessions see it.
	rb.ch.Send(&api.Command{Body: &api.Command_Input{Input: "typed-line\r"}})
	ra.until("typed-line")
	rb.until("typed-line")
	ra.request(clearCmd())
	ra.untilStates("Stopped Running Stopped")
	rb.untilStates("Running Stopped")

	// After the end, an attaching session is told Stopped, then sees the
	// last run's output.
	c := d.Dial(t)
	rc := openRunner(t, c, "shellrun2")
	events = rc.until("typed-line")
	if events[0] != "Stopped" || states(events) != "Stopped" {
		t.Fatalf("events of a late session: %q", events)
	}
	noViolations(t, a, b, c)
}

func TestNothingToRun(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	r := openRunner(t, c, "run2")
	r.untilStates("Stopped")
	reply := r.request(runMain())
	if !client.IsError(reply, "nothing to run") {
		t.Fatalf("runMain in an empty project: %v", reply)
	}
	if reply := r.request(clearCmd()); reply.GetOk() == nil {
		t.Fatalf("clear with nothing running: %v", reply)
	}
	noViolations(t, c)
}

func TestReadOnlyCannotRun(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	writeReplit(t, d.Workspace, `run = "touch ran"`)
	viewer := d.DialAs(t, auth.Claims{UserID: 9, UserName: "viewer", ReadOnly: true})
	r := openRunner(t, viewer, "shellrun2")
	r.untilStates("Stopped")
	for _, cmd := range []*api.Command{runMain(), clearCmd(), {Body: &api.Command_Input{Input: "x"}}} {
		if reply := r.request(cmd); !client.IsError(reply, "permission denied") {
			t.Fatalf("%v from a viewer: %v", cmd, reply)
		}
	}
	if _, err := os.Stat(filepath.Join(d.Workspace, "ran")); err == nil {
		t.Fatal("the program ran")
	}
	noViolations(t, viewer)
}
