package nodejs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/conman-dev/conman/services/packager/backend"
)

// latestDoc is the registry's document for one version of a package
// (GET /<name>/latest). Its fields are package.json's, so most come in
// more than one shape.
type latestDoc struct {
	Name         string            `json:"name"`
	Version      string            `json:"version"`
	Description  string            `json:"description"`
	Homepage     link              `json:"homepage"`
	Repository   link              `json:"repository"`
	Bugs         link              `json:"bugs"`
	Author       person            `json:"author"`
	License      license           `json:"license"`
	Licenses     []license         `json:"licenses"`
	Dependencies map[string]string `json:"dependencies"`
}

// link is a URL given as a string, an object with a url, or a list of
// either (the first counts).
type link string

func (l *link) UnmarshalJSON(data []byte) error {
	var s string
	if json.Unmarshal(data, &s) == nil {
		*l = link(s)
		return nil
	}
	var obj struct {
		URL string `json:"url"`
	}
	if json.Unmarshal(data, &obj) == nil {
		*l = link(obj.URL)
		return nil
	}
	var list []link
	if json.Unmarshal(data, &list) == nil && len(list) > 0 {
		*l = list[0]
	}
	return nil // an unexpected shape is no link, not a broken document
}

// person is "Name <email> (url)" or an object with a name.
type person string

func (p *person) UnmarshalJSON(data []byte) error {
	var s string
	if json.Unmarshal(data, &s) == nil {
		// Keep the name part of "Name <email> (url)".
		if i := strings.IndexAny(s, "<("); i > 0 {
			s = s[:i]
		}
		*p = person(strings.TrimSpace(s))
		return nil
	}
	var obj struct {
		Name     string `json:"name"`
		Username string `json:"username"`
	}
	if json.Unmarshal(data, &obj) == nil {
		*p = person(obj.Name)
		if *p == "" {
			*p = person(obj.Username)
		}
	}
	return nil
}

// license is an SPDX expression or an old-style object with a type.
type license string

func (l *license) UnmarshalJSON(data []byte) error {
	var s string
	if json.Unmarshal(data, &s) == nil {
		*l = license(s)
		return nil
	}
	var obj struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(data, &obj) == nil {
		*l = license(obj.Type)
	}
	return nil
}

// Info implements backend.Backend: the registry's /<name>/latest document.
func (b *Backend) Info(ctx context.Context, name string) (backend.Package, error) {
	u := docURL(b.registry, name, "latest")
	body, status, err := backend.Fetch(ctx, b.cfg.HTTP, registryName, u, jsonHeader)
	if err != nil {
		return backend.Package{}, fmt.Errorf("info %s: %w", name, err)
	}
	switch {
	case status == http.StatusNotFound:
		return backend.Package{}, backend.Errorf(backend.KindNotFound, nil, "package %s not found in %s", name, registryName)
	case status != http.StatusOK:
		return backend.Package{}, fmt.Errorf("info %s: %w", name, backend.StatusError(registryName, u, status))
	}
	var doc latestDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return backend.Package{}, backend.Errorf(backend.KindInternal, err, "info %s: %s sent a malformed document: %v", name, registryName, err)
	}
	return doc.pkg(name), nil
}

var jsonHeader = http.Header{"Accept": {"application/json"}}

func (doc *latestDoc) pkg(name string) backend.Package {
	p := backend.Package{
		Name:        doc.Name,
		Description: doc.Description,
		Version:     doc.Version,
		Homepage:    webURL(string(doc.Homepage)),
		Source:      webURL(string(doc.Repository)),
		BugTracker:  webURL(string(doc.Bugs)),
		Author:      string(doc.Author),
		License:     string(doc.License),
	}
	if p.Name == "" {
		p.Name = name
	}
	if p.License == "" {
		var names []string
		for _, l := range doc.Licenses {
			if l != "" {
				names = append(names, string(l))
			}
		}
		p.License = strings.Join(names, " OR ")
	}
	for dep, spec := range doc.Dependencies {
		p.Dependencies = append(p.Dependencies, backend.Package{Name: dep, Spec: spec})
	}
	sort.Slice(p.Dependencies, func(i, j int) bool { return p.Dependencies[i].Name < p.Dependencies[j].Name })
	return p
}

// shorthandRepo is "user/repo" or "host:user/repo" as package.json allows.
var shorthandRepo = regexp.MustCompile(`^(?:(github|gitlab|bitbucket):)?([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)$`)

var shorthandHosts = map[string]string{"": "github.com", "github": "github.com", "gitlab": "gitlab.com", "bitbucket": "bitbucket.org"}

// webURL turns a repository reference into a browsable URL: git+https,
// git://, ssh and scp-like forms become https, ".git" goes, shorthands
// expand.
func webURL(ref string) string {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return ""
	}
	if m := shorthandRepo.FindStringSubmatch(ref); m != nil {
		return "https://" + shorthandHosts[m[1]] + "/" + strings.TrimSuffix(m[2], ".git")
	}
	ref = strings.TrimPrefix(ref, "git+")
	if rest, ok := strings.CutPrefix(ref, "git@"); ok { // git@host:user/repo
		if host, path, ok := strings.Cut(rest, ":"); ok {
			ref = "https://" + host + "/" + path
		}
	}
	if u, err := url.Parse(ref); err == nil && u.Host != "" {
		switch u.Scheme {
		case "git", "ssh", "git+ssh":
			u.Scheme, u.User = "https", nil
		}
		if u.Scheme == "https" || u.Scheme == "http" {
			u.Path = strings.TrimSuffix(u.Path, ".git")
			return u.String()
		}
	}
	return ref
}

// searchResponse is the registry's /-/v1/search answer.
type searchResponse struct {
	Objects []struct {
		Package struct {
			Name        string  `json:"name"`
			Version     string  `json:"version"`
			Description string  `json:"description"`
			License     license `json:"license"`
			Author      person  `json:"author"`
			Publisher   person  `json:"publisher"`
			Links       struct {
				Homepage   link `json:"homepage"`
				Repository link `json:"repository"`
				Bugs       link `json:"bugs"`
			} `json:"links"`
		} `json:"package"`
	} `json:"objects"`
}

// Search implements backend.Backend through the registry's search
// endpoint. A registry that does not serve it (it answers 404, 405 or
// 501), and a search that finds nothing, fall back to looking the query up
// as an exact package name.
func (b *Backend) Search(ctx context.Context, query string) (backend.SearchResult, error) {
	query = strings.TrimSpace(query)
	u := fmt.Sprintf("%s-/v1/search?text=%s&size=%d", b.registry, url.QueryEscape(query), backend.MaxResults)
	body, status, err := backend.Fetch(ctx, b.cfg.HTTP, registryName, u, jsonHeader)
	if err != nil {
		return backend.SearchResult{}, fmt.Errorf("search: %w", err)
	}
	switch status {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return b.exactLookup(ctx, query, "exact-name lookup: the registry serves no search endpoint")
	default:
		return backend.SearchResult{}, fmt.Errorf("search: %w", backend.StatusError(registryName, u, status))
	}
	var resp searchResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return backend.SearchResult{}, backend.Errorf(backend.KindInternal, err, "search: %s sent a malformed answer: %v", registryName, err)
	}
	var out []backend.Package
	for _, o := range resp.Objects {
		p := o.Package
		author := p.Author
		if author == "" {
			author = p.Publisher
		}
		out = append(out, backend.Package{
			Name:        p.Name,
			Version:     p.Version,
			Description: p.Description,
			License:     string(p.License),
			Author:      string(author),
			Homepage:    webURL(string(p.Links.Homepage)),
			Source:      webURL(string(p.Links.Repository)),
			BugTracker:  webURL(string(p.Links.Bugs)),
		})
	}
	if len(out) == 0 {
		return b.exactLookup(ctx, query, "exact-name lookup: the registry search found nothing")
	}
	// The registry ranks by relevance and popularity; an exact name match
	// still comes first.
	for i, p := range out {
		if strings.EqualFold(p.Name, query) && i > 0 {
			copy(out[1:i+1], out[:i])
			out[0] = p
			break
		}
	}
	if len(out) > backend.MaxResults {
		out = out[:backend.MaxResults]
	}
	return backend.SearchResult{Packages: out}, nil
}

// exactLookup returns the package named query (tried as given and in lower
// case), or nothing.
func (b *Backend) exactLookup(ctx context.Context, query, note string) (backend.SearchResult, error) {
	res := backend.SearchResult{Note: note}
	tried := map[string]bool{}
	for _, name := range []string{query, strings.ToLower(query)} {
		if tried[name] || backend.CheckName(name) != nil || !namePattern.MatchString(name) {
			continue
		}
		tried[name] = true
		p, err := b.Info(ctx, name)
		if backend.KindOf(err) == backend.KindNotFound {
			continue
		}
		if err != nil {
			return backend.SearchResult{}, fmt.Errorf("search: %w", unwrapInfo(err))
		}
		res.Packages = append(res.Packages, p)
		break
	}
	return res, nil
}

// unwrapInfo drops Info's "info <name>: " prefix from err when it has one
// beneath it (an *backend.Error), so a search failure reads as one.
func unwrapInfo(err error) error {
	var be *backend.Error
	if errors.As(err, &be) {
		return be
	}
	return err
}
