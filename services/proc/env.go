package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// secretNameParts mark an environment variable as a credential when its
// upper-cased name contains one of them.
var secretNameParts = []string{
	"TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE_KEY",
	"API_KEY", "APIKEY", "ACCESS_KEY", "SESSION_KEY", "SIGNING_KEY",
}

// secretValuePrefixes mark a value as a token whatever its name: PASETO
// tokens (the daemon's own kind) and JSON web tokens.
var secretValuePrefixes = []string{"v1.public.", "v2.public.", "v3.public.", "v4.public.", "v1.local.", "v2.local.", "v3.local.", "v4.local.", "eyJ"}

// IsSecret reports whether an environment variable of the daemon must not
// reach workspace processes: the daemon's own configuration (CONMAN_*) and
// anything that looks like a credential, by name or by value.
func IsSecret(name, value string) bool {
	upper := strings.ToUpper(name)
	if strings.HasPrefix(upper, "CONMAN_") || strings.HasSuffix(upper, "_KEY") {
		return true
	}
	for _, part := range secretNameParts {
		if strings.Contains(upper, part) {
			return true
		}
	}
	for _, prefix := range secretValuePrefixes {
		if strings.HasPrefix(value, prefix) && (prefix != "eyJ" || strings.Count(value, ".") == 2) {
			return true
		}
	}
	return false
}

// Environ returns the environment of a workspace process: the daemon's own
// without its secrets (see [IsSecret]), then the Env of the current
// [Defaults], then extra on top; each layer sorted by name so that the
// result does not depend on map order.
func Environ(extra map[string]string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, value, _ := strings.Cut(kv, "=")
		return IsSecret(name, value)
	})
	return Setenv(Setenv(env, defaultEnv()), extra)
}

// TerminalEnviron is [Environ] for a process in a terminal: the daemon's
// TERM says nothing about the browser's terminal, so it is dropped (the
// pty package sets TERM=xterm-256color).
func TerminalEnviron(extra map[string]string) []string {
	env := Environ(nil)
	env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "TERM=") })
	return Setenv(env, extra)
}

// Setenv returns env with every variable of extra set, replacing earlier
// values, in name order.
func Setenv(env []string, extra map[string]string) []string {
	if len(extra) == 0 {
		return env
	}
	names := make([]string, 0, len(extra))
	for name := range extra {
		names = append(names, name)
	}
	slices.Sort(names)
	env = slices.DeleteFunc(env, func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		_, replaced := extra[name]
		return replaced
	})
	for _, name := range names {
		env = append(env, name+"="+extra[name])
	}
	return env
}

// Getenv returns the last value of name in env.
func Getenv(env []string, name string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// LookPath finds the executable name in the PATH of env, as a shell does.
// A name with a slash is returned unchanged (a relative one is taken
// relative to the process's directory when it starts). Relative PATH
// entries are skipped: they would make the meaning of a bare name depend
// on the working directory. The error, when nothing is found, reads
// `exec: "name": executable file not found in $PATH`.
func LookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path, ok := Getenv(env, "PATH")
	if !ok {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	if name != "" {
		for _, dir := range filepath.SplitList(path) {
			if !filepath.IsAbs(dir) {
				continue
			}
			candidate := filepath.Join(dir, name)
			if isExecutable(candidate) {
				return candidate, nil
			}
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0
}
