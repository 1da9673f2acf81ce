package snapshot_test

import (
	"crypto/sha1"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/snapshot"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func openSnapshot(t *testing.T, c *client.Client) *client.Channel {
	t.Helper()
	ch, err := c.Open(conmantest.Context(t), snapshot.Name, "", api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		t.Fatalf("open %s: %v", snapshot.Name, err)
	}
	return ch
}

func request(t *testing.T, ch *client.Channel, cmd *api.Command) *api.Command {
	t.Helper()
	r, err := ch.Request(conmantest.Context(t), cmd)
	if err != nil {
		t.Fatalf("request %T: %v", cmd.Body, err)
	}
	return r
}

var (
	fsSnapshot = func() *api.Command { return &api.Command{Body: &api.Command_FsSnapshot{FsSnapshot: &api.FSSnapshot{}}} }
	list       = func() *api.Command {
		return &api.Command{Body: &api.Command_SnapshotList{SnapshotList: &api.SnapshotList{}}}
	}
	restore = func(id, to string) *api.Command {
		return &api.Command{Body: &api.Command_SnapshotRestore{SnapshotRestore: &api.SnapshotRestore{Id: id, To: to}}}
	}
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func noViolations(t *testing.T, c *client.Client) {
	t.Helper()
	for _, v := range c.Violations() {
		t.Errorf("protocol violation: %s: %v", v.Problem, v.Command)
	}
}

func TestProtocol(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	writeFiles(t, d.Workspace, map[string]string{"main.go": "package main\n", "src/lib.go": "package src\n"})
	c := d.Dial(t)
	ch := openSnapshot(t, c)

	if r := request(t, ch, fsSnapshot()); r.GetOk() == nil {
		t.Fatalf("fsSnapshot → %v, want ok", r)
	}
	r := request(t, ch, list())
	snaps := r.GetSnapshotListRes().GetSnapshots()
	if len(snaps) != 1 {
		t.Fatalf("snapshotList → %v, want one snapshot", r)
	}
	first := snaps[0]
	if len(first.Id) != 40 || first.Files != 2 || first.Bytes != 25 || first.Time == 0 || !strings.HasPrefix(first.Checksum, "sha256:") {
		t.Errorf("snapshot = %v, want 2 files of 25 bytes with an id, a time and a checksum", first)
	}

	writeFiles(t, d.Workspace, map[string]string{"main.go": "package main // edited\n", "new.go": "package main\n"})
	if r := request(t, ch, restore(first.Id[:10], "")); r.GetOk() == nil {
		t.Fatalf("snapshotRestore → %v, want ok", r)
	}
	if got := readFile(t, filepath.Join(d.Workspace, "main.go")); got != "package main\n" {
		t.Errorf("main.go after restore = %q", got)
	}
	if _, err := os.Stat(filepath.Join(d.Workspace, "new.go")); !os.IsNotExist(err) {
		t.Errorf("new.go survived the restore")
	}
	if _, err := os.Stat(filepath.Join(d.DataDir, "workspace-id")); err != nil {
		t.Errorf("the data dir suffered from the restore: %v", err)
	}
	snaps = request(t, ch, list()).GetSnapshotListRes().GetSnapshots()
	if len(snaps) != 2 || !strings.HasPrefix(snaps[0].Note, "before restoring") || snaps[1].Id != first.Id {
		t.Errorf("list after restore = %v, want the before-restore snapshot on top", snaps)
	}

	if r := request(t, ch, restore(first.Id, "/copy")); r.GetOk() == nil {
		t.Fatalf("snapshotRestore to /copy → %v, want ok", r)
	}
	if got := readFile(t, filepath.Join(d.Workspace, "copy", "src", "lib.go")); got != "package src\n" {
		t.Errorf("copy/src/lib.go = %q", got)
	}

	errorCases := []struct {
		name string
		cmd  *api.Command
		want string
	}{
		{"unknown id", restore("abcdef", ""), "no such snapshot"},
		{"no id", restore("", ""), "no snapshot id"},
		{"copy into a non-empty directory", restore(first.Id, "src"), "not empty"},
		{"copy into the data dir", restore(first.Id, "/.conman/x"), "data dir"},
		{"a body of another service", &api.Command{Body: &api.Command_Exec{Exec: &api.Exec{Args: []string{"true"}}}}, "unsupported command"},
	}
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			if r := request(t, ch, tt.cmd); !client.IsError(r, tt.want) {
				t.Errorf("→ %v, want error %q", r, tt.want)
			}
		})
	}
	noViolations(t, c)
}

func TestReadOnlySession(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	writeFiles(t, d.Workspace, map[string]string{"f": "f"})
	rw := openSnapshot(t, d.Dial(t))
	if r := request(t, rw, fsSnapshot()); r.GetOk() == nil {
		t.Fatalf("fsSnapshot → %v", r)
	}
	roClient := d.DialAs(t, auth.Claims{UserID: 8, UserName: "viewer", ReadOnly: true})
	ro := openSnapshot(t, roClient)
	tests := []struct {
		name string
		cmd  *api.Command
		ok   func(*api.Command) bool
	}{
		{"fsSnapshot", fsSnapshot(), func(r *api.Command) bool { return client.IsError(r, "permission denied") }},
		{"snapshotRestore", restore("latest", ""), func(r *api.Command) bool { return client.IsError(r, "permission denied") }},
		{"snapshotList", list(), func(r *api.Command) bool { return len(r.GetSnapshotListRes().GetSnapshots()) == 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := request(t, ro, tt.cmd); !tt.ok(r) {
				t.Errorf("read-only %s → %v", tt.name, r)
			}
		})
	}
	noViolations(t, roClient)
}

func TestConcurrentSnapshotsFromManyTabs(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	writeFiles(t, d.Workspace, map[string]string{"a": "a", "b/c": "c"})
	const tabs = 6
	chans := make([]*client.Channel, tabs)
	for i := range chans {
		chans[i] = openSnapshot(t, d.Dial(t))
	}
	var wg sync.WaitGroup
	for i, ch := range chans {
		wg.Go(func() {
			writeFiles(t, d.Workspace, map[string]string{fmt.Sprintf("tab%d", i): "edit"})
			for range 3 {
				r, err := ch.Request(conmantest.Context(t), fsSnapshot())
				if err != nil || r.GetOk() == nil {
					t.Errorf("tab %d: fsSnapshot → %v, %v", i, r, err)
				}
			}
		})
	}
	wg.Wait()
	// The newest snapshot holds every tab's edit: each one's last request
	// was answered by a snapshot that began after its write.
	snaps := request(t, chans[0], list()).GetSnapshotListRes().GetSnapshots()
	if len(snaps) == 0 || len(snaps) > tabs*3 || snaps[0].Files != 2+tabs {
		t.Errorf("after concurrent snapshots: %d snapshots, newest %v; want at most %d, the newest with %d files",
			len(snaps), snaps, tabs*3, 2+tabs)
	}
}

func TestCorruptSnapshotOverTheProtocol(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	writeFiles(t, d.Workspace, map[string]string{"keep.txt": "the original content"})
	ch := openSnapshot(t, d.Dial(t))
	request(t, ch, fsSnapshot())
	writeFiles(t, d.Workspace, map[string]string{"keep.txt": "precious unsaved work"})

	// Flip a byte inside the zlib stream of keep.txt's loose object.
	obj := looseObject(d.DataDir, "blob", "the original content")
	data, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-6] ^= 0x01
	os.Chmod(obj, 0o644)
	if err := os.WriteFile(obj, data, 0o444); err != nil {
		t.Fatal(err)
	}

	r := request(t, ch, restore("latest", ""))
	if !client.IsError(r, "is corrupt") || !client.IsError(r, "nothing was restored") {
		t.Fatalf("restore of a damaged snapshot → %v, want a corruption error", r)
	}
	if got := readFile(t, filepath.Join(d.Workspace, "keep.txt")); got != "precious unsaved work" {
		t.Errorf("keep.txt = %q: a failed restore overwrote it", got)
	}
}

// looseObject is the path of the loose object of the given type and
// content in the store of dataDir.
func looseObject(dataDir, kind, content string) string {
	h := sha1.New()
	fmt.Fprintf(h, "%s %d\x00%s", kind, len(content), content)
	hex := fmt.Sprintf("%x", h.Sum(nil))
	return filepath.Join(dataDir, snapshot.DirName, "repo.git", "objects", hex[:2], hex[2:])
}
