package contained_test

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
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services"
	"github.com/conman-dev/conman/services/contained"
	"github.com/conman-dev/conman/services/proc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func file(path, content string) *api.File { return &api.File{Path: path, Content: []byte(content)} }

func runTest(suite *api.File, project ...*api.File) *api.Command {
	return &api.Command{Body: &api.Command_RunContainedTest{RunContainedTest: &api.ContainedTest{Suite: suite, Project: project}}}
}

func need(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s is not installed", tool)
	}
}

// writeFiles writes files (path: content) into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// open starts a daemon with a workspace holding files and opens a
// contained channel as a read-write user.
func open(t *testing.T, files map[string]string) (*conmantest.Daemon, *client.Channel) {
	t.Helper()
	d := conmantest.Start(t)
	writeFiles(t, d.Workspace, files)
	ch, err := d.Dial(t).Open(conmantest.Context(t), contained.Name, "", api.OpenChannel_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	return d, ch
}

// result sends cmd and returns the testResult it is answered with.
func result(t *testing.T, ch *client.Channel, cmd *api.Command) *api.TestResult {
	t.Helper()
	r, err := ch.Request(conmantest.Context(t), cmd)
	if err != nil {
		t.Fatal(err)
	}
	res := r.GetTestResult()
	if res == nil {
		t.Fatalf("answered %v", r)
	}
	return res
}

// checkFails compares a result's failures with want (name: a substring of
// its trace).
func checkFails(t *testing.T, res *api.TestResult, want map[string]string) {
	t.Helper()
	if res.Passed {
		t.Errorf("passed, with failures %v", res.Fails)
	}
	if len(res.Fails) != len(want) {
		t.Errorf("%d failures, want %d: %v", len(res.Fails), len(want), res.Fails)
	}
	for _, f := range res.Fails {
		substr, ok := want[f.Name]
		if !ok || !strings.Contains(f.Trace, substr) {
			t.Errorf("failure %q with trace %q; want one of %v", f.Name, f.Trace, want)
		}
	}
}

const calc = "package calc\n\nfunc Add(a, b int) int { return a + b }\n"

const calcTest = `package calc

import "testing"

func TestAdd(t *testing.T) {
	if Add(2, 2) != 4 {
		t.Fatal("2+2")
	}
}

func TestAddWrong(t *testing.T) {
	if got := Add(2, 2); got != 5 {
		t.Errorf("Add(2, 2) = %d, want 5", got)
	}
}
`

// TestGo: a Go project with one passing and one failing test; the project
// comes from the workspace (files without content), the suite from the
// request, and the workspace is left as it was.
func TestGo(t *testing.T) {
	need(t, "go")
	d, ch := open(t, map[string]string{"calc/calc.go": calc, "calc/go.mod": "module calc\n\ngo 1.21\n"})
	res := result(t, ch, runTest(file("calc/calc_test.go", calcTest), &api.File{Path: "/calc"}))
	checkFails(t, res, map[string]string{"TestAddWrong": "calc_test.go:13: Add(2, 2) = 4, want 5"})
	if _, err := os.Stat(filepath.Join(d.Workspace, "calc", "calc_test.go")); !os.IsNotExist(err) {
		t.Errorf("the suite reached the workspace: %v", err)
	}

	// Without a go.mod the scratch directory becomes a module of its own;
	// a fixed suite passes.
	fixed := strings.Replace(calcTest, "got != 5", "got != 4", 1)
	res = result(t, ch, runTest(file("calc_test.go", fixed), file("calc.go", calc)))
	if !res.Passed || len(res.Fails) != 0 {
		t.Errorf("the fixed suite: %v", res)
	}

	// A build error is one failure named after the package.
	res = result(t, ch, runTest(file("calc_test.go", calcTest+"\nfunc broken() int { return \"x\" }\n"), file("calc.go", calc)))
	checkFails(t, res, map[string]string{"contained": "cannot use \"x\""})
}

func TestPython(t *testing.T) {
	need(t, "python3")
	_, ch := open(t, map[string]string{"calc.py": "def add(a, b):\n    return a + b\n"})
	suite := `import unittest
from calc import add

class TestCalc(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 2), 4)

    def test_add_wrong(self):
        self.assertEqual(add(2, 2), 5)
`
	res := result(t, ch, runTest(file("tests/test_calc.py", suite), &api.File{Path: "calc.py"}))
	checkFails(t, res, map[string]string{"tests.test_calc.TestCalc.test_add_wrong": "AssertionError: 4 != 5"})
	if !strings.Contains(res.Stderr, "Ran 2 tests") {
		t.Errorf("stderr %q", res.Stderr)
	}
}

func TestNode(t *testing.T) {
	need(t, "node")
	_, ch := open(t, nil)
	suite := `const test = require('node:test');
const assert = require('node:assert');
const { add } = require('./calc');
test('adds', () => assert.strictEqual(add(2, 2), 4));
test('adds wrong', () => assert.strictEqual(add(2, 2), 5));
`
	res := result(t, ch, runTest(file("calc.test.js", suite), file("calc.js", "exports.add = (a, b) => a + b;\n")))
	checkFails(t, res, map[string]string{"adds wrong": "4 !== 5"})
}

func TestErrors(t *testing.T) {
	d, ch := open(t, map[string]string{"notes.txt": "x"})
	ctx := conmantest.Context(t)
	for _, tt := range []struct {
		cmd  *api.Command
		want string
	}{
		{runTest(nil), "contained: no test suite given"},
		{runTest(file("notes.txt", "")), "contained: cannot tell how to run notes.txt"},
		{runTest(file("../x_test.go", "package x")), "contained: resolve ../x_test.go: "},
		{runTest(file("x_test.go", "package x"), &api.File{}), "contained: a file without a path"},
	} {
		r, err := ch.Request(ctx, tt.cmd)
		if err != nil || !client.IsError(r, tt.want) {
			t.Errorf("%v: %v %v, want an error %q", tt.cmd, r, err, tt.want)
		}
	}
	ro, err := d.DialAs(t, auth.Claims{UserName: "viewer", ReadOnly: true}).Open(ctx, contained.Name, "", api.OpenChannel_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := ro.Request(ctx, runTest(file("x_test.go", "package x"))); err != nil || !client.IsError(r, "permission denied") {
		t.Errorf("read-only: %v %v", r, err)
	}
}

// TestStoppedWithChannel: a runner still running when its channel closes
// is stopped, group and all, and no process is left.
func TestStoppedWithChannel(t *testing.T) {
	need(t, "python3")
	_, ch := open(t, nil)
	ctx := conmantest.Context(t)
	suite := "import subprocess, sys, time, unittest\n" +
		"class T(unittest.TestCase):\n" +
		"    def test_slow(self):\n" +
		"        subprocess.Popen(['sleep', '1000'])\n" +
		"        print('started', file=sys.stderr, flush=True)\n" +
		"        time.sleep(1000)\n"
	if err := ch.Send(&api.Command{Ref: "slow", Body: runTest(file("test_slow.py", suite)).Body}); err != nil {
		t.Fatal(err)
	}
	var groups []proc.Group
	poll(t, func() bool {
		groups = proc.Supervised()
		return len(groups) > 0
	})
	if _, err := ch.Close(ctx, api.CloseChannel_CLOSE); err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		select {
		case <-g.Done():
		case <-ctx.Done():
			t.Fatalf("process group %d still runs", g.Pid())
		}
	}
	if n := len(proc.Supervised()); n != 0 {
		t.Errorf("%d process groups left", n)
	}
}

// TestTimeout: a run over the timeout is stopped and reported.
func TestTimeout(t *testing.T) {
	need(t, "python3")
	svc, err := contained.New(services.Env{Workspace: t.TempDir(), DataDir: t.TempDir()}, contained.Options{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop(context.Background())
	suite := "import time, unittest\nclass T(unittest.TestCase):\n    def test_slow(self):\n        time.sleep(1000)\n"
	_, err = svc.Run(context.Background(), &api.ContainedTest{Suite: file("test_slow.py", suite)})
	if err == nil || err.Error() != "contained: the tests did not finish within 300ms" {
		t.Fatalf("err %v", err)
	}
	if n := len(proc.Supervised()); n != 0 {
		t.Errorf("%d process groups left", n)
	}
}

// poll checks cond every few milliseconds until it holds (nothing signals
// that a runner has started), failing the test after conmantest.Timeout.
func poll(t *testing.T, cond func() bool) {
	t.Helper()
	ctx := conmantest.Context(t)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("condition not met in time")
		}
	}
}
