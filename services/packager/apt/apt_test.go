package apt

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/services/packager/backend"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseStanza(t *testing.T) {
	t.Parallel()
	out := "Package: jq\nVersion: 1.6-2.1\nMaintainer: Jane Doe <jane@example.org>\nPre-Depends: dpkg (>= 1.15)\nDepends: libjq1 (= 1.6-2.1), libc6 (>= 2.34) | libc6-alt\nDescription: lightweight JSON processor\n more text\n .\nHomepage: https://example.org/jq\n\nPackage: jq\nVersion: 1.5\n"
	f := parseStanza(out)
	if f["Package"] != "jq" || f["Version"] != "1.6-2.1" || f["Homepage"] != "https://example.org/jq" {
		t.Errorf("fields = %v", f)
	}
	if f["Description"] != "lightweight JSON processor\nmore text\n." {
		t.Errorf("Description = %q", f["Description"])
	}
	deps := splitDepends(f["Pre-Depends"] + ", " + f["Depends"])
	want := []backend.Package{{Name: "dpkg", Spec: ">=1.15"}, {Name: "libjq1", Spec: "=1.6-2.1"}, {Name: "libc6", Spec: ">=2.34"}}
	if len(deps) != len(want) {
		t.Fatalf("deps = %+v", deps)
	}
	for i := range want {
		if deps[i].Name != want[i].Name || deps[i].Spec != want[i].Spec {
			t.Errorf("dep %d = %+v, want %+v", i, deps[i], want[i])
		}
	}
	if got := maintainerName(f["Maintainer"]); got != "Jane Doe" {
		t.Errorf("maintainerName = %q", got)
	}
}

func TestCheckPackage(t *testing.T) {
	t.Parallel()
	b := New(Config{})
	for _, p := range []backend.Package{{Name: "jq"}, {Name: "libc6:amd64"}, {Name: "g++", Spec: "4:12.2.0-3"}} {
		if err := b.CheckPackage(p); err != nil {
			t.Errorf("CheckPackage(%+v) = %v", p, err)
		}
	}
	for _, p := range []backend.Package{{Name: "J"}, {Name: "x"}, {Name: "Jq"}, {Name: "jq", Spec: "~bad"}} {
		if err := b.CheckPackage(p); backend.KindOf(err) != backend.KindInvalid {
			t.Errorf("CheckPackage(%+v) = %v, want invalid", p, err)
		}
	}
}
