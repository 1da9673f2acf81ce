package exec_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
)

func TestExitStatus(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := openExec(t, c)
	tests := []struct {
		name      string
		exec      *api.Exec
		wantError string // "" means ok
	}{
		{"success", args("true"), ""},
		{"exit code", args("sh", "-c", "exit 3"), "exit status 3"},
		{"killed", args("sh", "-c", "kill -KILL $$"), "signal: killed"},
		{"terminated", args("sh", "-c", "kill -TERM $$"), "signal: terminated"},
		{"unknown command", args("conman-no-such-command"), `exec: "conman-no-such-command": executable file not found in $PATH`},
		{"empty args", args(), "exec: no command given"},
		{"no shell unless asked", args("echo", "$HOME", "*"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, _, _ := run(t, ch, tt.exec)
			if tt.wantError == "" {
				if reply.GetOk() == nil {
					t.Fatalf("reply %v, want ok", reply)
				}
				return
			}
			if got := reply.GetError(); got != tt.wantError {
				t.Fatalf("reply %v, want error %q", reply, tt.wantError)
			}
		})
	}
	reply, out, _ := run(t, ch, args("echo", "$HOME", "*"))
	if reply.GetOk() == nil || out != "$HOME *\n" {
		t.Fatalf("echo without a shell: %v %q", reply, out)
	}
	noViolations(t, c)
}

// TestOrdering: state Running, every byte of output, state Stopped, then
// the reply with the ref, and nothing else carries the ref.
func TestOrdering(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c, rec := dialRecorded(t, d)
	ch := openExec(t, c)
	const n = 50000
	reply, _, _ := run(t, ch, args("seq", strconv.Itoa(n)))
	if reply.GetOk() == nil {
		t.Fatalf("reply %v", reply)
	}
	msgs := rec.on(ch.ID())
	if len(msgs) < 4 {
		t.Fatalf("only %d messages", len(msgs))
	}
	if msgs[0].GetState() != api.State_Running || msgs[0].Body == nil {
		t.Fatalf("first message %v, want state Running", msgs[0])
	}
	last, stopped := msgs[len(msgs)-1], msgs[len(msgs)-2]
	if last.Ref != reply.Ref || last.GetOk() == nil {
		t.Fatalf("last message %v, want the ok reply", last)
	}
	if _, ok := stopped.Body.(*api.Command_State); !ok || stopped.GetState() != api.State_Stopped {
		t.Fatalf("message before the reply %v, want state Stopped", stopped)
	}
	var out strings.Builder
	for _, m := range msgs[1 : len(msgs)-2] {
		if m.Ref != "" {
			t.Fatalf("streamed message with a ref: %v", m)
		}
		o, ok := m.Body.(*api.Command_Output)
		if !ok {
			t.Fatalf("unexpected message in the stream: %v", m)
		}
		out.WriteString(o.Output)
	}
	var want strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if out.String() != want.String() {
		t.Fatalf("output of %d bytes differs from the %d expected", out.Len(), want.Len())
	}
	noViolations(t, c)
}

func TestStderr(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := openExec(t, c)
	script := "echo out; echo err >&2"

	reply, out, errOut := run(t, ch, &api.Exec{Args: []string{"sh", "-c", script}, SplitStderr: true})
	if reply.GetOk() == nil || out != "out\n" || errOut != "err\n" {
		t.Fatalf("split: reply %v, stdout %q, stderr %q", reply, out, errOut)
	}
	reply, out, errOut = run(t, ch, args("sh", "-c", script))
	if reply.GetOk() == nil || out != "out\nerr\n" || errOut != "" {
		t.Fatalf("merged: reply %v, output %q, stderr %q", reply, out, errOut)
	}
	noViolations(t, c)
}

func TestEnvironment(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := openExec(t, c)
	reply, out, _ := run(t, ch, &api.Exec{Args: []string{"env"}, Env: map[string]string{"GREETING": "hello world", plainVar: "overridden"}})
	if reply.GetOk() == nil {
		t.Fatalf("reply %v", reply)
	}
	env := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	if env["GREETING"] != "hello world" || env[plainVar] != "overridden" {
		t.Errorf("requested variables missing: GREETING=%q %s=%q", env["GREETING"], plainVar, env[plainVar])
	}
	if env["PATH"] == "" || env["HOME"] != os.Getenv("HOME") {
		t.Errorf("the daemon's ordinary environment is missing: PATH=%q HOME=%q", env["PATH"], env["HOME"])
	}
	for k := range env {
		if strings.HasPrefix(k, "CONMAN_") || k == secretTokenVar {
			t.Errorf("secret variable %s reached the process", k)
		}
	}
	reply, out, _ = run(t, ch, args("pwd"))
	if reply.GetOk() == nil || strings.TrimSpace(out) != d.Workspace {
		t.Errorf("working directory %q, want the workspace %q", out, d.Workspace)
	}
	noViolations(t, c)
}

func TestStdinLifecycle(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := openExec(t, c)
	ctx := conmantest.Context(t)

	e := execCmd(&api.Exec{Args: []string{"cat"}, Lifecycle: api.Exec_STDIN})
	e.Ref = "cat"
	if err := ch.Send(e); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"hello ", "world\n", ""} { // "" closes stdin
		if err := ch.Send(&api.Command{Body: &api.Command_Input{Input: text}}); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	for {
		m, err := ch.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString(m.GetOutput())
		if m.Ref == "cat" {
			if m.GetOk() == nil {
				t.Fatalf("reply %v", m)
			}
			break
		}
	}
	if out.String() != "hello world\n" {
		t.Fatalf("cat echoed %q", out.String())
	}
	// Without the STDIN lifecycle a process reads an empty stdin.
	reply, out2, _ := run(t, ch, args("cat"))
	if reply.GetOk() == nil || out2 != "" {
		t.Fatalf("cat without stdin: %v %q", reply, out2)
	}
	// Input with nobody to read it is an error when it asks for a reply.
	r, err := ch.Request(ctx, &api.Command{Body: &api.Command_Input{Input: "x"}})
	if err != nil || !client.IsError(r, "no process reads input") {
		t.Fatalf("input to nobody: %v %v", r, err)
	}
	noViolations(t, c)
}

// TestBlockingOrder: blocking requests run one at a time in order; others
// run side by side.
func TestBlockingOrder(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c, rec := dialRecorded(t, d)
	ch := openExec(t, c)
	ctx := conmantest.Context(t)
	flag := filepath.Join(t.TempDir(), "flag")

	// A waits for a file that only C creates. A and B are blocking, so B
	// cannot start before A ends; C is not, so it runs at once.
	waitFlag := fmt.Sprintf("while [ ! -e %q ]; do sleep 0.01; done; echo A", flag)
	send := func(ref string, e *api.Exec) {
		cmd := execCmd(e)
		cmd.Ref = ref
		if err := ch.Send(cmd); err != nil {
			t.Fatal(err)
		}
	}
	send("A", &api.Exec{Args: []string{"sh", "-c", waitFlag}, Blocking: true})
	send("B", &api.Exec{Args: []string{"echo", "B"}, Lifecycle: api.Exec_BLOCKING})
	send("C", &api.Exec{Args: []string{"touch", flag}})
	replies := map[string]bool{}
	for len(replies) < 3 {
		m, err := ch.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Ref != "" {
			if m.GetOk() == nil {
				t.Fatalf("reply %v", m)
			}
			replies[m.Ref] = true
		}
	}
	var order []string
	for _, m := range rec.on(ch.ID()) {
		switch {
		case m.Ref != "":
			order = append(order, "reply "+m.Ref)
		case m.GetOutput() != "":
			order = append(order, "output "+strings.TrimSpace(m.GetOutput()))
		}
	}
	// That A ended at all shows C ran while A did.
	got := strings.Join(order, ", ")
	index := func(event string) int { return slices.Index(order, event) }
	if !(index("output A") < index("reply A") && index("reply A") < index("output B") && index("output B") < index("reply B")) {
		t.Fatalf("order: %s", got)
	}
	noViolations(t, c)
}

func TestReadOnlyRefused(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	viewer := d.DialAs(t, auth.Claims{UserID: 9, UserName: "viewer", ReadOnly: true})
	ch := openExec(t, viewer)
	reply, out, _ := run(t, ch, args("touch", filepath.Join(d.Workspace, "x")))
	if !client.IsError(reply, "permission denied") || out != "" {
		t.Fatalf("read-only exec: %v %q", reply, out)
	}
	if _, err := os.Stat(filepath.Join(d.Workspace, "x")); err == nil {
		t.Fatal("the command ran")
	}
	noViolations(t, viewer)
}

// TestKillOnClose: closing the channel, or the session leaving its
// anonymous channel, stops the whole group, even a child that ignores
// SIGTERM.
func TestKillOnClose(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	for _, how := range []string{"closeChan", "session leaves"} {
		t.Run(how, func(t *testing.T) {
			c := d.Dial(t)
			ch := openExec(t, c)
			ctx := conmantest.Context(t)
			script := `trap "" TERM; sleep 1000 & sleep 1000 & echo "pid $$"; wait`
			cmd := execCmd(args("sh", "-c", script))
			cmd.Ref = "long"
			if err := ch.Send(cmd); err != nil {
				t.Fatal(err)
			}
			var pgid int
			for pgid == 0 {
				m, err := ch.Recv(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if out, ok := strings.CutPrefix(m.GetOutput(), "pid "); ok {
					pgid, _ = strconv.Atoi(strings.TrimSpace(out))
				}
			}
			if n := len(livingInGroup(pgid)); n != 3 {
				t.Fatalf("%d processes in the group, want 3", n)
			}
			if how == "closeChan" {
				if _, err := ch.Close(ctx, api.CloseChannel_TRY_CLOSE); err != nil {
					t.Fatal(err)
				}
			} else {
				c.Close()
			}
			waitUntil(t, "the process group to be gone", func() bool { return len(livingInGroup(pgid)) == 0 })
		})
	}
}

// TestDetachStopsOwnRequests: on a named channel, a session that leaves
// has its requests stopped; the channel lives on for the others.
func TestDetachStopsOwnRequests(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	a, b := d.Dial(t), d.Dial(t)
	ctx := conmantest.Context(t)
	cha, err := a.Open(ctx, "exec", "shared", api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	chb, err := b.Open(ctx, "exec", "shared", api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	cmd := execCmd(args("sh", "-c", `echo "pid $$"; exec sleep 1000`))
	cmd.Ref = "long"
	if err := cha.Send(cmd); err != nil {
		t.Fatal(err)
	}
	var pgid int
	for pgid == 0 {
		m, err := cha.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if out, ok := strings.CutPrefix(m.GetOutput(), "pid "); ok {
			pgid, _ = strconv.Atoi(strings.TrimSpace(out))
		}
	}
	if status, err := cha.Close(ctx, api.CloseChannel_DISCONNECT); err != nil || status != api.CloseChannelRes_DISCONNECT {
		t.Fatalf("disconnect: %v %v", status, err)
	}
	waitUntil(t, "the leaving session's process to stop", func() bool { return len(livingInGroup(pgid)) == 0 })
	reply, out, _ := run(t, chb, args("echo", "still here"))
	if reply.GetOk() == nil || out != "still here\n" {
		t.Fatalf("the channel did not live on: %v %q", reply, out)
	}
	noViolations(t, a, b)
}

// TestNonBlockingConcurrent: many non-blocking requests at once, each
// answered once with its own output.
func TestNonBlockingConcurrent(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := openExec(t, c)
	ctx, cancel := context.WithCancel(conmantest.Context(t))
	defer cancel()
	const n = 20
	for i := 0; i < n; i++ {
		cmd := execCmd(args("sh", "-c", fmt.Sprintf("exit %d", i%3)))
		cmd.Ref = strconv.Itoa(i)
		if err := ch.Send(cmd); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for len(seen) < n {
		m, err := ch.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Ref == "" {
			continue
		}
		if seen[m.Ref] {
			t.Fatalf("second reply for %s", m.Ref)
		}
		seen[m.Ref] = true
		i, _ := strconv.Atoi(m.Ref)
		if code := i % 3; (code == 0) != (m.GetOk() != nil) || (code != 0 && m.GetError() != fmt.Sprintf("exit status %d", code)) {
			t.Fatalf("request %d: %v", i, m)
		}
	}
	noViolations(t, c)
}
