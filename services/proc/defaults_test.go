package proc_test

import (
	"path/filepath"
	"testing"

	"github.com/conman-dev/conman/services/proc"
)

// TestDefaults: SetDefaults refuses malformed settings and changes nothing
// then; the env goes between the daemon's and the request's, and Dir joins
// the cwd to the workspace. Not parallel: the defaults are process-wide.
func TestDefaults(t *testing.T) {
	t.Cleanup(func() { proc.SetDefaults(proc.Defaults{}) })
	t.Setenv("PROCTEST_LAYER", "daemon")
	ws := filepath.FromSlash("/ws")
	if got := proc.Dir(ws); got != ws {
		t.Fatalf("Dir with no defaults = %q", got)
	}
	if err := proc.SetDefaults(proc.Defaults{
		Cwd:      "/sub/./dir/",
		Env:      map[string]string{"PROCTEST_LAYER": "defaults", "PROCTEST_ONLY": "d"},
		Language: " Python3 ",
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := proc.Dir(ws), filepath.Join(ws, "sub", "dir"); got != want {
		t.Errorf("Dir = %q, want %q", got, want)
	}
	d := proc.CurrentDefaults()
	if d.Cwd != "sub/dir" || d.Language != "python" || d.Env["PROCTEST_ONLY"] != "d" {
		t.Errorf("CurrentDefaults = %+v", d)
	}
	d.Env["PROCTEST_ONLY"] = "changed by the caller"
	env := proc.Environ(map[string]string{"PROCTEST_LAYER": "request"})
	if v, _ := proc.Getenv(env, "PROCTEST_LAYER"); v != "request" {
		t.Errorf("the request's env does not win: %q", v)
	}
	if v, _ := proc.Getenv(env, "PROCTEST_ONLY"); v != "d" {
		t.Errorf("PROCTEST_ONLY=%q: the defaults' env is missing or was shared", v)
	}
	if v, _ := proc.Getenv(proc.Environ(nil), "PROCTEST_LAYER"); v != "defaults" {
		t.Errorf("the defaults' env does not beat the daemon's: %q", v)
	}

	for _, bad := range []proc.Defaults{
		{Cwd: "../up"},
		{Cwd: "a/../../up"},
		{Cwd: "a\x00b"},
		{Env: map[string]string{"": "x"}},
		{Env: map[string]string{"A=B": "x"}},
		{Env: map[string]string{"A": "x\x00y"}},
		{Language: "py thon"},
	} {
		if err := proc.SetDefaults(bad); err == nil {
			t.Errorf("SetDefaults(%+v) accepted", bad)
		}
	}
	if got := proc.CurrentDefaults(); got.Cwd != "sub/dir" {
		t.Errorf("a refused SetDefaults changed the defaults: %+v", got)
	}

	if err := proc.SetDefaults(proc.Defaults{Cwd: "/"}); err != nil {
		t.Fatal(err)
	}
	if got := proc.Dir(ws); got != ws {
		t.Errorf("Dir after a reset = %q", got)
	}
	if _, ok := proc.Getenv(proc.Environ(nil), "PROCTEST_ONLY"); ok {
		t.Error("a reset kept the old env")
	}
}
