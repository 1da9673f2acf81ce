package supervise_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
)

// startDaemon runs the daemon binary on ws and opens a services channel.
func startDaemon(t *testing.T, ws string) (*conmantest.Process, *client.Channel) {
	t.Helper()
	p := conmantest.StartProcess(t, ws)
	c := conmantest.DialURL(t, client.URL(p.Addr, p.Token(t, "ada")), client.Options{})
	return p, openServices(t, c, "")
}

// waitActive returns the statuses of names once each is ACTIVE, whether
// that was before the list or after.
func waitActive(t *testing.T, ch *client.Channel, names ...string) map[string]*api.ServiceStatus {
	t.Helper()
	out := map[string]*api.ServiceStatus{}
	for name, st := range list(t, ch, api.ServiceList_ALL) {
		if st.State == api.ServiceStatus_ACTIVE {
			out[name] = st
		}
	}
	for _, name := range names {
		if out[name] == nil {
			out[name] = waitStatus(t, ch, name, inState(api.ServiceStatus_ACTIVE), nil)
		}
	}
	return out
}

// TestDaemonRestart: enabled services come back after the daemon dies
// (what the dead daemon left running is killed) and after it stops; on
// SIGTERM they stop one by one, the one started last first.
func TestDaemonRestart(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	stops := filepath.Join(ws, "stops.log")
	// Each records every SIGTERM it gets and ignores it, so that only the
	// kill after the grace ends it: the stops are then spaced by the
	// grace, in the order the daemon stops them.
	service := func(name string) *api.ServiceSpec {
		script := "trap 'echo " + name + " >> " + stops + "' TERM; echo up; while :; do sleep 0.05; done"
		return &api.ServiceSpec{Name: name, Args: sh(script), Restart: api.ServiceSpec_ALWAYS}
	}
	p, ch := startDaemon(t, ws)
	enable(t, ch, service("first"))
	waitActive(t, ch, "first")
	enable(t, ch, service("second"))
	before := waitActive(t, ch, "first", "second")

	p.Signal(syscall.SIGKILL)
	p.Wait(t)
	p, ch = startDaemon(t, ws)
	after := waitActive(t, ch, "first", "second")
	for _, name := range []string{"first", "second"} {
		old, now := int(before[name].Pid), int(after[name].Pid)
		if now == old || now == 0 || !after[name].Enabled {
			t.Fatalf("%s after the restart: %v (pid before %d)", name, after[name], old)
		}
		waitUntil(t, "the old "+name+" to be killed", func() bool { return !alive(old) })
	}

	p.Signal(syscall.SIGTERM)
	if code := p.Wait(t); code != 0 {
		t.Errorf("daemon exit code %d after SIGTERM\n%s", code, p.Log())
	}
	for _, name := range []string{"first", "second"} {
		if alive(int(after[name].Pid)) {
			t.Errorf("%s still runs after the daemon stopped", name)
		}
	}
	data, err := os.ReadFile(stops)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(data))
	// The forwarded SIGTERM reaches both at once; then the daemon stops
	// second (SIGTERM, SIGKILL after the grace), and only then first.
	lastSecond, lastFirst := -1, -1
	for i, name := range got {
		switch name {
		case "first":
			lastFirst = i
		case "second":
			lastSecond = i
		}
	}
	if lastFirst != len(got)-1 || lastSecond < 0 || lastSecond > lastFirst {
		t.Errorf("SIGTERMs in the order %q: want second stopped before first\n%s", got, p.Log())
	}

	_, ch = startDaemon(t, ws)
	again := waitActive(t, ch, "first", "second")
	if !again["first"].Enabled || !again["second"].Enabled {
		t.Errorf("after a graceful restart: %v", again)
	}
}
