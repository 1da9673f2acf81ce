package packager_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/conman-dev/conman/services/packager"
)

// testModules are what the file proxy of the Go tests serves.
var testModules = []goModule{
	{path: "example.com/dep", version: "v1.0.0", files: map[string]string{"dep.go": "package dep\n\nconst Answer = 42\n"}},
	{path: "example.com/hello", version: "v1.0.0", files: map[string]string{"hello.go": "package hello\n\nconst Hello = \"hi\"\n"}},
	{path: "example.com/hello", version: "v1.1.0", requires: map[string]string{"example.com/dep": "v1.0.0"},
		files: map[string]string{"hello.go": "package hello\n\nimport \"example.com/dep\"\n\nconst Hello = dep.Answer\n"}},
}

// goProxyEnv is the environment for a file proxy of the test modules.
func goProxyEnv(t *testing.T) map[string]string {
	return map[string]string{
		packager.EnvGoProxy: "file://" + writeGoProxy(t, testModules...),
		"GOSUMDB":           "off",
		"GONOSUMDB":         "example.com",
	}
}

// TestGoOffline drives the go command against a module proxy in a
// directory: add (creating go.mod), list, info, search, install, remove.
func TestGoOffline(t *testing.T) {
	requireTool(t, "go")
	d := start(t, goProxyEnv(t), map[string]string{"main.go": "package main\n\nfunc main() {}\n"})
	c := d.Dial(t)
	ch := openPackager(t, c, "")

	out := mustSucceed(t, ch, addCmd(pkg("example.com/hello", "")))
	if !strings.HasPrefix(out, "--> go mod init ") || !strings.Contains(out, "--> go get -- example.com/hello@latest\n") {
		t.Errorf("add output = %q", out)
	}
	gomod := readFile(t, filepath.Join(d.Workspace, "go.mod"))
	if !strings.Contains(gomod, "example.com/hello v1.1.0") {
		t.Errorf("go.mod = %q, want example.com/hello v1.1.0", gomod)
	}
	if got := listed(t, ch); got["example.com/hello"] != "v1.1.0" || got["example.com/dep"] != "v1.0.0" {
		t.Errorf("list = %v", got)
	}

	info := mustRead(t, ch, infoCmd("example.com/hello")).GetPackageInfoResp().GetPkg()
	if info.GetName() != "example.com/hello" || info.GetVersion() != "v1.1.0" {
		t.Errorf("info = %v", info)
	}
	if deps := info.GetDependencies(); len(deps) != 1 || deps[0].GetName() != "example.com/dep" || deps[0].GetSpec() != "v1.0.0" {
		t.Errorf("info dependencies = %v", deps)
	}
	if reply := request(t, ch, infoCmd("example.com/nosuch")); !isError(reply, "module example.com/nosuch not found") {
		t.Errorf("info of a missing module = %v", reply)
	}
	found := mustRead(t, ch, searchCmd("example.com/dep")).GetPackageSearchResp().GetResults()
	if len(found) != 1 || found[0].GetName() != "example.com/dep" || found[0].GetVersion() != "v1.0.0" {
		t.Errorf("search example.com/dep = %v", found)
	}
	if reply := request(t, ch, searchCmd("uuid")); !isError(reply, "Go module search needs a full module path") {
		t.Errorf("search uuid = %v", reply)
	}

	mustSucceed(t, ch, addCmd(pkg("example.com/hello", "v1.0.0")))
	if got := listed(t, ch); got["example.com/hello"] != "v1.0.0" {
		t.Errorf("after add @v1.0.0, list = %v", got)
	}
	mustFail(t, ch, addCmd(pkg("example.com/nosuch", "")), "not found")

	if out := mustSucceed(t, ch, installCmd()); !strings.HasPrefix(out, "--> go mod download\n") {
		t.Errorf("install output = %q", out)
	}
	if out := mustSucceed(t, ch, removeCmd("example.com/hello")); !strings.HasPrefix(out, "--> go get -- example.com/hello@none\n") {
		t.Errorf("remove output = %q", out)
	}
	if got := listed(t, ch); got["example.com/hello"] != "" {
		t.Errorf("list after remove = %v", got)
	}
	mustFail(t, ch, removeCmd("example.com/hello"), "example.com/hello is not in go.mod")
	noViolations(t, c)
}

// TestGoProxy uses the public module proxy.
func TestGoProxy(t *testing.T) {
	skipOffline(t, "the Go module proxy")
	requireTool(t, "go")
	d := start(t, nil, map[string]string{"go.mod": "module demo\n\ngo 1.21\n"})
	c := d.Dial(t)
	ch := openPackager(t, c, "")

	const uuid = "github.com/google/uuid"
	info := mustRead(t, ch, infoCmd(uuid)).GetPackageInfoResp().GetPkg()
	if info.GetName() != uuid || !strings.HasPrefix(info.GetVersion(), "v1.") ||
		info.GetSourceCodeURL() != "https://github.com/google/uuid" ||
		info.GetBugTrackerURL() != "https://github.com/google/uuid/issues" ||
		!strings.HasPrefix(info.GetDocumentationURL(), "https://pkg.go.dev/github.com/google/uuid@") {
		t.Errorf("info = %v", info)
	}
	found := mustRead(t, ch, searchCmd(uuid)).GetPackageSearchResp().GetResults()
	if len(found) != 1 || found[0].GetName() != uuid {
		t.Errorf("search = %v", found)
	}

	mustSucceed(t, ch, addCmd(pkg(uuid, "v1.6.0")))
	if got := listed(t, ch); got[uuid] != "v1.6.0" {
		t.Errorf("list = %v", got)
	}
	mustSucceed(t, ch, installCmd())
	mustSucceed(t, ch, removeCmd(uuid))
	if got := listed(t, ch); len(got) != 0 {
		t.Errorf("list after remove = %v", got)
	}
	if gomod := readFile(t, filepath.Join(d.Workspace, "go.mod")); strings.Contains(gomod, uuid) {
		t.Errorf("go.mod after remove = %q", gomod)
	}
	noViolations(t, c)
}
