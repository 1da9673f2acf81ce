// Package backend defines what a language package manager must provide to
// the packager service, and the pieces every implementation shares: the
// package record, classified errors, name checks, running tools in their
// own process group with their output streamed, registry HTTP fetches and
// line-oriented specfile edits.
//
// It knows neither the wire protocol nor the channel machinery: it imports
// neither api nor channels. Implementations (nodejs, golang, python, apt)
// live in sibling packages and never import each other.
package backend

import (
	"context"
)

// A Backend is one language's package manager working on one workspace.
//
// Reads (Search, Info, List) may be called concurrently with each other
// and with one mutation. Mutations (Add, Remove, Install) are called one at
// a time per workspace by the service; they run their tools through the
// [Runner] they are given, which streams the tools' output to the client.
//
// Every name and spec a Backend receives has passed [CheckName] (and
// [CheckSpec]) and the Backend's own CheckPackage.
type Backend interface {
	// Name is the language's name as .replit's [packager] language spells
	// it ("nodejs-npm", "go", "python-pip", "system-apt").
	Name() string
	// Files describes the files by which the language is detected.
	Files() Files
	// CheckPackage refuses names and specs the package manager would not
	// take as a plain registry package (a path, a URL, an option).
	CheckPackage(p Package) error

	// Search returns registry packages matching query, best match first.
	Search(ctx context.Context, query string) (SearchResult, error)
	// Info returns everything the registry knows about the latest version
	// of the named package.
	Info(ctx context.Context, name string) (Package, error)
	// List returns the packages the specfile lists, with their specs.
	List(ctx context.Context) ([]Package, error)

	// Add installs pkgs and records them in the specfile (creating it when
	// missing).
	Add(ctx context.Context, run Runner, pkgs []Package) error
	// Remove uninstalls pkgs and drops them from the specfile.
	Remove(ctx context.Context, run Runner, pkgs []Package) error
	// Install installs what the specfile lists.
	Install(ctx context.Context, run Runner) error
}

// A Gate is implemented by backends that may refuse every mutation
// outright (system packages when the daemon does not allow them). The
// service asks before queueing one, so a refused mutation runs nothing.
type Gate interface {
	MutationsAllowed() error
}

// Files names the files that identify a language in a workspace, relative
// to its root.
type Files struct {
	// Specfiles list the project's dependencies; the first is the one Add
	// writes.
	Specfiles []string
	// Lockfiles pin what the specfiles resolve to.
	Lockfiles []string
	// Sources are glob patterns (path.Match) of source file names.
	Sources []string
}

// Package is one package as a registry or a specfile describes it; the
// fields mirror the wire's api.Package.
type Package struct {
	Name string
	// Spec is a version constraint ("^1.2.0", ">=2,<3", "v1.6.0"); empty
	// means the latest.
	Spec string

	Description   string
	Version       string
	Homepage      string
	Documentation string
	Source        string
	BugTracker    string
	Author        string
	License       string
	// Dependencies of this version, by name and constraint.
	Dependencies []Package
}

// SearchResult is what Search found.
type SearchResult struct {
	Packages []Package
	// Note says how the result came about when that is not a plain
	// registry search ("exact-name lookup: the registry serves no search
	// endpoint"); the service logs it.
	Note string
}

// MaxResults bounds a search's results.
const MaxResults = 20
