// Package apt is the packager's system-apt backend: Debian packages listed
// in the workspace's apt.txt, one a line, installed with apt-get.
//
// Search and info read the local package lists with apt-cache and work
// always. Installing and removing change the whole system, so they work
// only when the daemon enables them (and runs as root); otherwise they are
// refused before anything runs. The backend never runs apt-get update.
package apt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/conman-dev/conman/services/packager/backend"
)

// Name is the language name.
const Name = "system-apt"

// Specfile lists the project's Debian packages: one name a line,
// optionally "name=version"; "#" starts a comment.
const Specfile = "apt.txt"

const registryName = "the Debian package archive"

// Config configures a [Backend].
type Config struct {
	// Workspace is the project directory.
	Workspace string
	// Enabled allows install and remove.
	Enabled bool
	// Environ is the tools' base environment.
	Environ []string
	// DocDir is where installed packages keep their copyright files
	// (default /usr/share/doc).
	DocDir string
}

// Backend implements backend.Backend for apt.
type Backend struct {
	cfg Config
}

var _ backend.Backend = (*Backend)(nil)

// New returns the backend for cfg.
func New(cfg Config) *Backend {
	if cfg.DocDir == "" {
		cfg.DocDir = "/usr/share/doc"
	}
	return &Backend{cfg: cfg}
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return Name }

// Files implements backend.Backend. System packages are never guessed
// from source files.
func (b *Backend) Files() backend.Files {
	return backend.Files{Specfiles: []string{Specfile}}
}

// namePattern is a Debian package name, optionally with an architecture.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?$`)

// versionPattern is a Debian version.
var versionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+~:-]*$`)

// CheckPackage implements backend.Backend.
func (b *Backend) CheckPackage(p backend.Package) error {
	if !namePattern.MatchString(p.Name) {
		return backend.BadName(p.Name, "not a Debian package name")
	}
	if p.Spec != "" && !versionPattern.MatchString(p.Spec) {
		return backend.BadSpec(p.Name, p.Spec, "not a Debian version")
	}
	return nil
}

func lineKey(line string) string {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return ""
	}
	name, _, _ := strings.Cut(strings.Fields(line)[0], "=")
	return name
}

func (b *Backend) specfile() string { return filepath.Join(b.cfg.Workspace, Specfile) }

func entry(p backend.Package) string {
	if p.Spec != "" {
		return p.Name + "=" + p.Spec
	}
	return p.Name
}

// List implements backend.Backend: apt.txt's entries.
func (b *Backend) List(ctx context.Context) ([]backend.Package, error) {
	f, err := backend.ReadLineFile(b.specfile(), lineKey)
	if err != nil {
		return nil, err
	}
	var out []backend.Package
	for _, line := range f.Entries() {
		name, spec, _ := strings.Cut(strings.Fields(line)[0], "=")
		out = append(out, backend.Package{Name: name, Spec: spec})
	}
	return out, nil
}

func (b *Backend) aptGet(args ...string) backend.Cmd {
	env := backend.Environ(b.cfg.Environ, "DEBIAN_FRONTEND=noninteractive")
	return backend.Cmd{Args: append([]string{"apt-get"}, args...), Dir: b.cfg.Workspace, Env: env}
}

var _ backend.Gate = (*Backend)(nil)

// MutationsAllowed implements backend.Gate.
func (b *Backend) MutationsAllowed() error { return b.enabled() }

func (b *Backend) enabled() error {
	if !b.cfg.Enabled {
		return backend.Errorf(backend.KindDisabled, nil, "installing system packages is disabled (the daemon must run as root with CONMAN_PACKAGER_APT=1)")
	}
	return nil
}

// Add implements backend.Backend: apt-get install, then apt.txt gains a
// line for each package.
func (b *Backend) Add(ctx context.Context, run backend.Runner, pkgs []backend.Package) error {
	if err := b.enabled(); err != nil {
		return err
	}
	f, err := backend.ReadLineFile(b.specfile(), lineKey)
	if err != nil {
		return err
	}
	args := []string{"install", "-y", "--no-install-recommends", "--"}
	for _, p := range pkgs {
		args = append(args, entry(p))
	}
	if err := run.Run(ctx, b.aptGet(args...)); err != nil {
		return classify(err)
	}
	for _, p := range pkgs {
		f.Set(p.Name, entry(p))
	}
	return backend.WriteFile(b.specfile(), f.Bytes())
}

// Remove implements backend.Backend: apt-get remove, then the packages
// leave apt.txt. Every package must be listed there.
func (b *Backend) Remove(ctx context.Context, run backend.Runner, pkgs []backend.Package) error {
	if err := b.enabled(); err != nil {
		return err
	}
	f, err := backend.ReadLineFile(b.specfile(), lineKey)
	if err != nil {
		return err
	}
	args := []string{"remove", "-y", "--"}
	for _, p := range pkgs {
		if !f.Has(p.Name) {
			return backend.Errorf(backend.KindInvalid, nil, "%s is not in %s", p.Name, Specfile)
		}
		args = append(args, p.Name)
	}
	if err := run.Run(ctx, b.aptGet(args...)); err != nil {
		return classify(err)
	}
	for _, p := range pkgs {
		f.Remove(p.Name)
	}
	return backend.WriteFile(b.specfile(), f.Bytes())
}

// Install implements backend.Backend: apt-get install of apt.txt's
// entries.
func (b *Backend) Install(ctx context.Context, run backend.Runner) error {
	if err := b.enabled(); err != nil {
		return err
	}
	pkgs, err := b.List(ctx)
	if err != nil {
		return err
	}
	if len(pkgs) == 0 {
		return backend.Errorf(backend.KindInvalid, nil, "nothing to install: %s lists no package", Specfile)
	}
	args := []string{"install", "-y", "--no-install-recommends", "--"}
	for _, p := range pkgs {
		if err := backend.CheckName(p.Name); err != nil {
			return fmt.Errorf("%s: %w", Specfile, err)
		}
		if err := b.CheckPackage(p); err != nil {
			return fmt.Errorf("%s: %w", Specfile, err)
		}
		args = append(args, entry(p))
	}
	return classify(run.Run(ctx, b.aptGet(args...)))
}

// Failure patterns in apt's output.
var (
	notFoundPattern    = regexp.MustCompile(`Unable to locate package|No packages found|has no installation candidate|Version '[^']*' for '[^']*' was not found`)
	unreachablePattern = regexp.MustCompile(`Temporary failure resolving|Could not connect to|Could not resolve|Failed to fetch`)
	lockPattern        = regexp.MustCompile(`Could not get lock|Unable to acquire the dpkg frontend lock`)
)

func classify(err error) error {
	var ee *backend.ExitError
	if !errors.As(err, &ee) || backend.Stopped(err) {
		return err
	}
	out := ee.Output
	switch {
	case notFoundPattern.MatchString(out):
		return backend.Errorf(backend.KindNotFound, err, "%s: %s", ee.Command, backend.Detail(aptError(backend.Lines(out))))
	case unreachablePattern.MatchString(out):
		return fmt.Errorf("%s: %w", ee.Command, backend.Unreachable(registryName, err))
	case lockPattern.MatchString(out):
		return backend.Errorf(backend.KindFailed, err, "%s: another package manager holds the dpkg lock", ee.Command)
	}
	return backend.Failed(err, aptError)
}

// aptError picks apt's first "E: " line.
func aptError(lines []string) string {
	for _, line := range lines {
		if rest, ok := strings.CutPrefix(line, "E: "); ok {
			return rest
		}
	}
	return ""
}

// Search implements backend.Backend: apt-cache search over names and
// descriptions (every word must match), ranked exact name first, then
// names that begin with the query, then names that contain it, then the
// rest; alphabetically within each rank.
func (b *Backend) Search(ctx context.Context, query string) (backend.SearchResult, error) {
	words := strings.Fields(strings.ToLower(query))
	args := []string{"apt-cache", "search", "--"}
	for _, w := range words {
		args = append(args, regexp.QuoteMeta(w))
	}
	out, err := backend.Output(ctx, backend.Cmd{Args: args, Dir: b.cfg.Workspace, Env: b.cfg.Environ})
	if err != nil {
		return backend.SearchResult{}, fmt.Errorf("search: %w", classify(err))
	}
	type hit struct {
		pkg  backend.Package
		rank int
	}
	q := strings.Join(words, " ")
	var hits []hit
	for _, line := range backend.Lines(out) {
		name, desc, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		rank := 3
		switch {
		case name == q:
			rank = 0
		case strings.HasPrefix(name, q):
			rank = 1
		case strings.Contains(name, q):
			rank = 2
		}
		hits = append(hits, hit{backend.Package{Name: name, Description: desc}, rank})
	}
	sort.SliceStable(hits, func(i, j int) bool {
		if hits[i].rank != hits[j].rank {
			return hits[i].rank < hits[j].rank
		}
		if len(hits[i].pkg.Name) != len(hits[j].pkg.Name) {
			return len(hits[i].pkg.Name) < len(hits[j].pkg.Name)
		}
		return hits[i].pkg.Name < hits[j].pkg.Name
	})
	var res backend.SearchResult
	for i, h := range hits {
		if i == backend.MaxResults {
			break
		}
		res.Packages = append(res.Packages, h.pkg)
	}
	return res, nil
}

// Info implements backend.Backend: the candidate version's record from
// apt-cache show; the license comes from an installed package's
// machine-readable copyright file.
func (b *Backend) Info(ctx context.Context, name string) (backend.Package, error) {
	out, err := backend.Output(ctx, backend.Cmd{
		Args: []string{"apt-cache", "show", "--no-all-versions", "--", name},
		Dir:  b.cfg.Workspace, Env: b.cfg.Environ,
	})
	if err != nil {
		if backend.KindOf(classify(err)) == backend.KindNotFound {
			return backend.Package{}, backend.Errorf(backend.KindNotFound, err, "package %s not found in the package lists", name)
		}
		return backend.Package{}, fmt.Errorf("info %s: %w", name, classify(err))
	}
	fields := parseStanza(out)
	if fields["Package"] == "" {
		return backend.Package{}, backend.Errorf(backend.KindNotFound, nil, "package %s not found in the package lists", name)
	}
	desc := fields["Description"]
	if desc == "" {
		desc = fields["Description-en"]
	}
	desc, _, _ = strings.Cut(desc, "\n")
	p := backend.Package{
		Name:        fields["Package"],
		Version:     fields["Version"],
		Description: desc,
		Homepage:    fields["Homepage"],
		Author:      maintainerName(fields["Maintainer"]),
		License:     b.license(fields["Package"]),
	}
	for _, dep := range splitDepends(fields["Pre-Depends"] + ", " + fields["Depends"]) {
		p.Dependencies = append(p.Dependencies, dep)
	}
	return p, nil
}

// parseStanza reads the first RFC 822-style stanza of apt-cache show's
// output; continuation lines join their field with newlines.
func parseStanza(out string) map[string]string {
	fields := map[string]string{}
	last := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			if len(fields) > 0 {
				break
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last != "" {
				fields[last] += "\n" + strings.TrimSpace(line)
			}
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		last = key
		fields[key] = strings.TrimSpace(value)
	}
	return fields
}

// splitDepends reads a Depends field: each alternative group gives its
// first package, with the version constraint as the spec.
func splitDepends(field string) []backend.Package {
	var out []backend.Package
	for _, group := range strings.Split(field, ",") {
		first, _, _ := strings.Cut(group, "|")
		first = strings.TrimSpace(first)
		if first == "" {
			continue
		}
		name, constraint, _ := strings.Cut(first, "(")
		out = append(out, backend.Package{
			Name: strings.TrimSpace(name),
			Spec: strings.ReplaceAll(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(constraint), ")")), " ", ""),
		})
	}
	return out
}

// maintainerName is the name of "Name <email>".
func maintainerName(m string) string {
	name, _, _ := strings.Cut(m, "<")
	return strings.TrimSpace(name)
}

// license reads the first License field of an installed package's
// machine-readable copyright file, if any.
func (b *Backend) license(pkg string) string {
	data, err := os.ReadFile(filepath.Join(b.cfg.DocDir, pkg, "copyright"))
	if err != nil || !strings.HasPrefix(string(data), "Format:") {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "License:"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}
