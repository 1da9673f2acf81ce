package packager

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/conman-dev/conman/services/packager/apt"
	"github.com/conman-dev/conman/services/packager/backend"
	"github.com/conman-dev/conman/services/packager/golang"
	"github.com/conman-dev/conman/services/packager/nodejs"
	"github.com/conman-dev/conman/services/packager/python"
)

// DotReplit is the project configuration file whose [packager] language
// names the language.
const DotReplit = ".replit"

// errNoLanguage is the answer when nothing names or suggests a language.
var errNoLanguage = backend.Errorf(backend.KindInvalid, nil, "could not detect a language; set packager.language in .replit")

// languageAliases maps the names a configuration may use to backend names.
var languageAliases = map[string]string{
	nodejs.Name: nodejs.Name, "nodejs": nodejs.Name, "node": nodejs.Name, "npm": nodejs.Name,
	"javascript": nodejs.Name, "typescript": nodejs.Name,
	golang.Name: golang.Name, "golang": golang.Name,
	python.Name: python.Name, "python": python.Name, "python3": python.Name, "pip": python.Name,
	apt.Name: apt.Name, "apt": apt.Name, "system": apt.Name,
}

// Limits of the source-file scan.
const (
	scanDepth   = 4
	scanEntries = 20000
)

// skipDirs are directories that hold other people's code or tools' state,
// never the project's sources.
var skipDirs = map[string]bool{"node_modules": true, "vendor": true, "__pycache__": true, "site-packages": true}

// choice is a detected language and why it was chosen.
type choice struct {
	backend backend.Backend
	rule    string // which rule chose it
	why     string
}

// backendFor returns the backend a language name or alias names.
func (s *Service) backendFor(lang string) (backend.Backend, error) {
	name := languageAliases[strings.ToLower(strings.TrimSpace(lang))]
	for _, b := range s.backends {
		if b.Name() == name || b.Name() == lang {
			return b, nil
		}
	}
	names := make([]string, 0, len(s.backends))
	for _, b := range s.backends {
		names = append(names, b.Name())
	}
	sort.Strings(names)
	return nil, backend.Errorf(backend.KindInvalid, nil, "unknown packager language %q (known: %s)", lang, strings.Join(names, ", "))
}

// detect chooses the backend for a request and logs the choice when it
// changes.
func (s *Service) detect() (backend.Backend, error) {
	c, err := s.choose()
	if err != nil {
		return nil, err
	}
	key := c.backend.Name() + " by " + c.rule
	s.mu.Lock()
	changed := s.lastChoice != key
	s.lastChoice = key
	s.mu.Unlock()
	if changed {
		s.log.Info("packager language chosen", "language", c.backend.Name(), "because", c.why)
	}
	return c.backend, nil
}

// choose applies the rules in order: the configured language; .replit's
// [packager] language; a backend with both a specfile and a lockfile; one
// with a specfile; one with a lockfile; the backend with the most source
// files. Ties go to the earlier backend.
func (s *Service) choose() (choice, error) {
	if s.language != "" {
		b, err := s.backendFor(s.language)
		return choice{b, "override", EnvLanguage + " is " + s.language}, err
	}
	if lang, err := replitLanguage(s.workspace); err != nil {
		return choice{}, err
	} else if lang != "" {
		b, err := s.backendFor(lang)
		if err != nil {
			return choice{}, fmt.Errorf("%s: %w", DotReplit, err)
		}
		return choice{b, "replit", DotReplit + " sets packager.language"}, nil
	}
	exists := func(names []string) string {
		for _, n := range names {
			if backend.Exists(filepath.Join(s.workspace, n)) {
				return n
			}
		}
		return ""
	}
	for _, b := range s.backends {
		f := b.Files()
		if spec, lock := exists(f.Specfiles), exists(f.Lockfiles); spec != "" && lock != "" {
			return choice{b, "specfile and lockfile", spec + " and " + lock + " exist"}, nil
		}
	}
	for _, b := range s.backends {
		if spec := exists(b.Files().Specfiles); spec != "" {
			return choice{b, "specfile", spec + " exists"}, nil
		}
	}
	for _, b := range s.backends {
		if lock := exists(b.Files().Lockfiles); lock != "" {
			return choice{b, "lockfile", lock + " exists"}, nil
		}
	}
	counts := countSources(s.workspace, s.backends)
	best, bestCount := -1, 0
	for i := range s.backends {
		if counts[i] > bestCount {
			best, bestCount = i, counts[i]
		}
	}
	if best < 0 {
		return choice{}, errNoLanguage
	}
	return choice{s.backends[best], "sources", fmt.Sprintf("%d source files match %s", bestCount, strings.Join(s.backends[best].Files().Sources, " "))}, nil
}

// replitLanguage reads [packager] language from the workspace's .replit;
// "" when the file or the key is absent.
func replitLanguage(workspace string) (string, error) {
	data, err := os.ReadFile(filepath.Join(workspace, DotReplit))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", DotReplit, err)
	}
	var conf struct {
		Packager struct {
			Language string `toml:"language"`
		} `toml:"packager"`
	}
	if _, err := toml.Decode(string(data), &conf); err != nil {
		return "", backend.Errorf(backend.KindInvalid, err, "parse %s: %v", DotReplit, err)
	}
	return conf.Packager.Language, nil
}

// countSources counts, for each backend, the workspace files matching its
// source patterns, down to scanDepth directories and at most scanEntries
// entries; hidden directories, dependency directories and virtualenvs are
// skipped.
func countSources(workspace string, backends []backend.Backend) []int {
	counts := make([]int, len(backends))
	sources := make([][]string, len(backends))
	for i, b := range backends {
		sources[i] = b.Files().Sources
	}
	seen := 0
	filepath.WalkDir(workspace, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if d != nil && d.IsDir() && p != workspace {
				return fs.SkipDir
			}
			return nil
		}
		if seen++; seen > scanEntries {
			return fs.SkipAll
		}
		name := d.Name()
		if d.IsDir() {
			if p == workspace {
				return nil
			}
			rel, _ := filepath.Rel(workspace, p)
			if strings.HasPrefix(name, ".") || skipDirs[name] ||
				strings.Count(rel, string(filepath.Separator)) >= scanDepth ||
				backend.Exists(filepath.Join(p, "pyvenv.cfg")) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		for i := range backends {
			for _, pattern := range sources[i] {
				if ok, _ := path.Match(pattern, name); ok {
					counts[i]++
					break
				}
			}
		}
		return nil
	})
	return counts
}
