package supervise_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/conmantest"
)

func TestEnableDisableDestroy(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := openServices(t, c, "")

	st := enable(t, ch, &api.ServiceSpec{Name: "web", Args: sh("exec sleep 600"), Restart: api.ServiceSpec_ALWAYS})
	if st.Source != "api" || st.Restart != api.ServiceSpec_ALWAYS {
		t.Errorf("enabled status %v", st)
	}
	active := waitStatus(t, ch, "web", inState(api.ServiceStatus_ACTIVE), nil)
	if active.Pid == 0 || active.StartedAt == 0 || active.Restarts != 0 {
		t.Fatalf("active status %v", active)
	}
	if got := list(t, ch, api.ServiceList_ENABLED); got["web"].GetState() != api.ServiceStatus_ACTIVE {
		t.Fatalf("enabled list %v", got)
	}
	if got := list(t, ch, api.ServiceList_DISABLED); len(got) != 0 {
		t.Fatalf("disabled list %v", got)
	}

	reply := request(t, ch, disableCmd("web"))
	if st := reply.GetService(); st.GetState() != api.ServiceStatus_PASSIVE || st.Enabled || st.Pid != 0 {
		t.Fatalf("disable: %v", reply)
	}
	if alive(int(active.Pid)) {
		t.Fatalf("the process of a disabled service still runs")
	}
	if got := list(t, ch, api.ServiceList_DISABLED); got["web"] == nil {
		t.Fatalf("disabled list %v", got)
	}

	// Enabled again by name: the same definition.
	enable(t, ch, &api.ServiceSpec{Name: "web"})
	again := waitStatus(t, ch, "web", func(st *api.ServiceStatus) bool {
		return st.State == api.ServiceStatus_ACTIVE && st.Pid != active.Pid
	}, nil)

	// Enabled with a new definition while it runs: it is restarted.
	enable(t, ch, &api.ServiceSpec{Name: "web", Args: sh("echo v2; exec sleep 600"), Restart: api.ServiceSpec_ALWAYS})
	redefined := waitStatus(t, ch, "web", func(st *api.ServiceStatus) bool {
		return st.State == api.ServiceStatus_ACTIVE && st.Pid != again.Pid
	}, nil)
	if alive(int(again.Pid)) || redefined.Args[2] != "echo v2; exec sleep 600" {
		t.Fatalf("redefinition: old pid alive %v, status %v", alive(int(again.Pid)), redefined)
	}

	if reply := request(t, ch, destroyCmd("web")); reply.GetOk() == nil {
		t.Fatalf("destroy: %v", reply)
	}
	if alive(int(redefined.Pid)) {
		t.Fatalf("the process of a destroyed service still runs")
	}
	if got := list(t, ch, api.ServiceList_ALL); len(got) != 0 {
		t.Fatalf("list after destroy %v", got)
	}

	for _, tt := range []struct {
		cmd  *api.Command
		want string
	}{
		{enableCmd(&api.ServiceSpec{Name: "nope"}), `services: no service "nope"`},
		{enableCmd(&api.ServiceSpec{Name: "bad name"}), `services: bad service name "bad name"`},
		{enableCmd(&api.ServiceSpec{Name: "x", Args: []string{"conman-no-such-command"}}), ""},
		{disableCmd("nope"), `services: no service "nope"`},
		{destroyCmd("nope"), `services: no service "nope"`},
	} {
		reply := request(t, ch, tt.cmd)
		if tt.want != "" && !strings.HasPrefix(reply.GetError(), tt.want) {
			t.Errorf("%v: %v, want error %q", tt.cmd, reply, tt.want)
		}
	}
	// A command that cannot be found is an error state with the reason.
	if st := waitStatus(t, ch, "x", inState(api.ServiceStatus_ERROR), nil); !strings.Contains(st.Reason, "executable file not found") {
		t.Errorf("unstartable service: %v", st)
	}
	noViolations(t, c)
}

// TestCrashLoop: a process that exits at once is restarted after a
// backoff that doubles, then given up on with state ERROR.
func TestCrashLoop(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := openServices(t, c, "")
	enable(t, ch, &api.ServiceSpec{Name: "crasher", Args: sh("exit 1")})

	var starts []int64
	var standbys []*api.ServiceStatus
	final := waitStatus(t, ch, "crasher", inState(api.ServiceStatus_ERROR), func(st *api.ServiceStatus) {
		switch st.State {
		case api.ServiceStatus_ACTIVE:
			starts = append(starts, st.StartedAt)
		case api.ServiceStatus_STANDBY:
			if st.NextStartAt != 0 {
				standbys = append(standbys, st)
			}
		}
	})
	if !strings.HasPrefix(final.Reason, "crash loop: it exited 4 times in a row") || final.ExitCode != 1 || final.Restarts != 3 || !final.Enabled {
		t.Fatalf("final status %v", final)
	}
	if len(starts) != 4 || len(standbys) != 3 {
		t.Fatalf("%d starts and %d waits, want 4 and 3", len(starts), len(standbys))
	}
	wantDelay := testOptions.BackoffMin
	for i, st := range standbys {
		if delay := time.Duration(st.NextStartAt-st.ExitedAt) * time.Millisecond; delay != wantDelay {
			t.Errorf("wait %d: %v, want %v", i, delay, wantDelay)
		}
		if starts[i+1] < st.NextStartAt {
			t.Errorf("restart %d at %d, before its time %d", i, starts[i+1], st.NextStartAt)
		}
		wantDelay *= 2
	}

	// Enabled again, it starts afresh.
	enable(t, ch, &api.ServiceSpec{Name: "crasher"})
	if st := waitStatus(t, ch, "crasher", inState(api.ServiceStatus_ACTIVE), nil); st.Restarts != 0 {
		t.Errorf("re-enabled status %v", st)
	}
	noViolations(t, c)
}

func TestRestartPolicies(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := openServices(t, c, "")
	tests := []struct {
		name    string
		script  string
		restart api.ServiceSpec_Restart
		want    api.ServiceStatus_State
	}{
		{"never-ok", "exit 0", api.ServiceSpec_NEVER, api.ServiceStatus_COMPLETE},
		{"never-fail", "exit 2", api.ServiceSpec_NEVER, api.ServiceStatus_ERROR},
		{"onfailure-ok", "exit 0", api.ServiceSpec_ON_FAILURE, api.ServiceStatus_COMPLETE},
		{"always-ok", "exit 0", api.ServiceSpec_ALWAYS, api.ServiceStatus_ERROR}, // a crash loop
	}
	for _, tt := range tests {
		enable(t, ch, &api.ServiceSpec{Name: tt.name, Args: sh(tt.script), Restart: tt.restart})
	}
	// The changes of all four come on one channel, interleaved.
	final := map[string]*api.ServiceStatus{}
	for len(final) < len(tests) {
		st := recv(t, ch).GetService()
		if st != nil && (st.State == api.ServiceStatus_COMPLETE || st.State == api.ServiceStatus_ERROR) {
			final[st.Name] = st
		}
	}
	for _, tt := range tests {
		st := final[tt.name]
		wantRestarts := uint32(0)
		if tt.restart == api.ServiceSpec_ALWAYS {
			wantRestarts = uint32(testOptions.CrashLoop - 1)
		}
		if st.State != tt.want || st.Restarts != wantRestarts {
			t.Errorf("%s: %v, want %v after %d restarts", tt.name, st, tt.want, wantRestarts)
		}
	}
	noViolations(t, c)
}

func TestReplit(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := openServices(t, c, "")
	replit := `run = "echo the run button"

[services.api]
run = ["sh", "-c", "echo port=$PORT; exec sleep 600"]
env = { PORT = "3000" }
restart = "always"

[services.worker]
run = "exit 0"

[services.broken]
run = "true"
restart = "sometimes"
`
	if err := os.WriteFile(filepath.Join(d.Workspace, ".replit"), []byte(replit), 0o644); err != nil {
		t.Fatal(err)
	}
	all := list(t, ch, api.ServiceList_ALL)
	if len(all) != 3 {
		t.Fatalf("list %v", all)
	}
	api0 := all["api"]
	if api0.Source != "replit" || api0.Enabled || api0.State != api.ServiceStatus_PASSIVE || api0.Restart != api.ServiceSpec_ALWAYS || len(api0.Args) != 3 {
		t.Errorf("declared service %v", api0)
	}
	if w := all["worker"]; w.Restart != api.ServiceSpec_ON_FAILURE || w.Args[0] != "sh" {
		t.Errorf("string run %v", w)
	}
	if b := all["broken"]; !strings.Contains(b.Reason, "restart must be") {
		t.Errorf("broken declaration %v", b)
	}

	log := openServices(t, c, "log:api")
	enable(t, ch, &api.ServiceSpec{Name: "api"})
	waitStatus(t, ch, "api", inState(api.ServiceStatus_ACTIVE), nil)
	if l := recvLog(t, log); l.Stream != api.LogLine_SYSTEM || !strings.HasPrefix(l.Text, "started: pid ") {
		t.Errorf("first log line %v", l)
	}
	if l := recvLog(t, log); l.Text != "port=3000" || l.Stream != api.LogLine_STDOUT || l.Source != "api" {
		t.Errorf("output line %v", l)
	}

	for _, tt := range []struct {
		cmd  *api.Command
		want string
	}{
		{enableCmd(&api.ServiceSpec{Name: "api", Args: sh("true")}), `services: "api" is declared in .replit`},
		{destroyCmd("api"), `services: "api" is declared in .replit`},
		{enableCmd(&api.ServiceSpec{Name: "broken"}), "services: .replit: services.broken: restart must be"},
	} {
		if reply := request(t, ch, tt.cmd); !strings.HasPrefix(reply.GetError(), tt.want) {
			t.Errorf("%v: %v, want error %q", tt.cmd, reply, tt.want)
		}
	}
	if st := request(t, ch, disableCmd("api")).GetService(); st.GetState() != api.ServiceStatus_PASSIVE {
		t.Errorf("disable: %v", st)
	}
	noViolations(t, c)
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	rw := d.Dial(t)
	ro := d.DialAs(t, auth.Claims{UserID: 8, UserName: "viewer", ReadOnly: true})
	rwCh := openServices(t, rw, "")
	roCh := openServices(t, ro, "")
	enable(t, rwCh, &api.ServiceSpec{Name: "web", Args: sh("echo hello; exec sleep 600")})

	for _, cmd := range []*api.Command{
		enableCmd(&api.ServiceSpec{Name: "web"}),
		enableCmd(&api.ServiceSpec{Name: "other", Args: sh("true")}),
		disableCmd("web"),
		destroyCmd("web"),
	} {
		if reply := request(t, roCh, cmd); reply.GetError() != "permission denied" {
			t.Errorf("read-only %v: %v, want permission denied", cmd, reply)
		}
	}
	if got := list(t, roCh, api.ServiceList_ALL); len(got) != 1 || !got["web"].Enabled {
		t.Errorf("read-only list %v", got)
	}
	// The read-only session sees the status changes and may follow logs.
	waitStatus(t, roCh, "web", inState(api.ServiceStatus_ACTIVE), nil)
	log := openServices(t, ro, "log:web")
	recvLog(t, log) // started
	if l := recvLog(t, log); l.Text != "hello" {
		t.Errorf("read-only log line %v", l)
	}
	noViolations(t, rw, ro)
}
