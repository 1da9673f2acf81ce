package contained

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/conman-dev/conman/api"
)

// runner is one language's test runner.
type runner struct {
	name string // as failures without a test are named
	// prepare readies the scratch directory for suite (workspace-relative,
	// slash form) and returns the directory the runner runs in
	// (optional: the scratch directory).
	prepare func(ctx context.Context, svc *Service, scratch, suite string) (string, error)
	// argv is the command that runs suite (given as "./" + suite, so that
	// no name is taken for an option); it runs from the scratch directory
	// unless prepare said otherwise.
	argv func(suite string) []string
	// env is added to the runner's environment.
	env map[string]string
	// parse finds the failing tests in what the runner wrote.
	parse func(stdout, stderr []byte) []*api.TestFailure
}

// goEnv is added to the environment of the go commands: a go.work above
// the scratch directory must not take it over.
var goEnv = map[string]string{"GOWORK": "off"}

var (
	goRunner = &runner{
		name:    "go test",
		prepare: goModule,
		argv:    func(string) []string { return []string{"go", "test", "-json", "-count=1", "./..."} },
		env:     goEnv,
		parse:   func(stdout, _ []byte) []*api.TestFailure { return parseGoTest(stdout) },
	}
	pythonRunner = &runner{
		name:  "python unittest",
		argv:  func(suite string) []string { return []string{"python3", "-m", "unittest", "-v", "./" + suite} },
		parse: func(_, stderr []byte) []*api.TestFailure { return parseUnittest(stderr) },
	}
	nodeRunner = &runner{
		name:  "node --test",
		argv:  func(suite string) []string { return []string{"node", "--test", "--test-reporter=tap", "./" + suite} },
		parse: func(stdout, _ []byte) []*api.TestFailure { return parseTAP(stdout) },
	}
)

// runnersByExt and runnersByLanguage choose the runner.
var (
	runnersByExt = map[string]*runner{
		".go": goRunner, ".py": pythonRunner, ".js": nodeRunner, ".mjs": nodeRunner, ".cjs": nodeRunner,
	}
	runnersByLanguage = map[string]*runner{"go": goRunner, "python": pythonRunner, "nodejs": nodeRunner}
)

// chooseRunner picks the runner of suite: by its extension, else by
// language (as proc.Language names it).
func chooseRunner(suite, language string) (*runner, error) {
	if r := runnersByExt[strings.ToLower(path.Ext(suite))]; r != nil {
		return r, nil
	}
	if r := runnersByLanguage[language]; r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("contained: cannot tell how to run %s: the suite must be a .go, .py or .js file, or pid1Config must name its language (go, python or nodejs)", suite)
}

// goModule returns the module the suite belongs to: the nearest directory
// at or above the suite's with a go.mod. When the project brought none,
// the scratch directory is made a module, with the go directive of the
// toolchain at hand.
func goModule(ctx context.Context, svc *Service, scratch, suite string) (string, error) {
	for dir := path.Dir(suite); ; dir = path.Dir(dir) {
		host := filepath.Join(scratch, filepath.FromSlash(dir))
		if _, err := os.Stat(filepath.Join(host, "go.mod")); err == nil {
			return host, nil
		}
		if dir == "." || dir == "/" {
			break
		}
	}
	out, err := svc.exec(ctx, scratch, []string{"go", "mod", "init", "contained"}, goEnv)
	if err != nil {
		return "", err
	}
	if out.status.Code != 0 || out.status.Signaled() {
		return "", fmt.Errorf("contained: go mod init: %s: %s", out.status, strings.TrimSpace(out.stderr.String()))
	}
	return scratch, nil
}

// goEvent is one line of `go test -json` (cmd/test2json), build events
// included.
type goEvent struct {
	Action      string
	Package     string
	Test        string
	Output      string
	ImportPath  string // build-output events
	FailedBuild string // a package's fail event when its build failed
}

// parseGoTest reads the failures of `go test -json`: each failed test
// whose subtests did not fail, with its output, then each failed package
// in which no test failed (a build error, a panic outside tests), with
// the package's own output and its build output.
func parseGoTest(stdout []byte) []*api.TestFailure {
	type key struct{ pkg, test string }
	outputs := map[key]*strings.Builder{}
	build := map[string]*strings.Builder{}
	add := func(m map[key]*strings.Builder, k key, text string) {
		b := m[k]
		if b == nil {
			b = &strings.Builder{}
			m[k] = b
		}
		b.WriteString(text)
	}
	var failedTests []key
	var failedPkgs []goEvent
	pkgs := map[string]bool{}
	var loose strings.Builder // lines that are not events
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev goEvent
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			loose.Write(line)
			loose.WriteByte('\n')
			continue
		}
		switch ev.Action {
		case "output":
			add(outputs, key{ev.Package, ev.Test}, ev.Output)
		case "build-output":
			b := build[ev.ImportPath]
			if b == nil {
				b = &strings.Builder{}
				build[ev.ImportPath] = b
			}
			b.WriteString(ev.Output)
		case "fail":
			pkgs[ev.Package] = true
			if ev.Test != "" {
				failedTests = append(failedTests, key{ev.Package, ev.Test})
			} else {
				failedPkgs = append(failedPkgs, ev)
			}
		case "pass", "skip":
			pkgs[ev.Package] = true
		}
	}
	var fails []*api.TestFailure
	pkgFailed := map[string]bool{}
	for _, k := range failedTests {
		pkgFailed[k.pkg] = true
		if slices.ContainsFunc(failedTests, func(o key) bool {
			return o.pkg == k.pkg && strings.HasPrefix(o.test, k.test+"/")
		}) {
			continue // its failed subtests speak for it
		}
		name := k.test
		if len(pkgs) > 1 {
			name = k.pkg + "." + k.test
		}
		fails = append(fails, &api.TestFailure{Name: name, Trace: textOf(outputs[key{k.pkg, k.test}])})
	}
	for _, ev := range failedPkgs {
		if pkgFailed[ev.Package] {
			continue
		}
		trace := textOf(build[ev.FailedBuild]) + textOf(outputs[key{ev.Package, ""}])
		if strings.TrimSpace(trace) == "" {
			trace = loose.String()
		}
		fails = append(fails, &api.TestFailure{Name: ev.Package, Trace: strings.TrimRight(trace, "\n")})
	}
	return fails
}

func textOf(b *strings.Builder) string {
	if b == nil {
		return ""
	}
	return b.String()
}

// unittestHeader is the first line of a failure in unittest's report:
// "FAIL: test_two (test_x.T.test_two)", with " (i=1)" after it for a
// subTest; before Python 3.11 the parentheses hold the class only.
var unittestHeader = regexp.MustCompile(`^(?:FAIL|ERROR): (\S+) \(([^)]*)\)(.*)$`)

// parseUnittest reads the failures and errors of unittest's report: each
// block between a line of "=" and the next such line (or the line of "-"
// before the summary) is one failure, named by the test's id.
func parseUnittest(stderr []byte) []*api.TestFailure {
	lines := strings.Split(strings.ToValidUTF8(string(stderr), "\uFFFD"), "\n")
	isRule := func(s string, c byte) bool {
		return len(s) >= 20 && strings.Trim(s, string(c)) == ""
	}
	var fails []*api.TestFailure
	for i := 0; i < len(lines); i++ {
		if !isRule(lines[i], '=') || i+1 >= len(lines) {
			continue
		}
		m := unittestHeader.FindStringSubmatch(lines[i+1])
		if m == nil {
			continue
		}
		method, id, extra := m[1], m[2], strings.TrimSpace(m[3])
		name := id
		if !strings.HasSuffix(id, "."+method) {
			name = id + "." + method
		}
		if extra != "" {
			name += " " + extra
		}
		j := i + 2
		if j < len(lines) && isRule(lines[j], '-') {
			j++
		}
		var trace []string
		for ; j < len(lines) && !isRule(lines[j], '=') && !isRule(lines[j], '-'); j++ {
			trace = append(trace, lines[j])
		}
		fails = append(fails, &api.TestFailure{Name: name, Trace: strings.TrimSpace(strings.Join(trace, "\n"))})
		i = j - 1
	}
	return fails
}

// tapResult is a test result line of TAP: "not ok 2 - fails # SKIP ...",
// indented four spaces per level of subtest.
var tapResult = regexp.MustCompile(`^(\s*)(not ok|ok) \d+(?: - (.*?))?(?:\s+#.*)?$`)

// parseTAP reads the failing tests of node's TAP report. A subtest comes
// before its parent's result; a parent whose subtests failed is
// represented by them, named "parent > child". The trace is the YAML
// block after the result (error, stack, location...).
func parseTAP(stdout []byte) []*api.TestFailure {
	lines := strings.Split(strings.ToValidUTF8(string(stdout), "\uFFFD"), "\n")
	type failure struct {
		top int // the indent of the outermost test known to hold it
		f   *api.TestFailure
	}
	var all []*failure
	for i := 0; i < len(lines); i++ {
		m := tapResult.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		indent, name := len(m[1]), unescapeTAP(m[3])
		// The failures just before this result at a deeper level are
		// this test's subtests (or theirs).
		children := 0
		for k := len(all) - 1; k >= 0 && all[k].top > indent; k-- {
			all[k].top = indent
			all[k].f.Name = name + " > " + all[k].f.Name
			children++
		}
		if m[2] == "ok" {
			continue
		}
		trace, next := tapBlock(lines, i+1, indent)
		i = next - 1
		if children == 0 {
			all = append(all, &failure{top: indent, f: &api.TestFailure{Name: name, Trace: trace}})
		}
	}
	fails := make([]*api.TestFailure, len(all))
	for i, f := range all {
		fails[i] = f.f
	}
	return fails
}

// tapBlock returns the YAML block that starts at lines[i] ("---" indented
// two more than the result), dedented, and the index after it.
func tapBlock(lines []string, i, indent int) (string, int) {
	pad := strings.Repeat(" ", indent+2)
	if i >= len(lines) || strings.TrimRight(lines[i], " ") != pad+"---" {
		return "", i
	}
	var block []string
	for i++; i < len(lines); i++ {
		if strings.TrimRight(lines[i], " ") == pad+"..." {
			i++
			break
		}
		block = append(block, strings.TrimPrefix(lines[i], pad))
	}
	return strings.TrimRight(strings.Join(block, "\n"), "\n"), i
}

// unescapeTAP undoes the escapes of a TAP description.
func unescapeTAP(s string) string {
	return strings.NewReplacer(`\#`, "#", `\\`, `\`).Replace(s)
}
