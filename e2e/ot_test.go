package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/internal/nodetest"
)

// TestCrosisOT: two editors made of @replit/crosis and ot-text-unicode, as
// the official client is, type into one file at once through the daemon
// binary; every packet's CRC checks out, each recognises its own echoes,
// and they end with the same text, which is the file on disk.
func TestCrosisOT(t *testing.T) {
	nodetest.Require(t)
	ws := t.TempDir()
	const file = "notes/shared.md"
	if err := os.MkdirAll(filepath.Join(ws, "notes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, file), []byte("# Shared notes\n\nStart here 💃\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := conmantest.StartProcess(t, ws)

	ctx := conmantest.Context(t)
	cmd := nodetest.Command(ctx, t, "crosis_ot.js")
	cmd.Env = append(cmd.Env,
		"CONMAN_HTTP=http://"+p.Addr,
		"CONMAN_TOKEN_A="+p.Token(t, "alice", "--user-id", "31"), "CONMAN_UID_A=31",
		"CONMAN_TOKEN_B="+p.Token(t, "bob", "--user-id", "32"), "CONMAN_UID_B=32",
		"CONMAN_FILE="+file,
		"CONMAN_OPS=150",
	)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var doc *string
	passed := false
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 64<<10), 4<<20)
	for lines.Scan() {
		line := lines.Text()
		switch {
		case line == "PASS":
			passed = true
		case strings.HasPrefix(line, "DOC "):
			var text string
			if err := json.Unmarshal([]byte(line[4:]), &text); err != nil {
				t.Fatalf("DOC line: %v", err)
			}
			doc = &text
		default:
			t.Logf("node: %s", line)
		}
	}
	if err := cmd.Wait(); err != nil || !passed || doc == nil {
		t.Fatalf("crosis_ot.js: %v\nstderr:\n%s\ndaemon log:\n%s", err, stderr.String(), p.Log())
	}
	got, err := os.ReadFile(filepath.Join(ws, file))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != *doc {
		t.Fatalf("on disk %q, the editors have %q", got, *doc)
	}
}
