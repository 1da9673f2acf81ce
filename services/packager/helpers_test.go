package packager_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/packager"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// toolTimeout bounds one mutation in a test: package managers on a loaded
// machine are slow, the network slower.
const toolTimeout = 3 * time.Minute

// skipOffline skips a test that needs a public registry when
// CONMAN_OFFLINE=1.
func skipOffline(t *testing.T, registry string) {
	t.Helper()
	if os.Getenv("CONMAN_OFFLINE") == "1" {
		t.Skipf("CONMAN_OFFLINE=1: skipping the test against %s", registry)
	}
}

// start starts a daemon whose packager sees env (and nothing of the
// packager's variables from outside), with files written into its
// workspace. Tool caches live in the test's temporary directory. It uses
// t.Setenv, so its tests cannot run in parallel.
func start(t *testing.T, env map[string]string, files map[string]string) *conmantest.Daemon {
	t.Helper()
	tmp := t.TempDir()
	for _, name := range []string{packager.EnvLanguage, packager.EnvAPT, packager.EnvNPMRegistry,
		packager.EnvGoProxy, packager.EnvPipIndex, packager.EnvPipFindLinks, packager.EnvPython} {
		t.Setenv(name, "")
	}
	t.Setenv("npm_config_cache", filepath.Join(tmp, "npm-cache"))
	t.Setenv("GOMODCACHE", filepath.Join(tmp, "gomodcache"))
	t.Setenv("GOFLAGS", "-modcacherw")
	t.Setenv("GOTOOLCHAIN", "local")
	for k, v := range env {
		t.Setenv(k, v)
	}
	d := conmantest.Start(t)
	for name, content := range files {
		writeFile(t, filepath.Join(d.Workspace, name), content)
	}
	return d
}

// replit is a .replit that sets the language.
func replit(lang string) string { return "[packager]\nlanguage = \"" + lang + "\"\n" }

func openPackager(t *testing.T, c *client.Client, name string) *client.Channel {
	t.Helper()
	ch, err := c.Open(conmantest.Context(t), packager.Name, name, api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		t.Fatalf("open %s: %v", packager.Name, err)
	}
	return ch
}

func pkg(name, spec string) *api.Package { return &api.Package{Name: name, Spec: spec} }

func addCmd(pkgs ...*api.Package) *api.Command {
	return &api.Command{Body: &api.Command_PackageAdd{PackageAdd: &api.PackageAdd{Pkgs: pkgs}}}
}

func removeCmd(names ...string) *api.Command {
	var pkgs []*api.Package
	for _, n := range names {
		pkgs = append(pkgs, pkg(n, ""))
	}
	return &api.Command{Body: &api.Command_PackageRemove{PackageRemove: &api.PackageRemove{Pkgs: pkgs}}}
}

func installCmd() *api.Command {
	return &api.Command{Body: &api.Command_PackageInstall{PackageInstall: &api.PackageInstall{}}}
}

func searchCmd(q string) *api.Command {
	return &api.Command{Body: &api.Command_PackageSearch{PackageSearch: &api.PackageSearch{Query: q}}}
}

func infoCmd(name string) *api.Command {
	return &api.Command{Body: &api.Command_PackageInfo{PackageInfo: &api.PackageInfo{Pkg: pkg(name, "")}}}
}

func listCmd() *api.Command {
	return &api.Command{Body: &api.Command_PackageListSpecfile{PackageListSpecfile: &api.PackageListSpecfile{}}}
}

// request sends a read and returns its reply.
func request(t *testing.T, ch *client.Channel, cmd *api.Command) *api.Command {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	reply, err := ch.Request(ctx, cmd)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	return reply
}

// mutate sends a mutation and returns its reply and what was streamed
// before it.
func mutate(t *testing.T, ch *client.Channel, cmd *api.Command) (*api.Command, []*api.Command) {
	t.Helper()
	reply := request(t, ch, cmd)
	var stream []*api.Command
	for {
		m, ok := ch.TryRecv()
		if !ok {
			return reply, stream
		}
		stream = append(stream, m)
	}
}

// streamText is the concatenated output of a stream.
func streamText(stream []*api.Command) string {
	var b strings.Builder
	for _, m := range stream {
		if o, ok := m.Body.(*api.Command_Output); ok {
			b.WriteString(o.Output)
		}
	}
	return b.String()
}

// mustSucceed runs a mutation that must succeed, with a well-formed
// stream: state Running, outputs, state Stopped. It returns the output.
func mustSucceed(t *testing.T, ch *client.Channel, cmd *api.Command) string {
	t.Helper()
	reply, stream := mutate(t, ch, cmd)
	out := streamText(stream)
	if _, ok := reply.Body.(*api.Command_Ok); !ok {
		t.Fatalf("reply = %v, want ok; output:\n%s", reply, out)
	}
	checkStream(t, stream)
	return out
}

// mustFail runs a mutation that must fail with an error containing want
// and returns the stream.
func mustFail(t *testing.T, ch *client.Channel, cmd *api.Command, want string) []*api.Command {
	t.Helper()
	reply, stream := mutate(t, ch, cmd)
	if !client.IsError(reply, want) {
		t.Fatalf("reply = %v, want an error containing %q; output:\n%s", reply, want, streamText(stream))
	}
	return stream
}

// checkStream checks a mutation's stream: Running first, Stopped last,
// output between.
func checkStream(t *testing.T, stream []*api.Command) {
	t.Helper()
	if len(stream) < 2 {
		t.Fatalf("stream = %v, want at least state Running and state Stopped", stream)
	}
	if s, ok := stream[0].Body.(*api.Command_State); !ok || s.State != api.State_Running {
		t.Errorf("first streamed message = %v, want state Running", stream[0])
	}
	last := stream[len(stream)-1]
	if s, ok := last.Body.(*api.Command_State); !ok || s.State != api.State_Stopped {
		t.Errorf("last streamed message = %v, want state Stopped", last)
	}
	for _, m := range stream[1 : len(stream)-1] {
		if _, ok := m.Body.(*api.Command_Output); !ok {
			t.Errorf("streamed %v between the states, want output only", m)
		}
		if m.Ref != "" {
			t.Errorf("streamed %v carries a ref", m)
		}
	}
}

// mustRead sends a read that must not fail.
func mustRead(t *testing.T, ch *client.Channel, cmd *api.Command) *api.Command {
	t.Helper()
	reply := request(t, ch, cmd)
	if e, ok := reply.Body.(*api.Command_Error); ok {
		t.Fatalf("%v: error %q", cmd, e.Error)
	}
	return reply
}

func listed(t *testing.T, ch *client.Channel) map[string]string {
	t.Helper()
	resp := mustRead(t, ch, listCmd()).GetPackageListSpecfileResp()
	if resp == nil {
		t.Fatal("packageListSpecfile not answered with packageListSpecfileResp")
	}
	out := map[string]string{}
	for _, p := range resp.Pkgs {
		out[p.Name] = p.Spec
	}
	return out
}

func noViolations(t *testing.T, clients ...*client.Client) {
	t.Helper()
	for i, c := range clients {
		for _, v := range c.Violations() {
			t.Errorf("client %d: %s: %v", i, v.Problem, v.Command)
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

var lookPath = exec.LookPath

var isError = client.IsError
