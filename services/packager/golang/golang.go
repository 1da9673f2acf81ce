// Package golang is the packager's go backend: go.mod and go.sum managed
// with the go command, module data from a Go module proxy (GOPROXY
// protocol, over https or from a file:// directory).
//
// It changes go.mod only through `go mod init` and `go get`; it never runs
// `go mod tidy`, which would rewrite a project's requirements wholesale.
package golang

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/conman-dev/conman/services/packager/backend"
)

// Name is the language name.
const Name = "go"

// Files of a Go module.
const (
	Specfile = "go.mod"
	Lockfile = "go.sum"
)

// DefaultProxy is GOPROXY when neither the configuration nor the
// environment sets one.
const DefaultProxy = "https://proxy.golang.org,direct"

// publicProxy is the proxy whose modules pkg.go.dev documents.
const publicProxy = "https://proxy.golang.org"

const registryName = "the Go module proxy"

// Config configures a [Backend].
type Config struct {
	// Workspace is the module directory.
	Workspace string
	// Proxy is GOPROXY for lookups and for the go command; empty means the
	// environment's GOPROXY, else DefaultProxy (and the go command's own
	// setting).
	Proxy string
	// Environ is the tools' base environment.
	Environ []string
	// HTTP queries the proxy.
	HTTP *http.Client
}

// Backend implements backend.Backend for Go modules.
type Backend struct {
	cfg   Config
	proxy string // GOPROXY as lookups read it
}

var _ backend.Backend = (*Backend)(nil)

// New returns the backend for cfg.
func New(cfg Config) *Backend {
	proxy := cfg.Proxy
	if proxy == "" {
		proxy = lookupEnv(cfg.Environ, "GOPROXY")
	}
	if proxy == "" {
		proxy = DefaultProxy
	}
	return &Backend{cfg: cfg, proxy: proxy}
}

func lookupEnv(environ []string, name string) string {
	for i := len(environ) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(environ[i], name+"="); ok {
			return v
		}
	}
	return ""
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return Name }

// Files implements backend.Backend.
func (b *Backend) Files() backend.Files {
	return backend.Files{
		Specfiles: []string{Specfile},
		Lockfiles: []string{Lockfile},
		Sources:   []string{"*.go"},
	}
}

// elemPattern is one element of a module path.
var elemPattern = regexp.MustCompile(`^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$`)

// versionPattern is a version query go get takes: a version, a prefix, a
// branch, a commit, latest, upgrade, patch, or a comparison.
var versionPattern = regexp.MustCompile(`^[<>]?=?[A-Za-z0-9][A-Za-z0-9._+/-]*$`)

// checkPath refuses what is not a module path: the first element must hold
// a dot (a domain), no element may begin or end with a dot.
func checkPath(path string) error {
	elems := strings.Split(path, "/")
	if !strings.Contains(elems[0], ".") {
		return backend.BadName(path, "a module path begins with a domain name, such as github.com/")
	}
	for _, e := range elems {
		if !elemPattern.MatchString(e) || strings.HasSuffix(e, ".") {
			return backend.BadName(path, "not a module path")
		}
	}
	return nil
}

// CheckPackage implements backend.Backend.
func (b *Backend) CheckPackage(p backend.Package) error {
	if err := checkPath(p.Name); err != nil {
		return err
	}
	if p.Spec == "" {
		return nil
	}
	if !versionPattern.MatchString(p.Spec) {
		return backend.BadSpec(p.Name, p.Spec, "not a version query")
	}
	if p.Spec == "none" {
		return backend.BadSpec(p.Name, p.Spec, "use remove to drop a module")
	}
	return nil
}

// query is the version query for p: its spec ("1.2.3" read as
// "v1.2.3"), else latest.
func query(p backend.Package) string {
	switch {
	case p.Spec == "":
		return "latest"
	case p.Spec[0] >= '0' && p.Spec[0] <= '9':
		return "v" + p.Spec
	}
	return p.Spec
}

func (b *Backend) goCmd(args ...string) backend.Cmd {
	set := []string{
		// A private repository must fail, not wait for a password.
		"GIT_TERMINAL_PROMPT=0",
	}
	if b.cfg.Proxy != "" {
		set = append(set, "GOPROXY="+b.cfg.Proxy)
	}
	return backend.Cmd{Args: append([]string{"go"}, args...), Dir: b.cfg.Workspace, Env: backend.Environ(b.cfg.Environ, set...)}
}

func (b *Backend) requires() ([]requirement, error) {
	data, err := os.ReadFile(filepath.Join(b.cfg.Workspace, Specfile))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", Specfile, err)
	}
	return parseRequires(string(data)), nil
}

// List implements backend.Backend: the require directives of go.mod,
// indirect ones included (go get marks a module nothing imports yet as
// indirect). The build list beyond go.mod is not listed.
func (b *Backend) List(ctx context.Context) ([]backend.Package, error) {
	reqs, err := b.requires()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]backend.Package, 0, len(reqs))
	for _, r := range reqs {
		out = append(out, backend.Package{Name: r.Path, Spec: r.Version})
	}
	return out, nil
}

// Add implements backend.Backend: go get path@version, after go mod init
// when there is no go.mod.
func (b *Backend) Add(ctx context.Context, run backend.Runner, pkgs []backend.Package) error {
	if !backend.Exists(filepath.Join(b.cfg.Workspace, Specfile)) {
		if err := run.Run(ctx, b.goCmd("mod", "init", moduleName(b.cfg.Workspace))); err != nil {
			return classify(err)
		}
	}
	args := []string{"get", "--"}
	for _, p := range pkgs {
		args = append(args, p.Name+"@"+query(p))
	}
	return classify(run.Run(ctx, b.goCmd(args...)))
}

// Remove implements backend.Backend: go get path@none. Every module must
// be required by go.mod.
func (b *Backend) Remove(ctx context.Context, run backend.Runner, pkgs []backend.Package) error {
	reqs, err := b.requires()
	if errors.Is(err, fs.ErrNotExist) {
		return backend.Errorf(backend.KindInvalid, err, "%s does not exist", Specfile)
	}
	if err != nil {
		return err
	}
	required := map[string]bool{}
	for _, r := range reqs {
		required[r.Path] = true
	}
	args := []string{"get", "--"}
	for _, p := range pkgs {
		if !required[p.Name] {
			return backend.Errorf(backend.KindInvalid, nil, "%s is not in %s", p.Name, Specfile)
		}
		args = append(args, p.Name+"@none")
	}
	return classify(run.Run(ctx, b.goCmd(args...)))
}

// Install implements backend.Backend: go mod download.
func (b *Backend) Install(ctx context.Context, run backend.Runner) error {
	if !backend.Exists(filepath.Join(b.cfg.Workspace, Specfile)) {
		return backend.Errorf(backend.KindInvalid, nil, "nothing to install: %s does not exist", Specfile)
	}
	return classify(run.Run(ctx, b.goCmd("mod", "download")))
}

// moduleName makes a module path for go mod init from the workspace
// directory's name.
func moduleName(workspace string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(filepath.Base(workspace)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-._")
	if name == "" {
		return "workspace"
	}
	return name
}

// Failure patterns in the go command's output.
var (
	unreachablePattern = regexp.MustCompile(`dial tcp|connection refused|no such host|i/o timeout|TLS handshake timeout|network is unreachable|server misbehaving|connection reset by peer`)
	notFoundPattern    = regexp.MustCompile(`404 Not Found|410 Gone|403 Forbidden|not found|unknown revision|no matching versions|invalid version|cannot find module|malformed module path|unrecognized import path|reading file://\S+: no such file or directory`)
)

// classify turns a go command failure into the reason the client sees.
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
		return backend.Errorf(backend.KindNotFound, err, "%s: module or version not found: %s", ee.Command, backend.Detail(goError(backend.Lines(out))))
	}
	return backend.Failed(err, goError)
}

// goError picks the first "go: " line, where the go command says what
// failed.
func goError(lines []string) string {
	for _, line := range lines {
		if rest, ok := strings.CutPrefix(line, "go: "); ok && !strings.HasPrefix(rest, "downloading ") && !strings.HasPrefix(rest, "finding ") {
			return rest
		}
	}
	return ""
}

// proxyBase is the first proxy of the GOPROXY list that lookups can read.
func (b *Backend) proxyBase() (string, error) {
	for _, entry := range strings.FieldsFunc(b.proxy, func(r rune) bool { return r == ',' || r == '|' }) {
		entry = strings.TrimSpace(entry)
		switch entry {
		case "":
			continue
		case "off":
			return "", backend.Errorf(backend.KindDisabled, nil, "module lookups are disabled (GOPROXY=off)")
		case "direct":
			continue
		}
		return strings.TrimSuffix(entry, "/"), nil
	}
	return "", backend.Errorf(backend.KindDisabled, nil, "module lookups need a module proxy, and GOPROXY names none")
}

// notFoundStatus reports a proxy's "no such module or version".
func notFoundStatus(status int) bool {
	return status == http.StatusNotFound || status == http.StatusGone || status == http.StatusForbidden
}

// versionInfo is a proxy's .info document.
type versionInfo struct {
	Version string
	Time    time.Time
	Origin  *struct {
		VCS string
		URL string
	}
}

// get fetches one proxy document of path; found is false for a
// not-found answer.
func (b *Backend) get(ctx context.Context, base, path, rest string) (body []byte, found bool, err error) {
	u := base + "/" + escapePath(path) + "/" + rest
	body, status, err := backend.Fetch(ctx, b.cfg.HTTP, registryName, u, nil)
	switch {
	case err != nil:
		return nil, false, err
	case notFoundStatus(status):
		return nil, false, nil
	case status != http.StatusOK:
		return nil, false, backend.StatusError(registryName, u, status)
	}
	return body, true, nil
}

// Info implements backend.Backend from the proxy: @v/list for the newest
// version (@latest when the list is empty), its .info for the version and
// origin, its .mod for the requirements.
func (b *Backend) Info(ctx context.Context, path string) (backend.Package, error) {
	base, err := b.proxyBase()
	if err != nil {
		return backend.Package{}, fmt.Errorf("info %s: %w", path, err)
	}
	notFound := backend.Errorf(backend.KindNotFound, nil, "module %s not found in %s", path, registryName)
	list, found, err := b.get(ctx, base, path, "@v/list")
	if err != nil {
		return backend.Package{}, fmt.Errorf("info %s: %w", path, err)
	}
	if !found {
		return backend.Package{}, notFound
	}
	var info versionInfo
	version := latestVersion(strings.Fields(string(list)))
	var infoBody []byte
	if version != "" {
		infoBody, found, err = b.get(ctx, base, path, "@v/"+escapePath(version)+".info")
	} else {
		infoBody, found, err = b.get(ctx, base, path, "@latest")
	}
	if err != nil {
		return backend.Package{}, fmt.Errorf("info %s: %w", path, err)
	}
	if !found {
		return backend.Package{}, notFound
	}
	if err := json.Unmarshal(infoBody, &info); err != nil || info.Version == "" {
		return backend.Package{}, backend.Errorf(backend.KindInternal, err, "info %s: %s sent a malformed .info document", path, registryName)
	}
	p := backend.Package{Name: path, Version: info.Version}
	if info.Origin != nil && strings.HasPrefix(info.Origin.URL, "https://") {
		p.Source = strings.TrimSuffix(info.Origin.URL, ".git")
	} else {
		p.Source = repoURL(path)
	}
	p.Homepage = p.Source
	if strings.HasPrefix(p.Source, "https://github.com/") || strings.HasPrefix(p.Source, "https://gitlab.com/") {
		p.BugTracker = p.Source + "/issues"
	}
	if base == publicProxy {
		p.Documentation = "https://pkg.go.dev/" + path + "@" + info.Version
	}
	mod, found, err := b.get(ctx, base, path, "@v/"+escapePath(info.Version)+".mod")
	if err != nil {
		return backend.Package{}, fmt.Errorf("info %s: %w", path, err)
	}
	if found {
		for _, r := range parseRequires(string(mod)) {
			p.Dependencies = append(p.Dependencies, backend.Package{Name: r.Path, Spec: r.Version})
		}
	}
	return p, nil
}

// repoURL guesses the repository of a module on a well-known forge from
// its path.
func repoURL(path string) string {
	elems := strings.Split(path, "/")
	switch elems[0] {
	case "github.com", "gitlab.com", "bitbucket.org", "codeberg.org":
		if len(elems) >= 3 {
			return "https://" + strings.Join(elems[:3], "/")
		}
	}
	return ""
}

// Search implements backend.Backend. There is no search in the module
// proxy protocol: a full module path is looked up, anything else is
// refused with an explanation.
func (b *Backend) Search(ctx context.Context, q string) (backend.SearchResult, error) {
	q = strings.TrimSpace(q)
	if backend.CheckName(q) != nil || checkPath(q) != nil {
		return backend.SearchResult{}, backend.Errorf(backend.KindInvalid, nil,
			"Go module search needs a full module path, such as github.com/google/uuid: the module proxy offers no search")
	}
	res := backend.SearchResult{Note: "exact module path lookup: the module proxy offers no search"}
	p, err := b.Info(ctx, q)
	switch {
	case backend.KindOf(err) == backend.KindNotFound:
		return res, nil
	case err != nil:
		var be *backend.Error
		if errors.As(err, &be) {
			err = be
		}
		return backend.SearchResult{}, fmt.Errorf("search: %w", err)
	}
	res.Packages = []backend.Package{p}
	return res, nil
}
