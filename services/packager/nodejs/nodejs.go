// Package nodejs is the packager's nodejs-npm backend: package.json and
// package-lock.json managed with npm, package data from an npm registry.
//
// It reads the registry over HTTP for search and info, and runs npm for
// every change; it edits package.json itself only to create it.
package nodejs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/conman-dev/conman/services/packager/backend"
)

// Name is the language name.
const Name = "nodejs-npm"

// DefaultRegistry is the registry read when none is configured.
const DefaultRegistry = "https://registry.npmjs.org/"

// Files of a Node.js project.
const (
	Specfile = "package.json"
	Lockfile = "package-lock.json"
)

// FetchTimeout is npm's fetch-timeout (ms): with fetch-retries=0, an
// unreachable registry fails a command within seconds.
const FetchTimeout = 20000

// registryName is how reasons name the registry.
const registryName = "the npm registry"

// Config configures a [Backend].
type Config struct {
	// Workspace is the project directory.
	Workspace string
	// Registry is the registry's base URL; empty means npm's own
	// configuration for the tool and DefaultRegistry for lookups.
	Registry string
	// Environ is the tools' base environment.
	Environ []string
	// HTTP queries the registry.
	HTTP *http.Client
}

// Backend implements backend.Backend for npm.
type Backend struct {
	cfg      Config
	registry string // for lookups, with a trailing slash
}

var _ backend.Backend = (*Backend)(nil)

// New returns the backend for cfg.
func New(cfg Config) *Backend {
	reg := cfg.Registry
	if reg == "" {
		reg = DefaultRegistry
	}
	if !strings.HasSuffix(reg, "/") {
		reg += "/"
	}
	return &Backend{cfg: cfg, registry: reg}
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return Name }

// Files implements backend.Backend.
func (b *Backend) Files() backend.Files {
	return backend.Files{
		Specfiles: []string{Specfile},
		Lockfiles: []string{Lockfile},
		Sources:   []string{"*.js", "*.mjs", "*.cjs", "*.jsx", "*.ts", "*.mts", "*.cts", "*.tsx"},
	}
}

// namePattern is an npm package name, optionally scoped. Upper case is
// accepted because old packages have it.
var namePattern = regexp.MustCompile(`^(?:@[A-Za-z0-9][A-Za-z0-9._~-]*/)?[A-Za-z0-9][A-Za-z0-9._~-]*$`)

// specPattern is a version, range or dist-tag; aliases, URLs, paths and git
// specs are refused.
var specPattern = regexp.MustCompile(`^[A-Za-z0-9.^~<>=*|+_-]+$`)

// CheckPackage implements backend.Backend.
func (b *Backend) CheckPackage(p backend.Package) error {
	if !namePattern.MatchString(p.Name) {
		return backend.BadName(p.Name, "not an npm package name")
	}
	if p.Spec != "" && !specPattern.MatchString(p.Spec) {
		return backend.BadSpec(p.Name, p.Spec, "not a version, range or tag")
	}
	return nil
}

// env is the environment npm runs with: no retries and a bounded fetch
// time, so an unreachable registry fails fast; no update check.
func (b *Backend) env() []string {
	return backend.Environ(b.cfg.Environ,
		"npm_config_fetch_retries=0",
		fmt.Sprintf("npm_config_fetch_timeout=%d", FetchTimeout),
		"npm_config_update_notifier=false",
		"npm_config_progress=false",
		"NO_COLOR=1",
	)
}

// npm is the npm command with options, then, after "--", operands.
func (b *Backend) npm(options []string, operands ...string) backend.Cmd {
	args := append([]string{"npm"}, options...)
	if b.cfg.Registry != "" {
		args = append(args, "--registry="+b.cfg.Registry)
	}
	if len(operands) > 0 {
		args = append(append(args, "--"), operands...)
	}
	return backend.Cmd{Args: args, Dir: b.cfg.Workspace, Env: b.env()}
}

// manifest is the part of package.json the backend reads.
type manifest struct {
	Dependencies    map[string]string `json:"dependencies"`
	DevDependencies map[string]string `json:"devDependencies"`
}

func (b *Backend) readManifest() (*manifest, error) {
	data, err := os.ReadFile(filepath.Join(b.cfg.Workspace, Specfile))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", Specfile, err)
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, backend.Errorf(backend.KindInvalid, err, "parse %s: %v", Specfile, err)
	}
	return &m, nil
}

// List implements backend.Backend: dependencies and devDependencies,
// sorted by name.
func (b *Backend) List(ctx context.Context) ([]backend.Package, error) {
	m, err := b.readManifest()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []backend.Package
	seen := map[string]bool{}
	for _, deps := range []map[string]string{m.Dependencies, m.DevDependencies} {
		for name, spec := range deps {
			if !seen[name] {
				seen[name] = true
				out = append(out, backend.Package{Name: name, Spec: spec})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Add implements backend.Backend: npm install --save.
func (b *Backend) Add(ctx context.Context, run backend.Runner, pkgs []backend.Package) error {
	path := filepath.Join(b.cfg.Workspace, Specfile)
	if !backend.Exists(path) {
		if err := backend.WriteFile(path, []byte("{\n  \"private\": true\n}\n")); err != nil {
			return fmt.Errorf("create %s: %w", Specfile, err)
		}
	}
	var operands []string
	for _, p := range pkgs {
		if p.Spec != "" {
			operands = append(operands, p.Name+"@"+p.Spec)
		} else {
			operands = append(operands, p.Name)
		}
	}
	return classify(run.Run(ctx, b.npm([]string{"install", "--save", "--no-audit", "--no-fund"}, operands...)))
}

// Remove implements backend.Backend: npm uninstall. Every package must be
// listed in package.json.
func (b *Backend) Remove(ctx context.Context, run backend.Runner, pkgs []backend.Package) error {
	m, err := b.readManifest()
	if errors.Is(err, fs.ErrNotExist) {
		return backend.Errorf(backend.KindInvalid, err, "%s does not exist", Specfile)
	}
	if err != nil {
		return err
	}
	var operands []string
	for _, p := range pkgs {
		_, dep := m.Dependencies[p.Name]
		_, dev := m.DevDependencies[p.Name]
		if !dep && !dev {
			return backend.Errorf(backend.KindInvalid, nil, "%s is not in %s", p.Name, Specfile)
		}
		operands = append(operands, p.Name)
	}
	return classify(run.Run(ctx, b.npm([]string{"uninstall", "--no-audit", "--no-fund"}, operands...)))
}

// Install implements backend.Backend: npm ci when there is a lockfile,
// else npm install.
func (b *Backend) Install(ctx context.Context, run backend.Runner) error {
	if !backend.Exists(filepath.Join(b.cfg.Workspace, Specfile)) {
		return backend.Errorf(backend.KindInvalid, nil, "nothing to install: %s does not exist", Specfile)
	}
	sub := "install"
	if backend.Exists(filepath.Join(b.cfg.Workspace, Lockfile)) {
		sub = "ci"
	}
	return classify(run.Run(ctx, b.npm([]string{sub, "--no-audit", "--no-fund"})))
}

// Failure patterns in npm's output.
var (
	unreachablePattern = regexp.MustCompile(`ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ESOCKETTIMEDOUT|network request to .* failed|request to .* failed, reason`)
	notFoundPattern    = regexp.MustCompile(`\bE404\b|404 Not Found`)
	noVersionPattern   = regexp.MustCompile(`\bETARGET\b|No matching version found`)
	integrityPattern   = regexp.MustCompile(`\bEINTEGRITY\b`)
)

// classify turns an npm failure into the reason the client sees.
func classify(err error) error {
	var ee *backend.ExitError
	if !errors.As(err, &ee) || backend.Stopped(err) {
		return err
	}
	out := ee.Output
	switch {
	case unreachablePattern.MatchString(out):
		return fmt.Errorf("%s: %w", ee.Command, backend.Unreachable(registryName, err))
	case notFoundPattern.MatchString(out):
		return backend.Errorf(backend.KindNotFound, err, "%s: not found in %s: %s", ee.Command, registryName, backend.Detail(npmError(backend.Lines(out))))
	case noVersionPattern.MatchString(out):
		return backend.Errorf(backend.KindNotFound, err, "%s: no matching version: %s", ee.Command, backend.Detail(npmError(backend.Lines(out))))
	case integrityPattern.MatchString(out):
		return backend.Errorf(backend.KindFailed, err, "%s: a downloaded package failed its integrity check", ee.Command)
	}
	return backend.Failed(err, npmError)
}

// npmError picks the most telling "npm error" line: the first that is not
// a code, an errno or a pointer to the log.
func npmError(lines []string) string {
	for _, line := range lines {
		rest, ok := strings.CutPrefix(line, "npm error ")
		if !ok {
			rest, ok = strings.CutPrefix(line, "npm ERR! ")
		}
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		switch {
		case rest == "", strings.HasPrefix(rest, "code "), strings.HasPrefix(rest, "errno "),
			strings.HasPrefix(rest, "syscall "), strings.HasPrefix(rest, "A complete log"),
			strings.HasPrefix(rest, "Log files"), rest == "404":
			continue
		}
		return rest
	}
	return ""
}

// docURL is the registry URL of a package document. A scoped name's
// slash is escaped, as registries expect ("@types%2Fnode").
func docURL(registry, name string, rest ...string) string {
	u := registry + url.PathEscape(name)
	for _, r := range rest {
		u += "/" + url.PathEscape(r)
	}
	return u
}
