package run_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/conman-dev/conman/services/run"
)

func TestCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		files   map[string]string
		want    []string
		wantErr string
	}{
		{"replit string", map[string]string{".replit": `run = "python3 app.py --port 8080"`, "main.py": ""},
			[]string{"sh", "-c", "python3 app.py --port 8080"}, ""},
		{"replit array", map[string]string{".replit": `run = ["node", "server.js"]`},
			[]string{"node", "server.js"}, ""},
		{"replit with other keys", map[string]string{".replit": "language = \"go\"\nrun = \"go run ./cmd/app\"\n[nix]\nchannel = \"stable\"\n"},
			[]string{"sh", "-c", "go run ./cmd/app"}, ""},
		{"replit without run", map[string]string{".replit": `language = "python3"`, "main.py": ""},
			[]string{"python3", "main.py"}, ""},
		{"replit empty run", map[string]string{".replit": `run = ""`, "index.js": ""},
			[]string{"node", "index.js"}, ""},
		{"replit run not a string", map[string]string{".replit": `run = 3`}, nil, "run must be a string or an array of strings"},
		{"replit run array of numbers", map[string]string{".replit": `run = [1, 2]`}, nil, "run must be a string or an array of strings"},
		{"replit broken", map[string]string{".replit": `run = "unterminated`}, nil, "run: .replit:"},
		{"main.py", map[string]string{"main.py": "print(1)"}, []string{"python3", "main.py"}, ""},
		{"go.mod", map[string]string{"go.mod": "module x", "main.go": ""}, []string{"go", "run", "."}, ""},
		{"main.py before go.mod", map[string]string{"go.mod": "module x", "main.py": ""}, []string{"python3", "main.py"}, ""},
		{"package.json start", map[string]string{"package.json": `{"scripts": {"start": "node app.js"}}`, "index.js": ""}, []string{"npm", "start"}, ""},
		{"package.json without start", map[string]string{"package.json": `{"scripts": {"test": "jest"}}`, "index.js": ""}, []string{"node", "index.js"}, ""},
		{"package.json broken", map[string]string{"package.json": `{`, "index.js": ""}, []string{"node", "index.js"}, ""},
		{"index.js", map[string]string{"index.js": ""}, []string{"node", "index.js"}, ""},
		{"main.js", map[string]string{"main.js": ""}, []string{"node", "main.js"}, ""},
		{"Cargo.toml", map[string]string{"Cargo.toml": "[package]"}, []string{"cargo", "run"}, ""},
		{"main.go alone", map[string]string{"main.go": "package main"}, []string{"go", "run", "main.go"}, ""},
		{"main.rb", map[string]string{"main.rb": ""}, []string{"ruby", "main.rb"}, ""},
		{"main.sh", map[string]string{"main.sh": ""}, []string{"bash", "main.sh"}, ""},
		{"Makefile", map[string]string{"Makefile": "all:"}, []string{"make"}, ""},
		{"a directory named main.py", map[string]string{"main.py/x": ""}, nil, "nothing to run"},
		{"nothing", map[string]string{"README.md": "hi"}, nil, "nothing to run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, content := range tt.files {
				path := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := run.Command(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want an error saying %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := run.Command(t.TempDir()); !errors.Is(err, run.ErrNoRunCommand) {
		t.Fatalf("empty project: %v", err)
	}
}

// TestCommandForLanguage: the language pid1Config sets picks among the
// rules; .replit still decides first, and an unmatched language falls back
// to the usual order.
func TestCommandForLanguage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"main.py", "go.mod", "index.js"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("module x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		language string
		want     []string
	}{
		{"", []string{"python3", "main.py"}},
		{"go", []string{"go", "run", "."}},
		{"nodejs", []string{"node", "index.js"}},
		{"rust", []string{"python3", "main.py"}},
	} {
		if got, err := run.CommandFor(dir, tt.language); err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("CommandFor(%q) = %q, %v; want %q", tt.language, got, err, tt.want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ".replit"), []byte(`run = "make serve"`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := run.CommandFor(dir, "go"); !slices.Equal(got, []string{"sh", "-c", "make serve"}) {
		t.Errorf(".replit did not win over the language: %q", got)
	}
}
