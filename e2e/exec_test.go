package e2e

import (
	"bufio"
	"strings"
	"testing"

	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/internal/nodetest"
)

// TestCrosisExecAndShell: the official client runs `echo hello` on an exec
// channel and shares a shell between two sessions, with resize.
func TestCrosisExecAndShell(t *testing.T) {
	t.Parallel()
	p := conmantest.StartProcess(t, "")
	token := p.Token(t, "crosis")

	ctx := conmantest.Context(t)
	cmd := nodetest.Command(ctx, t, "crosis_exec.js")
	cmd.Env = append(cmd.Env, "CONMAN_HTTP=http://"+p.Addr, "CONMAN_TOKEN="+token)
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
	passed := false
	for lines.Scan() {
		if line := lines.Text(); line == "PASS" {
			passed = true
		} else {
			t.Logf("node: %s", line)
		}
	}
	if err := cmd.Wait(); err != nil || !passed {
		t.Fatalf("crosis script: %v\nstderr:\n%s\ndaemon log:\n%s", err, stderr.String(), p.Log())
	}
}
