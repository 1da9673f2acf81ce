package run

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// ErrNoRunCommand is returned when neither .replit nor the project's files
// say how to run the project.
var ErrNoRunCommand = errors.New(`run: nothing to run: add run = "<command>" to .replit, or a main.py, go.mod, package.json with a start script, or index.js`)

// maxConfigBytes bounds the configuration files read.
const maxConfigBytes = 1 << 20

// A rule says how to run a project that has a file.
type rule struct {
	file     string
	language string // as proc.Language names it
	argv     []string
	// when, if set, must also accept the file's contents.
	when func(content []byte) bool
}

// rules are tried in order after .replit; the first whose file exists wins.
var rules = []rule{
	{file: "main.py", language: "python", argv: []string{"python3", "main.py"}},
	{file: "go.mod", language: "go", argv: []string{"go", "run", "."}},
	{file: "package.json", language: "nodejs", argv: []string{"npm", "start"}, when: hasStartScript},
	{file: "index.js", language: "nodejs", argv: []string{"node", "index.js"}},
	{file: "main.js", language: "nodejs", argv: []string{"node", "main.js"}},
	{file: "Cargo.toml", language: "rust", argv: []string{"cargo", "run"}},
	{file: "main.go", language: "go", argv: []string{"go", "run", "main.go"}},
	{file: "main.rb", language: "ruby", argv: []string{"ruby", "main.rb"}},
	{file: "main.sh", language: "bash", argv: []string{"bash", "main.sh"}},
	{file: "Makefile", argv: []string{"make"}},
}

// Command returns the argv that runs the project in dir: the `run` key of
// dir/.replit (a string is run by sh -c, an array as it is), else the
// first rule whose file exists.
func Command(dir string) ([]string, error) { return CommandFor(dir, "") }

// CommandFor is [Command] for a project in language (as [proc.Language]
// names it; pid1Config sets it): when .replit does not say, the rules for
// that language are tried first, then the others.
func CommandFor(dir, language string) ([]string, error) {
	if content, err := readConfig(filepath.Join(dir, ".replit")); err == nil {
		argv, found, err := fromReplit(content)
		if err != nil {
			return nil, err
		}
		if found {
			return argv, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("run: .replit: %w", err)
	}
	ordered := rules
	if language != "" {
		ordered = make([]rule, 0, len(rules))
		for _, r := range rules {
			if r.language == language {
				ordered = append(ordered, r)
			}
		}
		for _, r := range rules {
			if r.language != language {
				ordered = append(ordered, r)
			}
		}
	}
	for _, r := range ordered {
		content, err := readConfig(filepath.Join(dir, r.file))
		if err != nil {
			continue
		}
		if r.when == nil || r.when(content) {
			return r.argv, nil
		}
	}
	return nil, ErrNoRunCommand
}

func readConfig(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", filepath.Base(path))
	}
	return io.ReadAll(io.LimitReader(f, maxConfigBytes))
}

// fromReplit reads the run key of a .replit file. It reports found=false
// when the file has no run key (or an empty one).
func fromReplit(content []byte) (argv []string, found bool, err error) {
	var conf struct {
		Run any `toml:"run"`
	}
	if err := toml.Unmarshal(content, &conf); err != nil {
		return nil, false, fmt.Errorf("run: .replit: %w", err)
	}
	switch run := conf.Run.(type) {
	case nil:
		return nil, false, nil
	case string:
		if strings.TrimSpace(run) == "" {
			return nil, false, nil
		}
		return []string{"sh", "-c", run}, true, nil
	case []any:
		for _, v := range run {
			s, ok := v.(string)
			if !ok {
				return nil, false, errors.New("run: .replit: run must be a string or an array of strings")
			}
			argv = append(argv, s)
		}
		if len(argv) == 0 {
			return nil, false, nil
		}
		return argv, true, nil
	default:
		return nil, false, errors.New("run: .replit: run must be a string or an array of strings")
	}
}

func hasStartScript(content []byte) bool {
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	return json.Unmarshal(content, &pkg) == nil && strings.TrimSpace(pkg.Scripts["start"]) != ""
}
