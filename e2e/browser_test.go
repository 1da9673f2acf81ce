package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/internal/nodetest"
)

// browserTimeout bounds one browser scenario (the scripts bound themselves
// more tightly; this only stops a stuck browser).
const browserTimeout = 4 * time.Minute

// TestBrowser opens the IDE the daemon binary serves in Debian's Chromium,
// driven by playwright-core (scripts in browser/), as people would use it:
// two people editing one file at once, terminals, the run button, the file
// tree, a daemon restart in the middle of an edit, and a read-only visitor.
// Screenshots go to $CONMAN_ARTIFACTS (default: a new temporary directory,
// kept); measurements are logged as METRIC lines and written to
// metrics.txt there.
func TestBrowser(t *testing.T) {
	requireBrowser(t)
	artifacts := os.Getenv("CONMAN_ARTIFACTS")
	if artifacts == "" {
		var err error
		if artifacts, err = os.MkdirTemp("", "conman-browser-"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots and metrics in %s", artifacts)

	scenarios := []struct {
		name   string
		script string
		files  map[string]string
	}{
		{
			name:   "collaboration",
			script: "collab.js",
			files: map[string]string{
				"notes/shared.md": "# Shared notes\n\nStart here 💃\n",
				"main.py":         "print(\"hello from conman 💃\")\n",
				"README.md":       "# Demo\n",
			},
		},
		{name: "terminal", script: "terminal.js"},
		{
			name:   "run",
			script: "run.js",
			files: map[string]string{
				".replit":      "run = \"python3 -u main.py\"\n",
				"main.py":      "print('run-start')\nname = input('name? ')\nprint('hello ' + name)\n",
				"package.json": "{\n  \"name\": \"demo\",\n  \"dependencies\": { \"left-pad\": \"1.3.0\" }\n}\n",
			},
		},
		{
			name:   "files",
			script: "files.js",
			files: map[string]string{
				"live.txt":    "written by the test\n",
				"docs/a.md":   "# A\n",
				"move-me.txt": "moving\n",
			},
		},
		{
			name:   "restart",
			script: "restart.js",
			files:  map[string]string{"notes/restart.md": "# Survives restarts\n"},
		},
		{
			name:   "read-only",
			script: "readonly.js",
			files:  map[string]string{"main.py": "print('read me')\n"},
		},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			ws := t.TempDir()
			for name, content := range sc.files {
				p := filepath.Join(ws, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			runBrowserScript(t, sc.script, ws, artifacts)
		})
	}
}

// requireBrowser skips (or, with CONMAN_REQUIRE_NODE=1, fails) t when
// Chromium or playwright-core is missing.
func requireBrowser(t *testing.T) {
	t.Helper()
	nodetest.Require(t)
	chromium := os.Getenv("CONMAN_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	_, err := os.Stat(chromium)
	if err == nil {
		_, err = os.Stat(filepath.Join(nodetest.Dir(), "node_modules", "playwright-core", "package.json"))
	}
	if err != nil {
		msg := "the browser tests need Debian's chromium and playwright-core (./scripts/setup.sh installs both): " + err.Error()
		if os.Getenv("CONMAN_REQUIRE_NODE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// runBrowserScript starts the daemon binary on ws and runs the script
// against it. The script talks on stdio: RESTART asks for the daemon to
// be killed and started again on the same address, TOAST <text> for
// `conman toast <text>` (both answered GO), METRIC lines are measurements,
// PASS ends a successful run.
func runBrowserScript(t *testing.T, script, ws, artifacts string) {
	p := conmantest.StartProcess(t, ws)
	env := []string{
		"CONMAN_HTTP=http://" + p.Addr,
		"CONMAN_WORKSPACE=" + ws,
		"CONMAN_ARTIFACTS=" + artifacts,
		"CONMAN_TOKEN_A=" + p.Token(t, "alice", "--user-id", "31"),
		"CONMAN_TOKEN_B=" + p.Token(t, "bob", "--user-id", "32"),
		"CONMAN_TOKEN_RO=" + p.Token(t, "viewer", "--user-id", "33", "--ro"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	cmd := nodetest.Command(ctx, t, filepath.Join("browser", script))
	cmd.Env = append(cmd.Env, env...)
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
	daemon := p
	passed := false
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 64<<10), 4<<20)
	for lines.Scan() {
		line := lines.Text()
		switch {
		case line == "RESTART":
			daemon.Signal(syscall.SIGKILL)
			daemon.Wait(t)
			daemon = conmantest.StartProcess(t, ws, "--listen", p.Addr)
			io.WriteString(stdin, "GO\n")
		case strings.HasPrefix(line, "TOAST "):
			toast := exec.Command(conmantest.Binary(t), "toast", strings.TrimPrefix(line, "TOAST "), "--data-dir", daemon.DataDir, "--addr", daemon.Addr)
			if out, err := toast.CombinedOutput(); err != nil {
				t.Errorf("conman toast: %v\n%s", err, out)
			}
			io.WriteString(stdin, "GO\n")
		case line == "PASS":
			passed = true
		case strings.HasPrefix(line, "METRIC "):
			t.Log(line)
			recordMetric(t, artifacts, script, strings.TrimPrefix(line, "METRIC "))
		default:
			t.Logf("browser: %s", line)
		}
	}
	err = cmd.Wait()
	if err != nil || !passed {
		t.Fatalf("%s: %v\n%s\ndaemon log:\n%s", script, err, stderr.String(), daemon.Log())
	}
}

func recordMetric(t *testing.T, artifacts, script, metric string) {
	f, err := os.OpenFile(filepath.Join(artifacts, "metrics.txt"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Log(err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s %s\n", time.Now().UTC().Format(time.RFC3339), strings.TrimSuffix(script, ".js"), metric)
}
