package contained

import (
	"strings"
	"testing"

	"github.com/conman-dev/conman/api"
)

// names lists the failures' names.
func names(fails []*api.TestFailure) []string {
	out := make([]string, len(fails))
	for i, f := range fails {
		out[i] = f.Name
	}
	return out
}

func TestParseGoTestBuildFailure(t *testing.T) {
	t.Parallel()
	out := `{"ImportPath":"calc [calc.test]","Action":"build-output","Output":"# calc [calc.test]\n"}
{"ImportPath":"calc [calc.test]","Action":"build-output","Output":"./broken.go:2:28: cannot use \"x\" as int value\n"}
{"ImportPath":"calc [calc.test]","Action":"build-fail"}
{"Action":"start","Package":"calc"}
{"Action":"output","Package":"calc","Output":"FAIL\tcalc [build failed]\n"}
{"Action":"fail","Package":"calc","Elapsed":0,"FailedBuild":"calc [calc.test]"}
`
	fails := parseGoTest([]byte(out))
	if len(fails) != 1 || fails[0].Name != "calc" || !strings.Contains(fails[0].Trace, "./broken.go:2:28: cannot use") {
		t.Fatalf("build failure: %v", fails)
	}
}

func TestParseGoTestPackages(t *testing.T) {
	t.Parallel()
	out := `{"Action":"run","Package":"m/a","Test":"TestX"}
{"Action":"output","Package":"m/a","Test":"TestX","Output":"    a_test.go:9: boom\n"}
{"Action":"fail","Package":"m/a","Test":"TestX"}
{"Action":"fail","Package":"m/a"}
{"Action":"pass","Package":"m/b","Test":"TestY"}
{"Action":"pass","Package":"m/b"}
{"Action":"output","Package":"m/c","Output":"panic: in init\n"}
{"Action":"fail","Package":"m/c"}
`
	fails := parseGoTest([]byte(out))
	if got := strings.Join(names(fails), ","); got != "m/a.TestX,m/c" {
		t.Fatalf("names %q", got)
	}
	if fails[0].Trace != "    a_test.go:9: boom\n" || fails[1].Trace != "panic: in init" {
		t.Fatalf("traces %q", []string{fails[0].Trace, fails[1].Trace})
	}
}

// unittestReport is what Python 3.11's unittest writes for a suite with a
// failure, an error and a failing subTest.
const unittestReport = `test_one (test_x.T.test_one) ... ok
test_sub (test_x.T.test_sub) ... 
  test_sub (test_x.T.test_sub) (i=1) ... FAIL
test_three (test_x.T.test_three) ... ERROR
test_two (test_x.T.test_two) ... FAIL

======================================================================
ERROR: test_three (test_x.T.test_three)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/tmp/nt/test_x.py", line 8, in test_three
    raise RuntimeError("boom")
RuntimeError: boom

======================================================================
FAIL: test_sub (test_x.T.test_sub) (i=1)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/tmp/nt/test_x.py", line 12, in test_sub
    self.assertEqual(i, 0)
AssertionError: 1 != 0

======================================================================
FAIL: test_two (test_x.T)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/tmp/nt/test_x.py", line 6, in test_two
    self.assertEqual(1, 2)
AssertionError: 1 != 2

----------------------------------------------------------------------
Ran 4 tests in 0.001s

FAILED (failures=2, errors=1)
`

func TestParseUnittest(t *testing.T) {
	t.Parallel()
	fails := parseUnittest([]byte(unittestReport))
	want := []string{"test_x.T.test_three", "test_x.T.test_sub (i=1)", "test_x.T.test_two"}
	if got := names(fails); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("names %q, want %q", got, want)
	}
	if !strings.HasPrefix(fails[0].Trace, "Traceback") || !strings.HasSuffix(fails[0].Trace, "RuntimeError: boom") {
		t.Errorf("trace %q", fails[0].Trace)
	}
	if !strings.HasSuffix(fails[2].Trace, "AssertionError: 1 != 2") {
		t.Errorf("last trace %q", fails[2].Trace)
	}
}

// tapReport is node 20's TAP for a failing test, a passing one, and a
// group whose nested subtest failed.
const tapReport = `TAP version 13
# Subtest: passes
ok 1 - passes
  ---
  duration_ms: 3.7
  ...
# Subtest: fails
not ok 2 - fails
  ---
  duration_ms: 2.4
  failureType: 'testCodeFailure'
  error: |-
    Expected values to be strictly equal:
    
    1 !== 2
  stack: |-
    TestContext.<anonymous> (/tmp/nt/t.test.js:4:30)
  ...
# Subtest: group
    # Subtest: inner
        # Subtest: deepest \# 1
        not ok 1 - deepest \# 1
          ---
          error: 'boom'
          ...
    not ok 1 - inner
      ---
      failureType: 'subtestsFailed'
      ...
    # Subtest: inner ok
    ok 2 - inner ok
not ok 3 - group
  ---
  failureType: 'subtestsFailed'
  ...
# Subtest: skipped
ok 4 - skipped # SKIP
1..4
`

func TestParseTAP(t *testing.T) {
	t.Parallel()
	fails := parseTAP([]byte(tapReport))
	want := []string{"fails", "group > inner > deepest # 1"}
	if got := names(fails); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("names %q, want %q", got, want)
	}
	if !strings.Contains(fails[0].Trace, "1 !== 2") || !strings.HasPrefix(fails[0].Trace, "duration_ms") {
		t.Errorf("trace %q", fails[0].Trace)
	}
	if fails[1].Trace != "error: 'boom'" {
		t.Errorf("nested trace %q", fails[1].Trace)
	}
}

func TestChooseRunner(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		suite, language string
		want            *runner
	}{
		{"x_test.go", "", goRunner},
		{"tests/test_x.py", "go", pythonRunner},
		{"t.test.MJS", "", nodeRunner},
		{"suite.txt", "python", pythonRunner},
		{"suite.txt", "", nil},
	} {
		r, err := chooseRunner(tt.suite, tt.language)
		if r != tt.want || (r == nil) != (err != nil) {
			t.Errorf("chooseRunner(%q, %q) = %v, %v", tt.suite, tt.language, r, err)
		}
	}
}

func TestTail(t *testing.T) {
	t.Parallel()
	if got := tail("héllo", 4); got != "llo" {
		t.Errorf("tail cut a character: %q", got)
	}
	if got := tail("abc", 10); got != "abc" {
		t.Errorf("tail(abc) = %q", got)
	}
}
