package packager_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conman-dev/conman/services/packager"
)

// makeVenv creates workspace/.venv. It is made without pip but sees the
// system's site-packages, so `.venv/bin/python -m pip` runs the system's
// pip and installs into the venv (creating a venv with its own pip takes
// tens of seconds on a loaded machine).
func makeVenv(t *testing.T, workspace string) string {
	t.Helper()
	requireTool(t, "python3")
	venv := filepath.Join(workspace, ".venv")
	if out, err := exec.Command("python3", "-m", "venv", "--without-pip", "--system-site-packages", venv).CombinedOutput(); err != nil {
		t.Skipf("python3 cannot make a virtualenv: %v\n%s", err, out)
	}
	if out, err := exec.Command(filepath.Join(venv, "bin", "python"), "-m", "pip", "--version").CombinedOutput(); err != nil {
		t.Skipf("the system python has no pip: %v\n%s", err, out)
	}
	return venv
}

// installed reports whether the venv holds the importable package name.
func installed(t *testing.T, venv, name string) bool {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(venv, "lib", "python*", "site-packages", name, "__init__.py"))
	return len(matches) > 0
}

// TestPipOffline installs a wheel the test builds, with no index:
// add, list (pyproject.toml too), remove, install; comments in
// requirements.txt survive.
func TestPipOffline(t *testing.T) {
	wheels := t.TempDir()
	buildWheel(t, wheels, "tinywheel", "0.1.0")
	d := start(t, map[string]string{packager.EnvPipIndex: "off", packager.EnvPipFindLinks: wheels},
		map[string]string{"requirements.txt": "# Runtime dependencies.\n\n# Pinned for a reason:\n", "main.py": "print('hi')\n"})
	venv := makeVenv(t, d.Workspace)
	c := d.Dial(t)
	ch := openPackager(t, c, "")
	reqs := filepath.Join(d.Workspace, "requirements.txt")

	out := mustSucceed(t, ch, addCmd(pkg("tinywheel", "")))
	if want := "--> .venv/bin/python -m pip install"; !strings.HasPrefix(out, want) || !strings.Contains(out, "--no-index") || !strings.Contains(out, "-- tinywheel\n") {
		t.Errorf("add output = %q", out)
	}
	if got, want := readFile(t, reqs), "# Runtime dependencies.\n\n# Pinned for a reason:\ntinywheel\n"; got != want {
		t.Errorf("requirements.txt = %q, want %q", got, want)
	}
	if !installed(t, venv, "tinywheel") {
		t.Error("tinywheel is not installed in .venv")
	}
	mustSucceed(t, ch, addCmd(pkg("tinywheel", "0.1.0")))
	if got, want := readFile(t, reqs), "# Runtime dependencies.\n\n# Pinned for a reason:\ntinywheel==0.1.0\n"; got != want {
		t.Errorf("requirements.txt after pinning = %q, want %q", got, want)
	}

	writeFile(t, filepath.Join(d.Workspace, "pyproject.toml"), "[project]\nname = \"demo\"\ndependencies = [\"attrs>=23\", \"TinyWheel\"]\n")
	if got := listed(t, ch); len(got) != 2 || got["tinywheel"] != "==0.1.0" || got["attrs"] != ">=23" {
		t.Errorf("list = %v, want tinywheel ==0.1.0 and attrs >=23", got)
	}
	writeFile(t, filepath.Join(d.Workspace, "pyproject.toml"), "[project]\nname = \"demo\"\n")

	mustFail(t, ch, addCmd(pkg("missingwheel", "")), "no matching distribution found for missingwheel")
	mustFail(t, ch, removeCmd("attrs"), "attrs is not in requirements.txt")

	out = mustSucceed(t, ch, removeCmd("tinywheel"))
	if !strings.HasPrefix(out, "--> .venv/bin/python -m pip uninstall --disable-pip-version-check --no-input -y -- tinywheel\n") {
		t.Errorf("remove output = %q", out)
	}
	if got, want := readFile(t, reqs), "# Runtime dependencies.\n\n# Pinned for a reason:\n"; got != want {
		t.Errorf("requirements.txt after remove = %q, want %q", got, want)
	}
	if installed(t, venv, "tinywheel") {
		t.Error("tinywheel is still installed")
	}

	writeFile(t, reqs, "tinywheel==0.1.0  # from the test\n")
	if out := mustSucceed(t, ch, installCmd()); !strings.Contains(out, "-r requirements.txt") {
		t.Errorf("install output = %q", out)
	}
	if !installed(t, venv, "tinywheel") {
		t.Error("install did not install tinywheel")
	}
	noViolations(t, c)
}

// TestPipInfo reads package data from an index's JSON API, served by the
// test.
func TestPipInfo(t *testing.T) {
	index := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/pypi/tinywheel/json" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"info": map[string]any{
			"name": "tinywheel", "version": "0.1.0", "summary": "A test wheel.",
			"author": "Test Author", "license_expression": "MIT",
			"project_urls": map[string]string{
				"Homepage": "https://example.com/tinywheel", "Documentation": "https://docs.example.com/tinywheel",
				"Source": "https://github.com/example/tinywheel", "Issues": "https://github.com/example/tinywheel/issues",
			},
			"requires_dist": []string{"attrs>=23", "pytest; extra == \"test\""},
		}})
	}))
	defer index.Close()
	d := start(t, map[string]string{packager.EnvPipIndex: index.URL + "/simple/"}, map[string]string{".replit": replit("python")})
	c := d.Dial(t)
	ch := openPackager(t, c, "")

	info := mustRead(t, ch, infoCmd("tinywheel")).GetPackageInfoResp().GetPkg()
	if info.GetName() != "tinywheel" || info.GetVersion() != "0.1.0" || info.GetDescription() != "A test wheel." ||
		info.GetAuthor() != "Test Author" || info.GetLicense() != "MIT" ||
		info.GetHomepageURL() != "https://example.com/tinywheel" || info.GetDocumentationURL() != "https://docs.example.com/tinywheel" ||
		info.GetSourceCodeURL() != "https://github.com/example/tinywheel" || info.GetBugTrackerURL() != "https://github.com/example/tinywheel/issues" {
		t.Errorf("info = %v", info)
	}
	if deps := info.GetDependencies(); len(deps) != 1 || deps[0].GetName() != "attrs" || deps[0].GetSpec() != ">=23" {
		t.Errorf("dependencies = %v", deps)
	}
	found := mustRead(t, ch, searchCmd("tinywheel")).GetPackageSearchResp().GetResults()
	if len(found) != 1 || found[0].GetName() != "tinywheel" {
		t.Errorf("search = %v", found)
	}
	if reply := request(t, ch, infoCmd("nosuch")); !isError(reply, "package nosuch not found in the Python package index") {
		t.Errorf("info nosuch = %v", reply)
	}
	noViolations(t, c)
}
