package nodejs

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/services/packager/backend"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestWebURL(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"": "",
		"git+https://github.com/jonschlinkert/is-number.git": "https://github.com/jonschlinkert/is-number",
		"git://github.com/a/b.git":                           "https://github.com/a/b",
		"git+ssh://git@github.com/a/b.git":                   "https://github.com/a/b",
		"git@github.com:a/b.git":                             "https://github.com/a/b",
		"github:a/b":                                         "https://github.com/a/b",
		"gitlab:a/b":                                         "https://gitlab.com/a/b",
		"a/b":                                                "https://github.com/a/b",
		"https://example.com/docs#readme":                    "https://example.com/docs#readme",
	}
	for in, want := range tests {
		if got := webURL(in); got != want {
			t.Errorf("webURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckPackage(t *testing.T) {
	t.Parallel()
	b := New(Config{})
	for _, p := range []backend.Package{{Name: "is-number"}, {Name: "@types/node", Spec: "^20.1.0"}, {Name: "JSONStream", Spec: "latest"}, {Name: "x", Spec: ">=1.2.3||2"}} {
		if err := b.CheckPackage(p); err != nil {
			t.Errorf("CheckPackage(%+v) = %v", p, err)
		}
	}
	for _, p := range []backend.Package{{Name: "_private"}, {Name: "@scope"}, {Name: "a/b/c"}, {Name: "x", Spec: "file:../y"}, {Name: "x", Spec: "github:a/b"}, {Name: "x", Spec: "npm:y@1"}} {
		if err := b.CheckPackage(p); backend.KindOf(err) != backend.KindInvalid {
			t.Errorf("CheckPackage(%+v) = %v, want invalid", p, err)
		}
	}
}

func TestDocURL(t *testing.T) {
	t.Parallel()
	if got, want := docURL("https://r/", "@types/node", "latest"), "https://r/@types%2Fnode/latest"; got != want {
		t.Errorf("docURL = %q, want %q", got, want)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	exit := func(out string) error {
		return &backend.ExitError{Command: "npm install", Output: out, Err: errors.New("exit status 1")}
	}
	tests := []struct {
		out  string
		kind backend.Kind
		text string
	}{
		{"npm error code ECONNREFUSED\nnpm error errno ECONNREFUSED\nnpm error FetchError: request to http://127.0.0.1:9/x failed, reason: connect ECONNREFUSED 127.0.0.1:9\n",
			backend.KindUnreachable, "npm install: the npm registry is unreachable"},
		{"npm error code E404\nnpm error 404 Not Found - GET http://r/nosuch - Not found\nnpm error 404\nnpm error 404  'nosuch@*' is not in this registry.\n",
			backend.KindNotFound, "npm install: not found in the npm registry: 404 Not Found - GET http://r/nosuch - Not found"},
		{"npm error code ETARGET\nnpm error notarget No matching version found for is-number@99.\n",
			backend.KindNotFound, "npm install: no matching version: notarget No matching version found for is-number@99."},
		{"npm error code EACCES\nnpm error syscall mkdir\nnpm error Your cache folder contains root-owned files\n",
			backend.KindFailed, "npm install: exit status 1: Your cache folder contains root-owned files"},
	}
	for _, tt := range tests {
		err := classify(exit(tt.out))
		if backend.KindOf(err) != tt.kind || err.Error() != tt.text {
			t.Errorf("classify(%q) = %q (kind %d), want %q (kind %d)", tt.out, err, backend.KindOf(err), tt.text, tt.kind)
		}
	}
}

func TestLatestDocShapes(t *testing.T) {
	t.Parallel()
	doc := latestDoc{}
	data := `{"name":"x","version":"1.0.0","author":"Ada Lovelace <ada@example.com> (https://ada.example)",
	"license":{"type":"MIT"},"bugs":{"url":"https://github.com/a/x/issues"},"repository":{"type":"git","url":"git+https://github.com/a/x.git"},
	"homepage":["https://x.example"],"dependencies":{"b":"^2","a":"1"}}`
	if err := json.Unmarshal([]byte(data), &doc); err != nil {
		t.Fatal(err)
	}
	p := doc.pkg("x")
	if p.Author != "Ada Lovelace" || p.License != "MIT" || p.BugTracker != "https://github.com/a/x/issues" ||
		p.Source != "https://github.com/a/x" || p.Homepage != "https://x.example" {
		t.Errorf("pkg = %+v", p)
	}
	var deps []string
	for _, d := range p.Dependencies {
		deps = append(deps, d.Name+"@"+d.Spec)
	}
	if strings.Join(deps, " ") != "a@1 b@^2" {
		t.Errorf("dependencies = %v", deps)
	}
}
