package pid1_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	_ "github.com/conman-dev/conman/services/exec"
	"github.com/conman-dev/conman/services/pid1"
	"github.com/conman-dev/conman/services/proc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var admin = auth.Claims{UserID: 1, UserName: "root", Roles: []string{pid1.AdminRole}}

func config(cwd, language string, env map[string]string) *api.Command {
	return &api.Command{Body: &api.Command_Pid1Config{Pid1Config: &api.Pid1Config{Cwd: cwd, Language: language, Env: env}}}
}

// run execs a shell script on ch and returns its output.
func run(t *testing.T, ch *client.Channel, script string) string {
	t.Helper()
	r, err := ch.Request(conmantest.Context(t), &api.Command{Body: &api.Command_Exec{Exec: &api.Exec{Args: []string{"sh", "-c", script}}}})
	if err != nil || r.GetOk() == nil {
		t.Fatalf("exec %q: %v %v", script, r, err)
	}
	var out strings.Builder
	for {
		cmd, ok := ch.TryRecv()
		if !ok {
			return out.String()
		}
		out.WriteString(cmd.GetOutput())
	}
}

func mustOK(t *testing.T, r *api.Command, err error) {
	t.Helper()
	if err != nil || r.GetOk() == nil {
		t.Fatalf("pid1Config: %v %v", r, err)
	}
}

// TestExecFollowsPid1Config: an admin's pid1Config changes the directory
// and the environment of the processes exec starts afterwards; an empty
// one restores the defaults. Not parallel: the settings are process-wide.
func TestExecFollowsPid1Config(t *testing.T) {
	d := conmantest.Start(t)
	t.Cleanup(func() { proc.SetDefaults(proc.Defaults{}) })
	if err := os.MkdirAll(filepath.Join(d.Workspace, "sub", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	ws, err := filepath.EvalSymlinks(d.Workspace)
	if err != nil {
		t.Fatal(err)
	}
	ctx := conmantest.Context(t)
	c := d.DialAs(t, admin)
	ex, err := c.Open(ctx, "exec", "", api.OpenChannel_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	const script = `pwd -P; printf '%s|%s\n' "$PID1TEST_GREETING" "$PID1TEST_OVERRIDE"`
	if got, want := run(t, ex, script), ws+"\n|\n"; got != want {
		t.Fatalf("before: %q, want %q", got, want)
	}

	r, err := c.Request0(ctx, config("/sub/dir", "golang", map[string]string{"PID1TEST_GREETING": "hello", "PID1TEST_OVERRIDE": "pid1"}))
	mustOK(t, r, err)
	if got := proc.CurrentDefaults().Language; got != "go" {
		t.Errorf("language %q, want go", got)
	}
	if got, want := run(t, ex, script), filepath.Join(ws, "sub", "dir")+"\nhello|pid1\n"; got != want {
		t.Fatalf("after pid1Config: %q, want %q", got, want)
	}
	// A request's own env wins over pid1Config's.
	r, err = ex.Request(ctx, &api.Command{Body: &api.Command_Exec{Exec: &api.Exec{
		Args: []string{"sh", "-c", script}, Env: map[string]string{"PID1TEST_OVERRIDE": "request"},
	}}})
	if err != nil || r.GetOk() == nil {
		t.Fatalf("exec with env: %v %v", r, err)
	}
	var out strings.Builder
	for cmd, ok := ex.TryRecv(); ok; cmd, ok = ex.TryRecv() {
		out.WriteString(cmd.GetOutput())
	}
	if !strings.HasSuffix(out.String(), "hello|request\n") {
		t.Errorf("with the request's env: %q", out.String())
	}

	// On a pid1 channel too; the empty config restores the defaults.
	p, err := c.Open(ctx, pid1.Name, "", api.OpenChannel_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	r, err = p.Request(ctx, config("", "", nil))
	mustOK(t, r, err)
	if got, want := run(t, ex, script), ws+"\n|\n"; got != want {
		t.Fatalf("after the reset: %q, want %q", got, want)
	}
}

// TestPid1ConfigRefusals: only read-write admin sessions may configure,
// and a cwd must be a directory inside the workspace.
func TestPid1ConfigRefusals(t *testing.T) {
	d := conmantest.Start(t)
	t.Cleanup(func() { proc.SetDefaults(proc.Defaults{}) })
	if err := os.WriteFile(filepath.Join(d.Workspace, "file.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := conmantest.Context(t)
	roAdmin := admin
	roAdmin.ReadOnly = true
	for name, claims := range map[string]auth.Claims{
		"no role":   {UserName: "ada", Roles: []string{"debug"}},
		"read-only": roAdmin,
	} {
		c := d.DialAs(t, claims)
		r, err := c.Request0(ctx, config("", "", map[string]string{"X": "1"}))
		if err != nil || !client.IsError(r, "permission denied") {
			t.Errorf("%s, channel 0: %v %v", name, r, err)
		}
		p, err := c.Open(ctx, pid1.Name, "", api.OpenChannel_CREATE)
		if err != nil {
			t.Fatal(err)
		}
		r, err = p.Request(ctx, config("", "", nil))
		if err != nil || !client.IsError(r, "permission denied") {
			t.Errorf("%s, pid1 channel: %v %v", name, r, err)
		}
	}

	c := d.DialAs(t, admin)
	for _, tt := range []struct {
		cmd  *api.Command
		want string
	}{
		{config("missing", "", nil), `pid1Config: cwd "missing": no such file or directory`},
		{config("file.txt", "", nil), `pid1Config: cwd "file.txt": not a directory`},
		{config("../outside", "", nil), `pid1Config: cwd "../outside": `},
		{config(".conman", "", nil), `pid1Config: cwd ".conman": `},
		{config("", "", map[string]string{"A=B": "x"}), `pid1Config: env: bad variable name "A=B"`},
		{config("", "c c", nil), `pid1Config: language: bad name "c c"`},
	} {
		r, err := c.Request0(ctx, tt.cmd)
		if err != nil || !client.IsError(r, tt.want) {
			t.Errorf("%v: %v %v, want an error starting %q", tt.cmd, r, err, tt.want)
		}
	}
	if got := proc.CurrentDefaults(); got.Cwd != "" || len(got.Env) != 0 {
		t.Errorf("a refused pid1Config changed the defaults: %+v", got)
	}
}
