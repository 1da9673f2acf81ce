package golang

import (
	"errors"
	"testing"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/services/packager/backend"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseRequires(t *testing.T) {
	t.Parallel()
	text := `module example.com/m

go 1.22

require github.com/a/b v1.0.0 // a comment
require (
	github.com/c/d v0.2.0
	"github.com/e/f" v1.1.0 // indirect
	// github.com/commented/out v1.0.0
)

replace github.com/a/b => ../b
`
	got := parseRequires(text)
	want := []requirement{
		{Path: "github.com/a/b", Version: "v1.0.0"},
		{Path: "github.com/c/d", Version: "v0.2.0"},
		{Path: "github.com/e/f", Version: "v1.1.0", Indirect: true},
	}
	if len(got) != len(want) {
		t.Fatalf("parseRequires = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("requirement %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestLatestVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		list []string
		want string
	}{
		{[]string{"v1.0.0", "v1.10.0", "v1.2.0", "v2.0.0-beta.1"}, "v1.10.0"},
		{[]string{"v0.1.0-alpha", "v0.1.0-beta", "v0.1.0-alpha.2"}, "v0.1.0-beta"},
		{[]string{"v1.0.0-rc.2", "v1.0.0-rc.10"}, "v1.0.0-rc.10"},
		{[]string{"v2.0.0+incompatible", "v1.9.9"}, "v2.0.0+incompatible"},
		{[]string{"junk", ""}, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := latestVersion(tt.list); got != tt.want {
			t.Errorf("latestVersion(%v) = %q, want %q", tt.list, got, tt.want)
		}
	}
}

func TestEscapePath(t *testing.T) {
	t.Parallel()
	if got := escapePath("github.com/BurntSushi/toml"); got != "github.com/!burnt!sushi/toml" {
		t.Errorf("escapePath = %q", got)
	}
}

func TestCheckPackage(t *testing.T) {
	t.Parallel()
	b := New(Config{})
	for _, p := range []backend.Package{{Name: "github.com/google/uuid"}, {Name: "golang.org/x/mod", Spec: "v0.20.0"}, {Name: "gopkg.in/yaml.v3", Spec: "latest"}, {Name: "example.com/m", Spec: "1.2.3"}} {
		if err := b.CheckPackage(p); err != nil {
			t.Errorf("CheckPackage(%+v) = %v", p, err)
		}
	}
	for _, p := range []backend.Package{{Name: "uuid"}, {Name: "fmt"}, {Name: "example.com/.hidden"}, {Name: "example.com/x."}, {Name: "example.com/m", Spec: "none"}, {Name: "example.com/m", Spec: "@v1"}} {
		if err := b.CheckPackage(p); backend.KindOf(err) != backend.KindInvalid {
			t.Errorf("CheckPackage(%+v) = %v, want invalid", p, err)
		}
	}
	if got := query(backend.Package{Spec: "1.2.3"}); got != "v1.2.3" {
		t.Errorf("query(1.2.3) = %q", got)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	exit := func(out string) error {
		return &backend.ExitError{Command: "go get", Output: out, Err: errors.New("exit status 1")}
	}
	err := classify(exit(`go: example.com/x@latest: module example.com/x: Get "http://127.0.0.1:9/example.com/x/@v/list": dial tcp 127.0.0.1:9: connect: connection refused`))
	if backend.KindOf(err) != backend.KindUnreachable || err.Error() != "go get: the Go module proxy is unreachable" {
		t.Errorf("unreachable: %q", err)
	}
	err = classify(exit("go: downloading example.com/x v1.0.0\ngo: module example.com/nosuch: reading file:///p/example.com/nosuch/@v/list: 404 Not Found\n"))
	if backend.KindOf(err) != backend.KindNotFound || err.Error() != "go get: module or version not found: module example.com/nosuch: reading file:///p/example.com/nosuch/@v/list: 404 Not Found" {
		t.Errorf("not found: %q", err)
	}
}

func TestProxyBase(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"https://proxy.golang.org,direct": "https://proxy.golang.org",
		"direct|https://p.example/":       "https://p.example",
		"file:///tmp/p":                   "file:///tmp/p",
	}
	for in, want := range tests {
		got, err := New(Config{Proxy: in}).proxyBase()
		if err != nil || got != want {
			t.Errorf("proxyBase(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"off", "direct"} {
		if _, err := New(Config{Proxy: in}).proxyBase(); backend.KindOf(err) != backend.KindDisabled {
			t.Errorf("proxyBase(%q) = %v, want disabled", in, err)
		}
	}
}
