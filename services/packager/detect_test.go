package packager

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conman-dev/conman/services"
)

func TestDetect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		files    []string // "path" or "path=content"
		language string   // the configured override
		want     string   // a language, or an error's text
		why      string
	}{
		{name: "empty", want: "could not detect a language; set packager.language in .replit"},
		{name: "only unrelated files", files: []string{"README.md", "docs/x.txt"}, want: "could not detect a language"},
		{name: ".replit wins over files", files: []string{".replit=[packager]\nlanguage = \"go\"\n", "package.json", "package-lock.json"}, want: "go", why: ".replit"},
		{name: ".replit alias", files: []string{".replit=[packager]\nlanguage = \"python3\"\n"}, want: "python-pip"},
		{name: ".replit without a language", files: []string{".replit=run = \"node index.js\"\n", "go.mod"}, want: "go"},
		{name: ".replit unknown language", files: []string{".replit=[packager]\nlanguage = \"cobol\"\n"}, want: `.replit: unknown packager language "cobol"`},
		{name: ".replit broken", files: []string{".replit=[packager\n"}, want: "parse .replit"},
		{name: "override wins over .replit", language: "nodejs", files: []string{".replit=[packager]\nlanguage = \"go\"\n"}, want: "nodejs-npm", why: EnvLanguage},
		{name: "specfile and lockfile beat a specfile", files: []string{"requirements.txt", "go.mod", "go.sum"}, want: "go", why: "go.mod and go.sum exist"},
		{name: "specfile beats a lockfile", files: []string{"package-lock.json", "requirements.txt"}, want: "python-pip", why: "requirements.txt exists"},
		{name: "pyproject is a specfile", files: []string{"pyproject.toml"}, want: "python-pip"},
		{name: "backend order breaks ties", files: []string{"package.json", "go.mod"}, want: "nodejs-npm"},
		{name: "lockfile alone", files: []string{"go.sum", "main.py"}, want: "go", why: "go.sum exists"},
		{name: "apt.txt", files: []string{"apt.txt"}, want: "system-apt"},
		{name: "sources", files: []string{"main.py", "lib/util.py", "web/app.js"}, want: "python-pip", why: "2 source files"},
		{name: "sources in dependency dirs do not count", files: []string{"app.go",
			"node_modules/a/a.js", "node_modules/b/b.js", "vendor/x/x.js", ".git/hooks/h.js", ".venv/lib/y.py", "env/pyvenv.cfg", "env/lib/z.js", "env/lib/w.js"}, want: "go"},
		{name: "sources too deep do not count", files: []string{"a/b/c/d/e/f.py"}, want: "could not detect"},
		{name: "typescript", files: []string{"src/index.ts"}, want: "nodejs-npm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ws := t.TempDir()
			for _, f := range tt.files {
				name, content, _ := strings.Cut(f, "=")
				path := filepath.Join(ws, name)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s, err := New(services.Env{Workspace: ws}, Options{Language: tt.language, Environ: []string{}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Stop(context.Background())
			c, err := s.choose()
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = c.backend.Name()
			}
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("chose %q, want %q", got, tt.want)
			}
			if err == nil && !strings.Contains(c.why, tt.why) {
				t.Errorf("because %q, want it to mention %q", c.why, tt.why)
			}
		})
	}
}

func TestUnknownLanguageOverride(t *testing.T) {
	t.Parallel()
	if _, err := New(services.Env{Workspace: t.TempDir()}, Options{Language: "cobol"}); err == nil || !strings.Contains(err.Error(), "unknown packager language") {
		t.Errorf("New with an unknown language = %v", err)
	}
}

func TestLogLimiter(t *testing.T) {
	t.Parallel()
	l := newLogLimiter()
	now := l.start.Add(logWindow)
	for i := 0; i < logBurst; i++ {
		if ok, _ := l.allow(now); !ok {
			t.Fatalf("line %d refused within the burst", i)
		}
	}
	for i := 0; i < 5; i++ {
		if ok, _ := l.allow(now); ok {
			t.Fatal("a line beyond the burst was allowed")
		}
	}
	ok, dropped := l.allow(now.Add(logWindow))
	if !ok || dropped != 5 {
		t.Errorf("next window: allow = %v, dropped = %d; want true, 5", ok, dropped)
	}
}
