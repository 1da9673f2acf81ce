package supervise

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/conman-dev/conman/api"
)

// Where a service's definition comes from.
const (
	sourceAPI    = "api"
	sourceReplit = "replit"
)

// spec is what runs: a service's definition.
type spec struct {
	Args    []string
	Env     map[string]string
	Restart api.ServiceSpec_Restart
}

func (s spec) equal(o spec) bool {
	return slices.Equal(s.Args, o.Args) && maps.Equal(s.Env, o.Env) && s.Restart == o.Restart
}

// namePattern is what a service may be called: a name fit for a channel
// name (log:<name>) and a file.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func checkName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("services: bad service name %q (letters, digits, '.', '_' and '-', at most 64)", name)
	}
	return nil
}

// parseRestart reads a restart policy as .replit spells it.
func parseRestart(text string) (api.ServiceSpec_Restart, error) {
	switch strings.ToLower(strings.TrimSpace(text)) {
	case "", "on-failure", "on_failure":
		return api.ServiceSpec_ON_FAILURE, nil
	case "always":
		return api.ServiceSpec_ALWAYS, nil
	case "never", "no":
		return api.ServiceSpec_NEVER, nil
	}
	return 0, fmt.Errorf("restart must be always, on-failure or never, not %q", text)
}

// maxReplitBytes bounds the .replit file read.
const maxReplitBytes = 1 << 20

// replitDef is a service declared in .replit: its spec, or why it is
// unusable.
type replitDef struct {
	spec spec
	err  error
}

// readReplit reads the [services.NAME] tables of dir/.replit:
//
//	[services.web]
//	run = "npm start"             # or ["node", "server.js"]
//	env = { PORT = "3000" }
//	restart = "always"            # on-failure (default), always or never
//
// A missing file declares nothing. A file that cannot be parsed is an
// error; a service that is badly declared is returned with its error.
func readReplit(dir string) (map[string]replitDef, error) {
	f, err := os.Open(filepath.Join(dir, ".replit"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("services: .replit: %w", err)
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil || !info.Mode().IsRegular() {
		return nil, errors.New("services: .replit is not a regular file")
	}
	content, err := io.ReadAll(io.LimitReader(f, maxReplitBytes))
	if err != nil {
		return nil, fmt.Errorf("services: .replit: %w", err)
	}
	var conf struct {
		Services map[string]struct {
			Run     any               `toml:"run"`
			Env     map[string]string `toml:"env"`
			Restart string            `toml:"restart"`
		} `toml:"services"`
	}
	if err := toml.Unmarshal(content, &conf); err != nil {
		return nil, fmt.Errorf("services: .replit: %w", err)
	}
	defs := make(map[string]replitDef, len(conf.Services))
	for name, s := range conf.Services {
		if checkName(name) != nil {
			continue
		}
		def := replitDef{spec: spec{Env: s.Env}}
		def.spec.Args, def.err = runArgs(s.Run)
		if def.err == nil {
			def.spec.Restart, def.err = parseRestart(s.Restart)
		}
		if def.err != nil {
			def.err = fmt.Errorf("services: .replit: services.%s: %w", name, def.err)
		}
		defs[name] = def
	}
	return defs, nil
}

// runArgs reads a run key: a string is run by sh -c, an array as it is.
func runArgs(run any) ([]string, error) {
	switch run := run.(type) {
	case string:
		if strings.TrimSpace(run) == "" {
			return nil, errors.New("run is empty")
		}
		return []string{"sh", "-c", run}, nil
	case []any:
		var args []string
		for _, v := range run {
			s, ok := v.(string)
			if !ok {
				return nil, errors.New("run must be a string or an array of strings")
			}
			args = append(args, s)
		}
		if len(args) == 0 || args[0] == "" {
			return nil, errors.New("run is empty")
		}
		return args, nil
	case nil:
		return nil, errors.New("run is missing")
	}
	return nil, errors.New("run must be a string or an array of strings")
}

// storedService is what is kept of a service in DataDir/services/state.json.
type storedService struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	// The definition of an api service (a .replit one is read from there).
	Args    []string          `json:"args,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Restart string            `json:"restart,omitempty"`
	Enabled bool              `json:"enabled"`
	// EnabledSeq orders the enabled services: they start in this order.
	EnabledSeq uint64 `json:"enabledSeq,omitempty"`
	// Pid and PidStart identify the running process group, so that a
	// daemon restarted after a crash can stop what its predecessor left.
	Pid      int    `json:"pid,omitempty"`
	PidStart uint64 `json:"pidStart,omitempty"`
}

type storedState struct {
	Services []storedService `json:"services"`
}

// loadState reads the state file; a missing one is an empty state.
func loadState(path string) (storedState, error) {
	var st storedState
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("services: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return storedState{}, fmt.Errorf("services: %s: %w", filepath.Base(path), err)
	}
	return st, nil
}

// saveState writes the state file atomically. It does not fsync: the
// state must survive the daemon, not the machine.
func saveState(path string, st storedState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("services: encode state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("services: save state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("services: save state: %w", err)
	}
	return nil
}
