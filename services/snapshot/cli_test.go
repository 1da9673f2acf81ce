package snapshot_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
)

// conmanCLI runs the built binary with args and extra environment, and
// returns its exit code, stdout and stderr.
func conmanCLI(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.CommandContext(conmantest.Context(t), conmantest.Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), stdout.String(), stderr.String()
	default:
		t.Fatalf("conman %v: %v", args, err)
		return 0, "", ""
	}
}

var shortIDLine = regexp.MustCompile(`(?m)^([0-9a-f]{12})\s`)

func TestCLIWithoutDaemon(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	writeFiles(t, ws, map[string]string{"a.txt": "alpha", "dir/b.txt": "beta"})
	if err := os.Symlink("a.txt", filepath.Join(ws, "link")); err != nil {
		t.Fatal(err)
	}
	wsFlag := "--workspace=" + ws

	code, out, errOut := conmanCLI(t, nil, "snapshot", "list", wsFlag)
	if code != 0 || out != "" || !strings.Contains(errOut, "no snapshots") {
		t.Errorf("list of an empty store: %d %q %q", code, out, errOut)
	}
	code, out, errOut = conmanCLI(t, nil, "snapshot", "create", wsFlag)
	m := shortIDLine.FindStringSubmatch(out)
	if code != 0 || m == nil || !strings.Contains(out, "3 files") {
		t.Fatalf("create: %d %q %q", code, out, errOut)
	}
	id := m[1]

	// The workspace can come from the environment, as for every flag.
	code, out, errOut = conmanCLI(t, []string{"CONMAN_WORKSPACE=" + ws}, "snapshot", "list")
	if code != 0 || !strings.Contains(out, "ID") || !regexp.MustCompile(id+`\s+\S+ \S+\s+3\s+9 B`).MatchString(out) {
		t.Errorf("list: %d %q %q; want %s with 3 files of 9 B", code, out, errOut, id)
	}

	writeFiles(t, ws, map[string]string{"a.txt": "changed", "extra": "extra"})
	code, out, errOut = conmanCLI(t, nil, "snapshot", "restore", id, wsFlag)
	if code != 0 || !strings.Contains(out, "restored "+id) || !strings.Contains(out, "undoes this") {
		t.Fatalf("restore: %d %q %q", code, out, errOut)
	}
	if got := readFile(t, filepath.Join(ws, "a.txt")); got != "alpha" {
		t.Errorf("a.txt = %q after restore", got)
	}
	if _, err := os.Stat(filepath.Join(ws, "extra")); !os.IsNotExist(err) {
		t.Errorf("extra survived the restore")
	}

	to := filepath.Join(t.TempDir(), "copy")
	code, out, errOut = conmanCLI(t, nil, "snapshot", "restore", id, wsFlag, "--to", to)
	if code != 0 || !strings.Contains(out, to) {
		t.Fatalf("restore --to: %d %q %q", code, out, errOut)
	}
	if got, _ := os.Readlink(filepath.Join(to, "link")); got != "a.txt" {
		t.Errorf("copy's link → %q", got)
	}
	if got := readFile(t, filepath.Join(to, "dir", "b.txt")); got != "beta" {
		t.Errorf("copy's dir/b.txt = %q", got)
	}

	code, out, errOut = conmanCLI(t, nil, "snapshot", "verify", id, wsFlag)
	if code != 0 || !strings.Contains(out, "intact") {
		t.Errorf("verify: %d %q %q", code, out, errOut)
	}

	// Damage the blob of dir/b.txt: restore refuses and changes nothing.
	writeFiles(t, ws, map[string]string{"dir/b.txt": "unsaved work"})
	obj := looseObject(filepath.Join(ws, ".conman"), "blob", "beta")
	data, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	os.Chmod(obj, 0o644)
	if err := os.WriteFile(obj, data, 0o444); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = conmanCLI(t, nil, "snapshot", "restore", id, wsFlag)
	if code != 1 || !strings.Contains(errOut, "is corrupt") || !strings.Contains(errOut, "dir/b.txt") {
		t.Errorf("restore of a damaged snapshot: exit %d, stderr %q", code, errOut)
	}
	if got := readFile(t, filepath.Join(ws, "dir", "b.txt")); got != "unsaved work" {
		t.Errorf("dir/b.txt = %q after a refused restore", got)
	}
	if code, _, errOut := conmanCLI(t, nil, "snapshot", "verify", id, wsFlag); code != 1 || !strings.Contains(errOut, "is corrupt") {
		t.Errorf("verify of a damaged snapshot: exit %d, stderr %q", code, errOut)
	}

	usage := []struct {
		name string
		args []string
	}{
		{"no subcommand", []string{"snapshot"}},
		{"unknown subcommand", []string{"snapshot", "frobnicate"}},
		{"restore without id", []string{"snapshot", "restore", wsFlag}},
	}
	for _, tt := range usage {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, errOut := conmanCLI(t, nil, tt.args...); code != 2 || !strings.Contains(errOut, "snapshot") {
				t.Errorf("conman %v: exit %d, stderr %q; want usage", tt.args, code, errOut)
			}
		})
	}
}

// TestCLIBesideDaemon runs the CLI on the data dir of a running daemon:
// the two share the store.
func TestCLIBesideDaemon(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	writeFiles(t, ws, map[string]string{"main.go": "package main\n"})
	p := conmantest.StartProcess(t, ws)
	c := conmantest.DialURL(t, client.URL(p.Addr, p.Token(t, "ada")), client.Options{})
	ch := openSnapshot(t, c)
	if r := request(t, ch, fsSnapshot()); r.GetOk() == nil {
		t.Fatalf("fsSnapshot → %v", r)
	}
	daemonSnap := request(t, ch, list()).GetSnapshotListRes().GetSnapshots()[0].Id

	writeFiles(t, ws, map[string]string{"main.go": "package main // edited by hand\n"})
	code, out, errOut := conmanCLI(t, nil, "snapshot", "create", "--workspace", ws)
	if code != 0 {
		t.Fatalf("create beside the daemon: %d %q %q", code, out, errOut)
	}
	code, out, errOut = conmanCLI(t, nil, "snapshot", "list", "--workspace", ws, "--data-dir", p.DataDir)
	if code != 0 || !strings.Contains(out, daemonSnap[:12]) || strings.Count(out, "\n") != 3 {
		t.Errorf("list beside the daemon: %d %q %q; want a header and two snapshots", code, out, errOut)
	}
	code, out, errOut = conmanCLI(t, nil, "snapshot", "restore", daemonSnap[:12], "--workspace", ws)
	if code != 0 {
		t.Fatalf("restore beside the daemon: %d %q %q", code, out, errOut)
	}
	if got := readFile(t, filepath.Join(ws, "main.go")); got != "package main\n" {
		t.Errorf("main.go = %q after restore", got)
	}
	// The daemon sees the CLI's snapshots and keeps going.
	if r := request(t, ch, fsSnapshot()); r.GetOk() == nil {
		t.Fatalf("fsSnapshot after the CLI restored → %v", r)
	}
	snaps := request(t, ch, list()).GetSnapshotListRes().GetSnapshots()
	if len(snaps) != 3 || snaps[2].Id != daemonSnap {
		t.Errorf("daemon's list = %v, want its new one, the CLI's, and its first", snaps)
	}
}
