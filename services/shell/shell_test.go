package shell_test

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/shell"
)

// TestSharedShellAndScrollback: two sessions share one shell; a third
// that attaches later first gets everything it missed, exactly once, then
// live output.
func TestSharedShellAndScrollback(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	ca, cb, cc := d.Dial(t), d.Dial(t), d.Dial(t)
	a := openShell(t, ca, "shared")
	b := openShell(t, cb, "shared")

	line, want := marker("onetwo", "")
	a.typeLine(line)
	a.until(want)
	b.until(want) // b sees what a typed, and its output

	line, want = marker("fromb", "")
	b.typeLine(line)
	a.until(want)
	b.until(want)

	c := openShell(t, cc, "shared")
	line, want = marker("threefour", "")
	a.typeLine(line)
	gotA := a.until(want)
	gotC := c.until(want)
	if n := strings.Count(gotC, "onetwo"); n != 1 {
		t.Fatalf("the late session saw the earlier output %d times:\n%q", n, tail(gotC))
	}
	// c attached to a shell whose whole output is in the scrollback: up to
	// the last marker, it received exactly what a did.
	end := func(s string) string { return s[:strings.Index(s, want)+len(want)] }
	if end(gotA) != end(gotC) {
		t.Fatalf("streams differ:\na: %q\nc: %q", tail(end(gotA)), tail(end(gotC)))
	}
	noViolations(t, ca, cb, cc)
}

// TestResize: the terminal takes the smallest rows and the smallest
// columns among the read-write sessions; a viewer does not count, and a
// session that leaves stops counting.
func TestResize(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	ca, cb := d.Dial(t), d.Dial(t)
	viewer := d.DialAs(t, auth.Claims{UserID: 9, UserName: "viewer", ReadOnly: true})
	a := openShell(t, ca, "sized")
	b := openShell(t, cb, "sized")
	v := openShell(t, viewer, "sized")

	size := func(n int, want string) {
		t.Helper()
		word := fmt.Sprintf("szmark%d", n)
		line, _ := marker(word, ` "[$(stty size)]"`)
		a.typeLine(line)
		got := a.until(word)
		got = a.until("]")
		at := strings.LastIndex(got, word)
		if !strings.Contains(got[at:], want) {
			t.Fatalf("stty size says %q, want %q", got[at:], want)
		}
	}
	a.resize(40, 100)
	size(1, "[40 100]")
	b.resize(30, 120)
	size(2, "[30 100]")
	v.resize(10, 10)
	size(3, "[30 100]")
	if st, err := b.ch.Close(conmantest.Context(t), api.CloseChannel_DISCONNECT); err != nil || st != api.CloseChannelRes_DISCONNECT {
		t.Fatalf("disconnect: %v %v", st, err)
	}
	size(4, "[40 100]")
	if r, err := a.ch.Request(conmantest.Context(t), &api.Command{Body: &api.Command_ResizeTerm{ResizeTerm: &api.ResizeTerm{}}}); err != nil || !client.IsError(r, "bad terminal size") {
		t.Fatalf("zero size: %v %v", r, err)
	}
	noViolations(t, ca, cb, viewer)
}

func TestReadOnlyInputRefused(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	viewer := d.DialAs(t, auth.Claims{UserID: 9, UserName: "viewer", ReadOnly: true})
	v := openShell(t, viewer, "watched")
	for _, cmd := range []*api.Command{
		{Body: &api.Command_Input{Input: "touch /tmp/nope\r"}},
		{Body: &api.Command_SaneTerm{SaneTerm: &api.SaneTerm{}}},
		{Body: &api.Command_PTYConfig{PTYConfig: &api.PTYConfig{PipeMode: true}}},
	} {
		r, err := v.ch.Request(conmantest.Context(t), cmd)
		if err != nil || !client.IsError(r, "permission denied") {
			t.Fatalf("%v from a viewer: %v %v", cmd, r, err)
		}
	}
	noViolations(t, viewer)
}

// TestRestartOnExit: a shell that exits is replaced, and the sessions are
// told.
func TestRestartOnExit(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	ca, cb := d.Dial(t), d.Dial(t)
	a := openShell(t, ca, "phoenix")
	b := openShell(t, cb, "phoenix")
	line, want := marker("firstlife", ` "$$"`)
	a.typeLine(line)
	a.until(want)
	a.typeLine("exit")
	notice := "[conman: the shell exited (exit status 0); a new one is starting]"
	a.until(notice)
	b.until(notice)
	line, want = marker("reborn", "")
	b.typeLine(line)
	a.until(want)
	b.until(want)
	noViolations(t, ca, cb)
}

// TestOutlivesClients: a named shell keeps running when its last session
// goes, and a session that comes back sees what it printed.
func TestOutlivesClients(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	first := d.Dial(t)
	a := openShell(t, first, "survivor")
	line, want := marker("beforereload", "")
	a.typeLine(line)
	a.until(want)
	first.Kill() // a crashed tab

	again := d.Dial(t)
	b := openShell(t, again, "survivor")
	b.until(want)
	noViolations(t, again)
}

// TestGraceExpires: once the grace is over, a shell with no session is
// stopped.
func TestGraceExpires(t *testing.T) {
	opts := testOptions
	opts.Grace = 50 * time.Millisecond
	withOptions(t, opts)
	d := conmantest.Start(t)
	c := d.Dial(t)
	a := openShell(t, c, "short-lived")
	a.typeLine(`echo "pid""=$$="`)
	m := regexp.MustCompile(`pid=(\d+)=`).FindStringSubmatch(a.until("=\r"))
	if m == nil {
		t.Fatalf("no pid in %q", a.out.String())
	}
	pid, _ := strconv.Atoi(m[1])
	if !processExists(pid) {
		t.Fatalf("pid %d is not running", pid)
	}
	c.Close()
	waitUntil(t, "the shell to be stopped", func() bool { return !processExists(pid) })
}

// TestPipeModeAndSane, with a shell without line editing (which would
// reset the modes itself): pipe mode turns echo and canonical input off,
// saneTerm turns them on again.
func TestPipeModeAndSane(t *testing.T) {
	withOptions(t, shell.Options{Argv: []string{"/bin/sh"}})
	d := conmantest.Start(t)
	c := d.Dial(t)
	a := openShell(t, c, "modes")
	a.request(&api.Command{Body: &api.Command_PTYConfig{PTYConfig: &api.PTYConfig{PipeMode: true}}})
	a.typeLine(`echo "[$(stty -a | tr ' ' '\n' | grep -x -e -echo -e -icanon | sort | tr '\n' ' ')]"`)
	out := a.until("[-echo -icanon ]")
	if strings.Contains(out, "stty -a") {
		t.Fatalf("input was echoed in pipe mode: %q", out)
	}
	a.request(&api.Command{Body: &api.Command_SaneTerm{SaneTerm: &api.SaneTerm{}}})
	a.typeLine(`echo "{$(stty -a | tr ' ' '\n' | grep -x -e echo -e icanon | sort | tr '\n' ' ')}"`)
	out = a.until("{echo icanon }")
	if !strings.Contains(out, "stty -a") {
		t.Fatalf("input was not echoed after saneTerm: %q", out)
	}
	noViolations(t, c)
}

func TestLoginShell(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	for _, tt := range []struct{ shellVar, want string }{
		{"/bin/sh", "/bin/sh"},
		{"", bash},
		{"/no/such/shell", bash},
	} {
		t.Setenv("SHELL", tt.shellVar)
		if got := shell.LoginShell(); got != tt.want {
			t.Errorf("SHELL=%q: LoginShell() = %q, want %q", tt.shellVar, got, tt.want)
		}
	}
}

// TestStalledSessionDetached: a session that stops reading is detached
// from the shell while another receives the whole stream; once it reads
// again it is resumed and told what it missed.
func TestStalledSessionDetached(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t, func(c *conman.Config) {
		c.WriteQueueBytes = 256 << 10
		c.WriteWait = conmantest.Timeout * 3 // the stalled socket stays open
	})
	stalled := dialRaw(t, d, true)
	stalled.openShell("flood")
	fast := d.Dial(t)
	a := openShell(t, fast, "flood")

	const n = 1_500_000 // about 12 MB of output
	a.typeLine(fmt.Sprintf(`seq %d; echo "fl""ood-done"`, n))
	out := a.until("flood-done")
	start := regexp.MustCompile(`\r1\r\n2\r\n3\r\n`).FindStringIndex(out)[0] + 1
	lines := strings.Split(out[start:strings.LastIndex(out, "flood-done")], "\r\n")
	for i := 1; i <= n; i++ {
		if lines[i-1] != strconv.Itoa(i) {
			t.Fatalf("the fast session's line %d is %q", i, lines[i-1])
		}
	}
	// The stalled session reads again: it was detached, and is resumed
	// from where it stopped; what the scrollback no longer held is
	// skipped, and it is told so.
	var seen strings.Builder
	stalled.next(func(c *api.Command) bool {
		seen.WriteString(c.GetOutput())
		return strings.Contains(seen.String(), "flood-done")
	})
	if got := seen.String(); !strings.Contains(got, "bytes of output were skipped]") || len(got) >= len(out) {
		t.Fatalf("the stalled session got %d bytes (the fast one %d), notice: %v", len(got), len(out), strings.Contains(got, "skipped"))
	}
	if m := conmantest.Metrics(t, d.Addr()); m["conman_shell_detached_total"] < 1 {
		t.Fatalf("detach not counted: %v", m["conman_shell_detached_total"])
	}
	noViolations(t, fast)
}

// TestShellEnvironment: the shell runs in the workspace with
// TERM=xterm-256color and none of the daemon's CONMAN_* variables.
func TestShellEnvironment(t *testing.T) {
	t.Setenv("CONMAN_SHELLTEST_SECRET", "hidden") // read when the shell starts
	d := conmantest.Start(t)
	c := d.Dial(t)
	a := openShell(t, c, "env")
	a.typeLine(`echo "E[$TERM|$(pwd)|$(env | grep -c '^CONMAN_')]"`)
	want := fmt.Sprintf("E[xterm-256color|%s|0]", d.Workspace)
	a.until(want)
	noViolations(t, c)
}
