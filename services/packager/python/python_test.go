package python

import (
	"encoding/json"
	"testing"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/services/packager/backend"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseRequirement(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line, name, spec string
		ok               bool
	}{
		{"requests", "requests", "", true},
		{"requests >= 2.0, <3 ; python_version > '3'  # why", "requests", ">=2.0,<3", true},
		{"Flask[async]==2.3.0", "Flask", "==2.3.0", true},
		{"foo (>=1.0)", "foo", ">=1.0", true},
		{"pkg @ https://example.com/pkg.whl", "pkg", "", true},
		{"# comment", "", "", false},
		{"-r other.txt", "", "", false},
		{"--index-url https://x", "", "", false},
		{"git+https://github.com/a/b.git", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		p, ok := parseRequirement(tt.line)
		if ok != tt.ok || p.Name != tt.name || p.Spec != tt.spec {
			t.Errorf("parseRequirement(%q) = %+v, %v; want %q %q %v", tt.line, p, ok, tt.name, tt.spec, tt.ok)
		}
	}
	if lineKey("Some_Package.Name>=1") != "some-package-name" {
		t.Errorf("lineKey does not normalise: %q", lineKey("Some_Package.Name>=1"))
	}
}

func TestRequirement(t *testing.T) {
	t.Parallel()
	tests := map[string]string{"": "x", "*": "x", "1.0": "x==1.0", ">=1,<2": "x>=1,<2", "~=1.4": "x~=1.4", "==2": "x==2"}
	for spec, want := range tests {
		if got := requirement(backend.Package{Name: "x", Spec: spec}); got != want {
			t.Errorf("requirement(%q) = %q, want %q", spec, got, want)
		}
	}
}

func TestCheckPackage(t *testing.T) {
	t.Parallel()
	b := New(Config{})
	for _, p := range []backend.Package{{Name: "requests"}, {Name: "zope.interface", Spec: ">=5,<6"}, {Name: "a", Spec: "1.0.post1"}} {
		if err := b.CheckPackage(p); err != nil {
			t.Errorf("CheckPackage(%+v) = %v", p, err)
		}
	}
	for _, p := range []backend.Package{{Name: "a_"}, {Name: "x[extra]"}, {Name: "@a/b"}, {Name: "x", Spec: ">=1;os_name=='nt'"}, {Name: "x", Spec: "https://evil"}} {
		if err := b.CheckPackage(p); backend.KindOf(err) != backend.KindInvalid {
			t.Errorf("CheckPackage(%+v) = %v, want invalid", p, err)
		}
	}
}

func TestProjectDoc(t *testing.T) {
	t.Parallel()
	data := `{"info":{"name":"demo","version":"1.2.0","summary":"A demo.","home_page":"",
	"project_urls":{"Homepage":"https://demo.example","Documentation":"https://docs.demo.example","Source Code":"https://github.com/a/demo","Issue Tracker":"https://github.com/a/demo/issues"},
	"author":"","author_email":"Ada Lovelace <ada@example.com>","license":"Copyright (c) 2024\nPermission is hereby granted...",
	"classifiers":["License :: OSI Approved :: MIT License","Programming Language :: Python"],
	"requires_dist":["idna<4,>=2.5","PySocks!=1.5.7,>=1.5.6; extra == \"socks\"","charset-normalizer (<4,>=2)"]}}`
	var doc projectDoc
	if err := json.Unmarshal([]byte(data), &doc); err != nil {
		t.Fatal(err)
	}
	p := doc.pkg("demo")
	want := backend.Package{Name: "demo", Version: "1.2.0", Description: "A demo.", Homepage: "https://demo.example",
		Documentation: "https://docs.demo.example", Source: "https://github.com/a/demo", BugTracker: "https://github.com/a/demo/issues",
		Author: "Ada Lovelace", License: "MIT License"}
	deps := p.Dependencies
	p.Dependencies = nil
	if !equal(p, want) {
		t.Errorf("pkg = %+v\nwant %+v", p, want)
	}
	if len(deps) != 2 || deps[0].Name != "idna" || deps[0].Spec != "<4,>=2.5" || deps[1].Name != "charset-normalizer" || deps[1].Spec != "<4,>=2" {
		t.Errorf("dependencies = %+v", deps)
	}
}

func equal(a, b backend.Package) bool {
	return a.Name == b.Name && a.Version == b.Version && a.Description == b.Description && a.Homepage == b.Homepage &&
		a.Documentation == b.Documentation && a.Source == b.Source && a.BugTracker == b.BugTracker && a.Author == b.Author && a.License == b.License
}
