// Package python is the packager's python-pip backend: requirements.txt
// (and the [project].dependencies of pyproject.toml, read only) managed
// with pip, package data from a package index's JSON API.
//
// pip runs with the workspace's .venv when there is one. The backend edits
// requirements.txt itself, keeping comments and unrelated lines; it never
// writes pyproject.toml.
package python

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/conman-dev/conman/services/packager/backend"
)

// Name is the language name.
const Name = "python-pip"

// Files of a Python project.
const (
	Specfile  = "requirements.txt"
	Pyproject = "pyproject.toml"
	// Venv is the virtualenv pip installs into when it exists.
	Venv = ".venv"
)

// DefaultIndex is the index used when neither the configuration nor
// PIP_INDEX_URL names one.
const DefaultIndex = "https://pypi.org/simple/"

// IndexOff as Config.Index means no index at all: pip runs with
// --no-index and installs only from FindLinks.
const IndexOff = "off"

// Timeouts: pip's own per-request timeout (with no retries) and the probe
// that tells an unreachable index from a missing package before pip runs.
const (
	pipTimeout   = 10
	probeTimeout = 5 * time.Second
)

const registryName = "the Python package index"

// Config configures a [Backend].
type Config struct {
	// Workspace is the project directory.
	Workspace string
	// Index is the index URL (a "simple" index), IndexOff, or empty for
	// PIP_INDEX_URL or DefaultIndex.
	Index string
	// FindLinks is passed to pip as --find-links when set.
	FindLinks string
	// Python is the interpreter used when the workspace has no .venv
	// (default "python3").
	Python string
	// Environ is the tools' base environment.
	Environ []string
	// HTTP queries the index.
	HTTP *http.Client
}

// Backend implements backend.Backend for pip.
type Backend struct {
	cfg Config
}

var _ backend.Backend = (*Backend)(nil)

// New returns the backend for cfg.
func New(cfg Config) *Backend {
	if cfg.Python == "" {
		cfg.Python = "python3"
	}
	return &Backend{cfg: cfg}
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return Name }

// Files implements backend.Backend.
func (b *Backend) Files() backend.Files {
	return backend.Files{
		Specfiles: []string{Specfile, Pyproject},
		Sources:   []string{"*.py"},
	}
}

// namePattern is a distribution name (PEP 508, without extras).
var namePattern = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$`)

// specPattern is a version or a comma-separated list of comparisons.
var specPattern = regexp.MustCompile(`^(?:===?|~=|!=|<=?|>=?)?[A-Za-z0-9.*+!_-]+(?:,(?:===?|~=|!=|<=?|>=?)[A-Za-z0-9.*+!_-]+)*$`)

// CheckPackage implements backend.Backend.
func (b *Backend) CheckPackage(p backend.Package) error {
	if !namePattern.MatchString(p.Name) {
		return backend.BadName(p.Name, "not a Python distribution name")
	}
	if p.Spec != "" && !specPattern.MatchString(p.Spec) {
		return backend.BadSpec(p.Name, p.Spec, "not a version or version comparison")
	}
	return nil
}

// normalize is a distribution name's canonical form (PEP 503).
func normalize(name string) string {
	return strings.ToLower(separators.ReplaceAllString(name, "-"))
}

var separators = regexp.MustCompile(`[-_.]+`)

// requirementName reads the name a requirements line declares; comments,
// blank lines, options and URLs declare none.
var requirementName = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)`)

func lineKey(line string) string {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "-") || strings.Contains(strings.SplitN(line, " ", 2)[0], "://") {
		return ""
	}
	m := requirementName.FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	return normalize(m[1])
}

// parseRequirement splits a requirement ("requests[socks] >= 2.0 ;
// python_version > '3'  # why") into its name and version spec.
func parseRequirement(line string) (backend.Package, bool) {
	line, _, _ = strings.Cut(line, " #")
	line = strings.TrimSpace(line)
	m := requirementName.FindStringSubmatch(line)
	if m == nil || lineKey(line) == "" {
		return backend.Package{}, false
	}
	rest := line[len(m[1]):]
	rest, _, _ = strings.Cut(rest, ";")
	rest = strings.TrimSpace(rest)
	if strings.HasPrefix(rest, "[") { // extras
		if i := strings.Index(rest, "]"); i >= 0 {
			rest = rest[i+1:]
		}
	}
	if strings.HasPrefix(strings.TrimSpace(rest), "@") { // a direct reference
		rest = ""
	}
	rest = strings.Trim(strings.TrimSpace(rest), "()")
	return backend.Package{Name: m[1], Spec: strings.ReplaceAll(rest, " ", "")}, true
}

// requirement is the requirements line for p.
func requirement(p backend.Package) string {
	switch {
	case p.Spec == "" || p.Spec == "*":
		return p.Name
	case strings.ContainsAny(p.Spec[:1], "=<>!~"):
		return p.Name + p.Spec
	}
	return p.Name + "==" + p.Spec
}

func (b *Backend) specfile() string { return filepath.Join(b.cfg.Workspace, Specfile) }

// pyprojectDeps returns pyproject.toml's [project].dependencies.
func (b *Backend) pyprojectDeps() ([]string, error) {
	path := filepath.Join(b.cfg.Workspace, Pyproject)
	if !backend.Exists(path) {
		return nil, nil
	}
	var doc struct {
		Project struct {
			Dependencies []string `toml:"dependencies"`
		} `toml:"project"`
	}
	if _, err := toml.DecodeFile(path, &doc); err != nil {
		return nil, backend.Errorf(backend.KindInvalid, err, "parse %s: %v", Pyproject, err)
	}
	return doc.Project.Dependencies, nil
}

// List implements backend.Backend: requirements.txt's requirements, then
// those of pyproject.toml it does not already name.
func (b *Backend) List(ctx context.Context) ([]backend.Package, error) {
	f, err := backend.ReadLineFile(b.specfile(), lineKey)
	if err != nil {
		return nil, err
	}
	deps, err := b.pyprojectDeps()
	if err != nil {
		return nil, err
	}
	var out []backend.Package
	seen := map[string]bool{}
	for _, line := range append(f.Entries(), deps...) {
		p, ok := parseRequirement(line)
		if ok && !seen[normalize(p.Name)] {
			seen[normalize(p.Name)] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// pip is `<python> -m pip <sub> <options>`, with .venv's interpreter when
// the workspace has one.
func (b *Backend) pip(sub string, options ...string) backend.Cmd {
	python := b.cfg.Python
	if backend.Exists(filepath.Join(b.cfg.Workspace, Venv, "bin", "python")) {
		python = filepath.Join(Venv, "bin", "python")
	}
	args := []string{python, "-m", "pip", sub, "--disable-pip-version-check", "--no-input"}
	args = append(args, options...)
	env := backend.Environ(b.cfg.Environ, "PYTHONUNBUFFERED=1", "PIP_NO_COLOR=1")
	return backend.Cmd{Args: args, Dir: b.cfg.Workspace, Env: env}
}

// installOptions are pip install's options: no retries and a short
// timeout, the configured index and links.
func (b *Backend) installOptions() []string {
	opts := []string{"--progress-bar", "off", "--retries", "0", "--timeout", fmt.Sprint(pipTimeout)}
	switch {
	case b.cfg.Index == IndexOff:
		opts = append(opts, "--no-index")
	case b.cfg.Index != "":
		opts = append(opts, "--index-url", b.cfg.Index)
	}
	if b.cfg.FindLinks != "" {
		opts = append(opts, "--find-links", b.cfg.FindLinks)
	}
	return opts
}

// indexURL is the index pip reads, or "" when it reads none.
func (b *Backend) indexURL() string {
	switch {
	case b.cfg.Index == IndexOff:
		return ""
	case b.cfg.Index != "":
		return b.cfg.Index
	}
	for i := len(b.cfg.Environ) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(b.cfg.Environ[i], "PIP_INDEX_URL="); ok && v != "" {
			return v
		}
	}
	return DefaultIndex
}

// probe checks that the index answers at all (any HTTP status will do),
// so an unreachable index is reported as such within seconds, not as pip's
// "no matching distribution" after its timeouts.
func (b *Backend) probe(ctx context.Context) error {
	index := b.indexURL()
	if index == "" {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodGet, index, nil)
	if err != nil {
		return backend.Errorf(backend.KindInvalid, err, "bad package index URL %q: %v", index, err)
	}
	resp, err := b.cfg.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &backend.Error{Kind: backend.KindUnreachable, Reason: registryName + " is unreachable (" + index + ")", Err: err}
	}
	resp.Body.Close()
	return nil
}

// Add implements backend.Backend: pip install, then requirements.txt
// gains (or updates) a line for each package.
func (b *Backend) Add(ctx context.Context, run backend.Runner, pkgs []backend.Package) error {
	f, err := backend.ReadLineFile(b.specfile(), lineKey)
	if err != nil {
		return err
	}
	if err := b.probe(ctx); err != nil {
		return fmt.Errorf("pip install: %w", err)
	}
	args := append(b.installOptions(), "--")
	for _, p := range pkgs {
		args = append(args, requirement(p))
	}
	if err := run.Run(ctx, b.pip("install", args...)); err != nil {
		return classify(err)
	}
	for _, p := range pkgs {
		f.Set(normalize(p.Name), requirement(p))
	}
	return backend.WriteFile(b.specfile(), f.Bytes())
}

// Remove implements backend.Backend: pip uninstall, then the packages'
// lines leave requirements.txt. Every package must be listed there.
func (b *Backend) Remove(ctx context.Context, run backend.Runner, pkgs []backend.Package) error {
	f, err := backend.ReadLineFile(b.specfile(), lineKey)
	if err != nil {
		return err
	}
	args := []string{"-y", "--"}
	for _, p := range pkgs {
		if !f.Has(normalize(p.Name)) {
			return backend.Errorf(backend.KindInvalid, nil, "%s is not in %s", p.Name, Specfile)
		}
		args = append(args, p.Name)
	}
	if err := run.Run(ctx, b.pip("uninstall", args...)); err != nil {
		return classify(err)
	}
	for _, p := range pkgs {
		f.Remove(normalize(p.Name))
	}
	return backend.WriteFile(b.specfile(), f.Bytes())
}

// Install implements backend.Backend: pip install -r requirements.txt and
// pyproject.toml's dependencies.
func (b *Backend) Install(ctx context.Context, run backend.Runner) error {
	deps, err := b.pyprojectDeps()
	if err != nil {
		return err
	}
	haveReqs := backend.Exists(b.specfile())
	if !haveReqs && len(deps) == 0 {
		return backend.Errorf(backend.KindInvalid, nil, "nothing to install: neither %s nor %s lists a dependency", Specfile, Pyproject)
	}
	if err := b.probe(ctx); err != nil {
		return fmt.Errorf("pip install: %w", err)
	}
	args := b.installOptions()
	if haveReqs {
		args = append(args, "-r", Specfile)
	}
	if len(deps) > 0 {
		args = append(append(args, "--"), deps...)
	}
	return classify(run.Run(ctx, b.pip("install", args...)))
}

// Failure patterns in pip's output.
var (
	unreachablePattern = regexp.MustCompile(`NewConnectionError|Failed to establish a new connection|Name or service not known|Temporary failure in name resolution|Connection refused|ConnectTimeoutError|Network is unreachable|Max retries exceeded`)
	noDistPattern      = regexp.MustCompile(`No matching distribution found for (\S+)`)
	managedPattern     = regexp.MustCompile(`externally-managed-environment`)
	noPipPattern       = regexp.MustCompile(`No module named pip`)
)

// classify turns a pip failure into the reason the client sees.
func classify(err error) error {
	var ee *backend.ExitError
	if !errors.As(err, &ee) || backend.Stopped(err) {
		return err
	}
	out := ee.Output
	if m := noDistPattern.FindStringSubmatch(out); m != nil && !unreachablePattern.MatchString(out) {
		return backend.Errorf(backend.KindNotFound, err, "%s: no matching distribution found for %s", ee.Command, m[1])
	}
	switch {
	case unreachablePattern.MatchString(out):
		return fmt.Errorf("%s: %w", ee.Command, backend.Unreachable(registryName, err))
	case managedPattern.MatchString(out):
		return backend.Errorf(backend.KindFailed, err, "%s: the Python environment is managed by the system; create a virtualenv in %s", ee.Command, Venv)
	case noPipPattern.MatchString(out):
		return backend.Errorf(backend.KindFailed, err, "%s: the Python interpreter has no pip", ee.Command)
	}
	return backend.Failed(err, pipError)
}

// pipError picks pip's last "ERROR: " line.
func pipError(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if rest, ok := strings.CutPrefix(lines[i], "ERROR: "); ok {
			return rest
		}
	}
	return ""
}
