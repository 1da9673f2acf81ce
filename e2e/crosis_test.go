// Package e2e runs the official JavaScript client (@replit/crosis) and other
// Node programs against the real daemon binary. The Node packages are in
// package.json and package-lock.json here; `npm ci` installs them.
package e2e

import (
	"bufio"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/internal/nodetest"
)

// TestCrosisCore: connect, named and anonymous channels, request/reply,
// close, and reconnect after the daemon is killed and restarted.
func TestCrosisCore(t *testing.T) {
	p := conmantest.StartProcess(t, "")
	token := p.Token(t, "crosis")

	ctx := conmantest.Context(t)
	cmd := nodetest.Command(ctx, t, "crosis_core.js")
	cmd.Env = append(cmd.Env, "CONMAN_HTTP=http://"+p.Addr, "CONMAN_TOKEN="+token)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	var restarted *conmantest.Process
	passed := false
	for lines.Scan() {
		switch line := lines.Text(); line {
		case "RESTART":
			p.Signal(syscall.SIGKILL)
			p.Wait(t)
			restarted = conmantest.StartProcess(t, p.Workspace, "--listen", p.Addr)
			io.WriteString(stdin, "GO\n")
		case "PASS":
			passed = true
		default:
			t.Logf("node: %s", line)
		}
	}
	err = cmd.Wait()
	if err != nil || !passed {
		t.Fatalf("crosis script: %v\nstderr:\n%s", err, stderr.String())
	}
	if restarted == nil {
		t.Fatal("the script never asked for a restart")
	}
}
