package proc

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"
)

// Defaults are the process-wide settings for the workspace processes
// started from now on (the protocol's pid1Config sets them): every exec,
// shell, run, task and supervised service reads them when it starts a
// process, never afterwards, so a change reaches only later processes.
//
// They are process-wide, like the register of supervised groups, because
// the daemon is the one PID 1 of its container.
type Defaults struct {
	// Cwd is the working directory, relative to the workspace root, in
	// clean slash form ("" is the root itself). See [Dir].
	Cwd string
	// Env is set on top of the daemon's environment (minus its secrets)
	// and under the variables a request sets itself. See [Environ].
	Env map[string]string
	// Language names the project's language for the services that must
	// choose one: the run button (which run command) and contained tests
	// (which test runner). It is kept as [Language] spells it ("go",
	// "python", "nodejs", ...). Empty lets each of them detect it from the
	// project's files.
	Language string
}

// Limits of [Defaults].
const (
	maxLanguageBytes = 64
	maxEnvVars       = 1000
)

// defaults holds the current Defaults.
var defaults = struct {
	// mu guards the following.
	mu  sync.RWMutex
	cur Defaults
}{}

// SetDefaults checks d and makes it the defaults of every process started
// from now on; the zero Defaults restores the daemon's own behaviour.
// It returns an error, and changes nothing, when d is malformed: a Cwd that
// is absolute after its leading "/" is taken as the root, that climbs
// above the root, or holds a NUL byte; an Env name that is empty or holds
// "=" or a NUL byte, or a value with a NUL byte; a Language with anything
// but letters, digits and ".+_-". Whether Cwd exists is the caller's to
// check: it knows the workspace.
func SetDefaults(d Defaults) error {
	cwd, err := cleanCwd(d.Cwd)
	if err != nil {
		return err
	}
	if len(d.Env) > maxEnvVars {
		return fmt.Errorf("env: more than %d variables", maxEnvVars)
	}
	for name, value := range d.Env {
		if name == "" || strings.ContainsAny(name, "=\x00") || !utf8.ValidString(name) {
			return fmt.Errorf("env: bad variable name %q", name)
		}
		if strings.ContainsRune(value, 0) {
			return fmt.Errorf("env: %s: value holds a NUL byte", name)
		}
	}
	lang := strings.ToLower(strings.TrimSpace(d.Language))
	if len(lang) > maxLanguageBytes || strings.IndexFunc(lang, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune(".+_-", r))
	}) >= 0 {
		return fmt.Errorf("language: bad name %q", d.Language)
	}
	next := Defaults{Cwd: cwd, Env: maps.Clone(d.Env), Language: Language(lang)}
	defaults.mu.Lock()
	defaults.cur = next
	defaults.mu.Unlock()
	return nil
}

// cleanCwd turns a working directory as a client spells it into a clean
// workspace-relative slash path ("" for the root).
func cleanCwd(cwd string) (string, error) {
	if strings.ContainsRune(cwd, 0) {
		return "", errors.New("cwd: holds a NUL byte")
	}
	rel := path.Clean(strings.TrimLeft(cwd, "/"))
	switch {
	case rel == ".":
		return "", nil
	case rel == ".." || strings.HasPrefix(rel, "../"):
		return "", fmt.Errorf("cwd %q: outside the workspace", cwd)
	}
	return rel, nil
}

// languages maps the names a client may use for a language to the one
// services compare with.
var languages = map[string]string{
	"go": "go", "golang": "go",
	"python": "python", "python3": "python", "py": "python",
	"nodejs": "nodejs", "node": "nodejs", "javascript": "nodejs", "js": "nodejs",
	"typescript": "nodejs", "nodejs-npm": "nodejs",
	"rust": "rust", "cargo": "rust",
	"ruby": "ruby", "rb": "ruby",
	"bash": "bash", "sh": "bash", "shell": "bash",
}

// Language returns the name services use for the language a client
// called name ("golang" is "go", "python3" is "python", "node" is
// "nodejs"); a name it does not know is returned lower-cased.
func Language(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	if canonical, ok := languages[name]; ok {
		return canonical
	}
	return name
}

// CurrentDefaults returns a copy of the current defaults.
func CurrentDefaults() Defaults {
	defaults.mu.RLock()
	defer defaults.mu.RUnlock()
	d := defaults.cur
	d.Env = maps.Clone(d.Env)
	return d
}

// Dir returns the working directory of a process started now in the
// workspace whose absolute path is workspace: the workspace itself, or
// the defaults' Cwd inside it.
func Dir(workspace string) string {
	defaults.mu.RLock()
	cwd := defaults.cur.Cwd
	defaults.mu.RUnlock()
	if cwd == "" {
		return workspace
	}
	return filepath.Join(workspace, filepath.FromSlash(cwd))
}

// defaultEnv returns the defaults' Env (not a copy: callers only read it).
func defaultEnv() map[string]string {
	defaults.mu.RLock()
	defer defaults.mu.RUnlock()
	return defaults.cur.Env
}
