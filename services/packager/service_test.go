package packager_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/packager"
)

func TestNoLanguage(t *testing.T) {
	d := start(t, nil, map[string]string{"README.md": "nothing to see\n"})
	c := d.Dial(t)
	ch := openPackager(t, c, "")
	const want = "could not detect a language; set packager.language in .replit"
	for _, cmd := range []*api.Command{listCmd(), searchCmd("x"), infoCmd("x")} {
		if reply := request(t, ch, cmd); !isError(reply, want) {
			t.Errorf("%v = %v, want %q", cmd, reply, want)
		}
	}
	if stream := mustFail(t, ch, installCmd(), want); len(stream) != 0 {
		t.Errorf("a refused install streamed %v", stream)
	}
	writeFile(t, filepath.Join(d.Workspace, ".replit"), replit("cobol"))
	if reply := request(t, ch, listCmd()); !isError(reply, `.replit: unknown packager language "cobol"`) {
		t.Errorf("list with an unknown language = %v", reply)
	}
	noViolations(t, c)
}

// TestStreamOrder: state Running, the --> line before each tool and its
// output after it, state Stopped, and the reply last.
func TestStreamOrder(t *testing.T) {
	requireTool(t, "go")
	d := start(t, goProxyEnv(t), map[string]string{".replit": replit("go")})
	c := d.Dial(t)
	ch := openPackager(t, c, "")
	reply, stream := mutate(t, ch, addCmd(pkg("example.com/hello", "")))
	if _, ok := reply.Body.(*api.Command_Ok); !ok {
		t.Fatalf("reply = %v; output:\n%s", reply, streamText(stream))
	}
	checkStream(t, stream)
	// Each tool's --> line is its own chunk, sent before anything the tool
	// prints.
	var chunks []string
	for _, m := range stream[1 : len(stream)-1] {
		chunks = append(chunks, m.GetOutput())
	}
	initAt, getAt, createdAt, addedAt := -1, -1, -1, -1
	for i, chunk := range chunks {
		switch {
		case strings.HasPrefix(chunk, "--> go mod init "):
			initAt = i
		case chunk == "--> go get -- example.com/hello@latest\n":
			getAt = i
		}
		if strings.Contains(chunk, "go: creating new go.mod") {
			createdAt = i
		}
		if strings.Contains(chunk, "go: added example.com/hello v1.1.0") {
			addedAt = i
		}
	}
	if !(initAt == 0 && initAt < createdAt && createdAt < getAt && getAt < addedAt) {
		t.Errorf("chunks out of order (init %d, its output %d, get %d, its output %d): %q", initAt, createdAt, getAt, addedAt, chunks)
	}
	if m, ok := ch.TryRecv(); ok {
		t.Errorf("received %v after the reply", m)
	}
	noViolations(t, c)
}

// TestMutationsQueue: two sessions add at once on one shared channel; the
// mutations run one after the other and both land in go.mod.
func TestMutationsQueue(t *testing.T) {
	requireTool(t, "go")
	d := start(t, goProxyEnv(t), map[string]string{".replit": replit("go"), "go.mod": "module demo\n\ngo 1.21\n"})
	a, b := d.Dial(t), d.Dial(t)
	cha, chb := openPackager(t, a, "shared"), openPackager(t, b, "shared")
	// A session receives the channel's broadcasts once it has joined,
	// which a reply to it proves.
	listed(t, cha)
	listed(t, chb)

	var wg sync.WaitGroup
	replies := make([]*api.Command, 2)
	for i, req := range []struct {
		ch   *client.Channel
		name string
	}{{cha, "example.com/hello"}, {chb, "example.com/dep"}} {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
			defer cancel()
			r, err := req.ch.Request(ctx, addCmd(pkg(req.name, "")))
			if err != nil {
				t.Errorf("add %s: %v", req.name, err)
				return
			}
			replies[i] = r
		})
	}
	wg.Wait()
	for i, r := range replies {
		if _, ok := r.GetBody().(*api.Command_Ok); !ok {
			t.Fatalf("reply %d = %v", i, r)
		}
	}
	gomod := readFile(t, filepath.Join(d.Workspace, "go.mod"))
	if !strings.Contains(gomod, "example.com/hello v1.1.0") || !strings.Contains(gomod, "example.com/dep v1.0.0") {
		t.Errorf("go.mod lost an add:\n%s", gomod)
	}
	// Every session on the channel saw both runs, never overlapping.
	for name, ch := range map[string]*client.Channel{"a": cha, "b": chb} {
		ctx, cancel := context.WithTimeout(context.Background(), conmantest.Timeout)
		running, stopped := false, 0
		for stopped < 2 {
			m, err := ch.Recv(ctx)
			if err != nil {
				t.Fatalf("session %s: waiting for the second run to stop: %v", name, err)
			}
			s, ok := m.Body.(*api.Command_State)
			switch {
			case !ok:
				if !running {
					t.Errorf("session %s: output %q outside a run", name, m.GetOutput())
				}
			case s.State == api.State_Running:
				if running {
					t.Errorf("session %s: a run started while another was running", name)
				}
				running = true
			case s.State == api.State_Stopped:
				running = false
				stopped++
			}
		}
		cancel()
	}
	noViolations(t, a, b)
}

func TestReadOnlyMaySearchAndReadOnly(t *testing.T) {
	requireTool(t, "go")
	d := start(t, goProxyEnv(t), map[string]string{".replit": replit("go"), "go.mod": "module demo\n\ngo 1.21\n\nrequire example.com/dep v1.0.0\n"})
	ro := d.DialAs(t, auth.Claims{UserID: 9, UserName: "viewer", ReadOnly: true})
	ch := openPackager(t, ro, "")
	for _, cmd := range []*api.Command{
		addCmd(pkg("example.com/hello", "")), removeCmd("example.com/dep"), installCmd(),
		{Body: &api.Command_EnsurePackages{EnsurePackages: &api.EnsurePackages{Install: true}}},
	} {
		if stream := mustFail(t, ch, cmd, "permission denied"); len(stream) != 0 {
			t.Errorf("%v: refused but streamed %v", cmd, stream)
		}
	}
	if got := listed(t, ch); got["example.com/dep"] != "v1.0.0" {
		t.Errorf("list = %v", got)
	}
	if found := mustRead(t, ch, searchCmd("example.com/hello")).GetPackageSearchResp().GetResults(); len(found) != 1 {
		t.Errorf("search = %v", found)
	}
	if info := mustRead(t, ch, infoCmd("example.com/hello")).GetPackageInfoResp().GetPkg(); info.GetVersion() != "v1.1.0" {
		t.Errorf("info = %v", info)
	}
	if gomod := readFile(t, filepath.Join(d.Workspace, "go.mod")); strings.Contains(gomod, "hello") {
		t.Errorf("a read-only session changed go.mod:\n%s", gomod)
	}
	noViolations(t, ro)
}

// TestBadNamesRefused: names that are paths, options, shell syntax or
// contain whitespace are refused before anything runs, in every language.
func TestBadNamesRefused(t *testing.T) {
	addr := closedAddr(t)
	d := start(t, map[string]string{
		packager.EnvNPMRegistry: "http://" + addr + "/",
		packager.EnvGoProxy:     "http://" + addr,
		packager.EnvPipIndex:    "http://" + addr + "/simple",
	}, nil)
	c := d.Dial(t)
	ch := openPackager(t, c, "")
	badNames := []string{"../x", "a/../../etc", "/etc/passwd", "--registry=http://evil", "-rf", "a;touch pwned", "$(touch pwned)",
		"`touch pwned`", "a|b", "a&&b", "a b", "a\tb", "a\nb", "", "x>y"}
	for _, lang := range []string{"nodejs-npm", "go", "python-pip", "system-apt"} {
		writeFile(t, filepath.Join(d.Workspace, ".replit"), replit(lang))
		for _, name := range badNames {
			for _, cmd := range []*api.Command{addCmd(pkg(name, "")), removeCmd(name)} {
				reply, stream := mutate(t, ch, cmd)
				if !isError(reply, "invalid package name") {
					t.Errorf("%s: %v = %v, want invalid package name", lang, cmd, reply)
				}
				if len(stream) != 0 {
					t.Errorf("%s: %q refused after streaming %v", lang, name, stream)
				}
			}
			if reply := request(t, ch, infoCmd(name)); !isError(reply, "invalid package name") {
				t.Errorf("%s: info %q = %v", lang, name, reply)
			}
		}
		for _, spec := range []string{"1.0; touch pwned", "--force", "$(id)", "1 2"} {
			if reply, stream := mutate(t, ch, addCmd(pkg("abc", spec))); !isError(reply, "invalid version spec") || len(stream) != 0 {
				t.Errorf("%s: spec %q = %v (streamed %d)", lang, spec, reply, len(stream))
			}
		}
	}
	for _, f := range []string{"package.json", "go.mod", "requirements.txt", "apt.txt", "pwned"} {
		if exists(filepath.Join(d.Workspace, f)) {
			t.Errorf("%s exists after refused requests", f)
		}
	}
	noViolations(t, c)
}

// TestUnreachableRegistries: a registry nothing answers at gives the
// classified reason within seconds, for mutations and reads.
func TestUnreachableRegistries(t *testing.T) {
	const bound = 15 * time.Second
	tests := []struct {
		lang, tool string
		env        func(addr string) map[string]string
		name       string
		want       string
	}{
		{"nodejs-npm", "npm", func(addr string) map[string]string {
			return map[string]string{packager.EnvNPMRegistry: "http://" + addr + "/"}
		}, "tiny-a", "the npm registry is unreachable"},
		{"go", "go", func(addr string) map[string]string {
			return map[string]string{packager.EnvGoProxy: "http://" + addr, "GOSUMDB": "off"}
		}, "example.com/hello", "the Go module proxy is unreachable"},
		{"python-pip", "python3", func(addr string) map[string]string {
			return map[string]string{packager.EnvPipIndex: "http://" + addr + "/simple"}
		}, "tinywheel", "the Python package index is unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.lang, func(t *testing.T) {
			requireTool(t, tt.tool)
			d := start(t, tt.env(closedAddr(t)), map[string]string{".replit": replit(tt.lang)})
			c := d.Dial(t)
			ch := openPackager(t, c, "")
			begin := time.Now()
			stream := mustFail(t, ch, addCmd(pkg(tt.name, "")), tt.want)
			if took := time.Since(begin); took > bound {
				t.Errorf("add took %v, want under %v", took, bound)
			}
			if strings.Contains(streamText(stream), "-->") {
				checkStream(t, stream)
			}
			for _, cmd := range []*api.Command{infoCmd(tt.name), searchCmd(tt.name)} {
				begin = time.Now()
				if reply := request(t, ch, cmd); !isError(reply, tt.want) {
					t.Errorf("%v = %v, want %q", cmd, reply, tt.want)
				}
				if took := time.Since(begin); took > bound {
					t.Errorf("%v took %v", cmd, took)
				}
			}
			noViolations(t, c)
		})
	}
}

// hangingRegistry accepts requests and never answers; gone is closed when
// the client of the first request goes away.
func hangingRegistry(t *testing.T) (srv *httptest.Server, arrived, gone chan struct{}) {
	arrived, gone = make(chan struct{}), make(chan struct{})
	release := make(chan struct{})
	var once, goneOnce sync.Once
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(arrived) })
		select {
		case <-r.Context().Done():
			goneOnce.Do(func() { close(gone) })
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	return srv, arrived, gone
}

func waitFor(t *testing.T, what string, ch <-chan struct{}, d time.Duration) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// TestToolKilledWithChannel: closing the channel kills the running tool.
func TestToolKilledWithChannel(t *testing.T) {
	requireTool(t, "npm")
	srv, arrived, gone := hangingRegistry(t)
	d := start(t, map[string]string{packager.EnvNPMRegistry: srv.URL + "/"}, map[string]string{".replit": replit("nodejs-npm")})
	c := d.Dial(t)
	ch := openPackager(t, c, "")
	if err := ch.Send(addCmd(pkg("tiny-a", ""))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "npm to ask the registry", arrived, toolTimeout)
	if _, err := ch.Close(conmantest.Context(t), api.CloseChannel_TRY_CLOSE); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "npm to be killed", gone, 10*time.Second)
	noViolations(t, c)
}

// TestToolKilledAtShutdown: stopping the daemon kills the running tool.
func TestToolKilledAtShutdown(t *testing.T) {
	requireTool(t, "npm")
	srv, arrived, gone := hangingRegistry(t)
	d := start(t, map[string]string{packager.EnvNPMRegistry: srv.URL + "/"}, map[string]string{".replit": replit("nodejs-npm")})
	c := d.Dial(t)
	ch := openPackager(t, c, "")
	if err := ch.Send(addCmd(pkg("tiny-a", ""))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "npm to ask the registry", arrived, toolTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), conmantest.Timeout)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	waitFor(t, "npm to be killed", gone, 10*time.Second)
}

// TestAPT reads the system's package lists; installing is refused unless
// enabled.
func TestAPT(t *testing.T) {
	requireTool(t, "apt-cache")
	if err := exec.Command("apt-cache", "show", "jq").Run(); err != nil {
		t.Skip("the package lists do not know jq (apt-get update has not run)")
	}
	d := start(t, nil, map[string]string{".replit": replit("system-apt"), "apt.txt": "# Tools.\njq\n"})
	c := d.Dial(t)
	ch := openPackager(t, c, "")

	found := mustRead(t, ch, searchCmd("jq")).GetPackageSearchResp().GetResults()
	if len(found) == 0 || len(found) > 20 || found[0].GetName() != "jq" || found[0].GetDescription() == "" {
		t.Errorf("search jq: %d results, first %v", len(found), found)
	}
	info := mustRead(t, ch, infoCmd("jq")).GetPackageInfoResp().GetPkg()
	if info.GetName() != "jq" || info.GetVersion() == "" || info.GetDescription() == "" || info.GetHomepageURL() == "" || info.GetAuthor() == "" {
		t.Errorf("info jq = %v", info)
	}
	var deps []string
	for _, dep := range info.GetDependencies() {
		deps = append(deps, dep.GetName())
	}
	if !strings.Contains(strings.Join(deps, " "), "libjq1") {
		t.Errorf("info jq dependencies = %v", deps)
	}
	if reply := request(t, ch, infoCmd("conman-no-such-package")); !isError(reply, "not found") {
		t.Errorf("info of a missing package = %v", reply)
	}
	if got := listed(t, ch); len(got) != 1 || got["jq"] != "" {
		t.Errorf("list = %v", got)
	}
	for _, cmd := range []*api.Command{addCmd(pkg("jq", "")), removeCmd("jq"), installCmd()} {
		if stream := mustFail(t, ch, cmd, "installing system packages is disabled"); len(stream) != 0 {
			t.Errorf("%v refused after streaming %v", cmd, stream)
		}
	}
	noViolations(t, c)
}

func TestEnsurePackagesAndUnsupported(t *testing.T) {
	requireTool(t, "go")
	d := start(t, goProxyEnv(t), map[string]string{"go.mod": "module demo\n\ngo 1.21\n\nrequire example.com/dep v1.0.0\n"})
	c := d.Dial(t)
	ch := openPackager(t, c, "")
	ensure := func(install bool) *api.Command {
		return &api.Command{Body: &api.Command_EnsurePackages{EnsurePackages: &api.EnsurePackages{Install: install}}}
	}
	if out := mustSucceed(t, ch, ensure(true)); !strings.HasPrefix(out, "--> go mod download\n") {
		t.Errorf("ensurePackages{install} output = %q", out)
	}
	if out := mustSucceed(t, ch, ensure(false)); out != "" {
		t.Errorf("ensurePackages{} ran %q, want no tool", out)
	}
	mustFail(t, ch, addCmd(), "add: no packages given")
	if reply := request(t, ch, &api.Command{Body: &api.Command_Debug{Debug: &api.Debug{Text: "x"}}}); !isError(reply, "unsupported command debug on service packager3") {
		t.Errorf("debug = %v", reply)
	}
	writeFile(t, filepath.Join(d.Workspace, "go.mod"), "module demo\n\ngo 1.21\n")
	if out := mustSucceed(t, ch, ensure(true)); !strings.HasPrefix(out, "--> go mod download\n") {
		t.Errorf("ensurePackages{install} output = %q", out)
	}
	noViolations(t, c)
}
