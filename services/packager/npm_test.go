package packager_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conman-dev/conman/services/packager"
)

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := lookPath(name); err != nil {
		t.Skipf("%s is not installed", name)
	}
}

func packageJSON(t *testing.T, workspace string) map[string]map[string]string {
	t.Helper()
	var m map[string]map[string]string
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(workspace, "package.json"))), &raw); err != nil {
		t.Fatalf("package.json: %v", err)
	}
	m = map[string]map[string]string{}
	for _, key := range []string{"dependencies", "devDependencies"} {
		deps := map[string]string{}
		if raw[key] != nil {
			json.Unmarshal(raw[key], &deps)
		}
		m[key] = deps
	}
	return m
}

// TestNPMOffline drives npm against a registry the test serves: add
// (creating package.json), list, info, search without a search endpoint,
// remove, and install from the lockfile.
func TestNPMOffline(t *testing.T) {
	requireTool(t, "npm")
	reg := newNPMRegistry(t,
		npmPackage{name: "tiny-a", version: "1.0.0"},
		npmPackage{name: "tiny-b", version: "2.1.0", deps: map[string]string{"tiny-a": "^1.0.0"}},
	)
	d := start(t, map[string]string{packager.EnvNPMRegistry: reg.URL + "/"}, map[string]string{".replit": replit("nodejs-npm")})
	c := d.Dial(t)
	ch := openPackager(t, c, "")

	out := mustSucceed(t, ch, addCmd(pkg("tiny-a", "")))
	if want := "--> npm install --save --no-audit --no-fund --registry=" + reg.URL + "/ -- tiny-a\n"; !strings.HasPrefix(out, want) {
		t.Errorf("output begins %q, want %q", out, want)
	}
	if deps := packageJSON(t, d.Workspace)["dependencies"]; deps["tiny-a"] != "^1.0.0" {
		t.Errorf("package.json dependencies = %v, want tiny-a ^1.0.0", deps)
	}
	if !exists(filepath.Join(d.Workspace, "node_modules", "tiny-a", "index.js")) {
		t.Error("node_modules/tiny-a was not installed")
	}
	if got := listed(t, ch); len(got) != 1 || got["tiny-a"] != "^1.0.0" {
		t.Errorf("list = %v, want tiny-a ^1.0.0", got)
	}

	info := mustRead(t, ch, infoCmd("tiny-b")).GetPackageInfoResp().GetPkg()
	if info.GetName() != "tiny-b" || info.GetVersion() != "2.1.0" || info.GetLicense() != "MIT" ||
		info.GetAuthor() != "Test Author" || info.GetDescription() != "A test package called tiny-b." ||
		info.GetHomepageURL() != "https://example.com/tiny-b" ||
		info.GetSourceCodeURL() != "https://github.com/example/tiny-b" ||
		info.GetBugTrackerURL() != "https://github.com/example/tiny-b/issues" {
		t.Errorf("info = %v", info)
	}
	if deps := info.GetDependencies(); len(deps) != 1 || deps[0].GetName() != "tiny-a" || deps[0].GetSpec() != "^1.0.0" {
		t.Errorf("info dependencies = %v", deps)
	}

	found := mustRead(t, ch, searchCmd("tiny-b")).GetPackageSearchResp().GetResults()
	if len(found) != 1 || found[0].GetName() != "tiny-b" || found[0].GetVersion() != "2.1.0" {
		t.Errorf("search tiny-b = %v", found)
	}
	if none := mustRead(t, ch, searchCmd("no-such-thing")).GetPackageSearchResp(); none == nil || len(none.Results) != 0 {
		t.Errorf("search no-such-thing = %v, want no results", none)
	}
	if reply := request(t, ch, infoCmd("no-such-thing")); !isError(reply, "package no-such-thing not found in the npm registry") {
		t.Errorf("info no-such-thing = %v", reply)
	}
	mustFail(t, ch, addCmd(pkg("no-such-thing", "")), "not found in the npm registry")
	mustFail(t, ch, removeCmd("tiny-b"), "tiny-b is not in package.json")

	out = mustSucceed(t, ch, removeCmd("tiny-a"))
	if !strings.HasPrefix(out, "--> npm uninstall --no-audit --no-fund --registry="+reg.URL+"/ -- tiny-a\n") {
		t.Errorf("remove output = %q", out)
	}
	if deps := packageJSON(t, d.Workspace)["dependencies"]; len(deps) != 0 {
		t.Errorf("dependencies after remove = %v", deps)
	}
	if exists(filepath.Join(d.Workspace, "node_modules", "tiny-a")) {
		t.Error("node_modules/tiny-a survived remove")
	}

	mustSucceed(t, ch, addCmd(pkg("tiny-b", "^2")))
	if err := os.RemoveAll(filepath.Join(d.Workspace, "node_modules")); err != nil {
		t.Fatal(err)
	}
	out = mustSucceed(t, ch, installCmd())
	if !strings.HasPrefix(out, "--> npm ci --no-audit --no-fund") {
		t.Errorf("install with a lockfile ran %q, want npm ci", out)
	}
	for _, name := range []string{"tiny-a", "tiny-b"} {
		if !exists(filepath.Join(d.Workspace, "node_modules", name, "package.json")) {
			t.Errorf("install did not bring back %s", name)
		}
	}
	noViolations(t, c)
}

// TestNPMRegistry uses the public npm registry.
func TestNPMRegistry(t *testing.T) {
	skipOffline(t, "the npm registry")
	requireTool(t, "npm")
	d := start(t, nil, map[string]string{"package.json": "{\n  \"name\": \"demo\",\n  \"private\": true\n}\n"})
	c := d.Dial(t)
	ch := openPackager(t, c, "")

	info := mustRead(t, ch, infoCmd("is-number")).GetPackageInfoResp().GetPkg()
	if info.GetName() != "is-number" || info.GetVersion() == "" || info.GetDescription() == "" || info.GetLicense() != "MIT" ||
		!strings.HasPrefix(info.GetSourceCodeURL(), "https://github.com/") || info.GetHomepageURL() == "" || info.GetAuthor() == "" {
		t.Errorf("info is-number = %v", info)
	}
	found := mustRead(t, ch, searchCmd("is-number")).GetPackageSearchResp().GetResults()
	if len(found) == 0 || len(found) > 20 || found[0].GetName() != "is-number" {
		t.Errorf("search is-number: %d results, first %v", len(found), found)
	}

	mustSucceed(t, ch, addCmd(pkg("is-number", "^7.0.0")))
	if deps := packageJSON(t, d.Workspace)["dependencies"]; deps["is-number"] != "^7.0.0" {
		t.Errorf("dependencies = %v", deps)
	}
	if got := listed(t, ch); got["is-number"] != "^7.0.0" {
		t.Errorf("list = %v", got)
	}
	os.RemoveAll(filepath.Join(d.Workspace, "node_modules"))
	if out := mustSucceed(t, ch, installCmd()); !strings.Contains(out, "--> npm ci") {
		t.Errorf("install output = %q", out)
	}
	if !exists(filepath.Join(d.Workspace, "node_modules", "is-number", "package.json")) {
		t.Error("install did not install is-number")
	}
	mustSucceed(t, ch, removeCmd("is-number"))
	if got := listed(t, ch); len(got) != 0 {
		t.Errorf("list after remove = %v", got)
	}
	noViolations(t, c)
}
