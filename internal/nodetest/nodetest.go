// Package nodetest runs Node.js scripts from Go tests: the end-to-end tests
// that drive the daemon with the official JavaScript client, and the
// cross-checks against reference JavaScript implementations.
//
// The Node packages live in e2e/ at the repository root (package.json and a
// lock file; `npm ci` there installs them). When they are not installed a
// test is skipped with a message saying so, unless CONMAN_REQUIRE_NODE=1
// (set by the project's test script), in which case it fails: CI never
// skips them silently.
package nodetest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Dir returns the absolute path of the e2e/ directory that holds the Node
// packages and scripts.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "e2e")
}

// Require skips (or, with CONMAN_REQUIRE_NODE=1, fails) t when node or the
// e2e packages are missing, and returns the path of node.
func Require(t testing.TB) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(Dir(), "node_modules", "@replit", "crosis"))
	}
	if err != nil {
		msg := "Node.js end-to-end packages are not installed (run `npm ci` in e2e/, or ./scripts/test.sh): " + err.Error()
		if os.Getenv("CONMAN_REQUIRE_NODE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node
}

// Command returns a command that runs the script (a path relative to e2e/,
// or absolute) with args, with e2e/node_modules on NODE_PATH so CommonJS
// scripts outside e2e/ can require the packages too.
func Command(ctx context.Context, t testing.TB, script string, args ...string) *exec.Cmd {
	t.Helper()
	node := Require(t)
	if !filepath.IsAbs(script) {
		script = filepath.Join(Dir(), script)
	}
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.Dir = Dir()
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(Dir(), "node_modules"))
	return cmd
}

// Run runs the script and returns its stdout; a failure fails t with the
// script's stderr.
func Run(ctx context.Context, t testing.TB, script string, args ...string) []byte {
	t.Helper()
	cmd := Command(ctx, t, script, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s: %v\nstderr:\n%s", script, err, stderr.String())
	}
	return stdout.Bytes()
}
