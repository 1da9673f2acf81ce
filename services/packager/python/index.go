package python

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/conman-dev/conman/services/packager/backend"
)

// projectDoc is the part of an index's JSON API answer
// (GET <base>/pypi/<name>/json) the backend reads.
type projectDoc struct {
	Info struct {
		Name              string            `json:"name"`
		Version           string            `json:"version"`
		Summary           string            `json:"summary"`
		HomePage          string            `json:"home_page"`
		DocsURL           string            `json:"docs_url"`
		BugtrackURL       string            `json:"bugtrack_url"`
		ProjectURLs       map[string]string `json:"project_urls"`
		Author            string            `json:"author"`
		AuthorEmail       string            `json:"author_email"`
		Maintainer        string            `json:"maintainer"`
		License           string            `json:"license"`
		LicenseExpression string            `json:"license_expression"`
		Classifiers       []string          `json:"classifiers"`
		RequiresDist      []string          `json:"requires_dist"`
	} `json:"info"`
}

// jsonAPI is the JSON API URL for name: the index URL without its
// trailing /simple, then /pypi/<name>/json.
func (b *Backend) jsonAPI(name string) (string, error) {
	index := b.indexURL()
	if index == "" {
		return "", backend.Errorf(backend.KindDisabled, nil, "package lookups need a package index, and none is configured (CONMAN_PIP_INDEX=off)")
	}
	base := strings.TrimSuffix(strings.TrimSuffix(index, "/"), "/simple")
	return base + "/pypi/" + url.PathEscape(name) + "/json", nil
}

// Info implements backend.Backend from the index's JSON API.
func (b *Backend) Info(ctx context.Context, name string) (backend.Package, error) {
	u, err := b.jsonAPI(name)
	if err != nil {
		return backend.Package{}, fmt.Errorf("info %s: %w", name, err)
	}
	body, status, err := backend.Fetch(ctx, b.cfg.HTTP, registryName, u, http.Header{"Accept": {"application/json"}})
	if err != nil {
		return backend.Package{}, fmt.Errorf("info %s: %w", name, err)
	}
	switch {
	case status == http.StatusNotFound:
		return backend.Package{}, backend.Errorf(backend.KindNotFound, nil, "package %s not found in %s", name, registryName)
	case status != http.StatusOK:
		return backend.Package{}, fmt.Errorf("info %s: %w", name, backend.StatusError(registryName, u, status))
	}
	var doc projectDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return backend.Package{}, backend.Errorf(backend.KindInternal, err, "info %s: %s sent a malformed document: %v", name, registryName, err)
	}
	return doc.pkg(name), nil
}

func (doc *projectDoc) pkg(name string) backend.Package {
	in := doc.Info
	p := backend.Package{
		Name:          in.Name,
		Version:       in.Version,
		Description:   in.Summary,
		Homepage:      in.HomePage,
		Documentation: in.DocsURL,
		BugTracker:    in.BugtrackURL,
		Author:        personName(in.Author, in.AuthorEmail, in.Maintainer),
		License:       licenseOf(in.LicenseExpression, in.License, in.Classifiers),
	}
	if p.Name == "" {
		p.Name = name
	}
	// project_urls labels are free text: match them by what they say.
	labels := make([]string, 0, len(in.ProjectURLs))
	for label := range in.ProjectURLs {
		labels = append(labels, label)
	}
	sort.Strings(labels)
	pick := func(field *string, words ...string) {
		if *field != "" {
			return
		}
		for _, label := range labels {
			l := strings.ToLower(label)
			for _, w := range words {
				if strings.Contains(l, w) {
					*field = in.ProjectURLs[label]
					return
				}
			}
		}
	}
	pick(&p.Homepage, "homepage", "home")
	pick(&p.Documentation, "documentation", "docs")
	pick(&p.Source, "source", "repository", "code", "github", "gitlab")
	pick(&p.BugTracker, "issue", "bug", "tracker")
	for _, req := range in.RequiresDist {
		dep, marker, _ := strings.Cut(req, ";")
		if strings.Contains(marker, "extra") {
			continue // an optional feature's dependency
		}
		if d, ok := parseRequirement(dep); ok {
			p.Dependencies = append(p.Dependencies, d)
		}
	}
	return p
}

// personName is the name of "Name <email>", the author field first.
func personName(author, email, maintainer string) string {
	if author = strings.TrimSpace(author); author != "" {
		return author
	}
	if email != "" {
		name, _, _ := strings.Cut(email, "<")
		if name = strings.Trim(strings.TrimSpace(name), `"`); name != "" {
			return name
		}
		return strings.Trim(strings.TrimSpace(email), "<>")
	}
	return strings.TrimSpace(maintainer)
}

var licenseClassifier = regexp.MustCompile(`^License :: (?:.* :: )?(.+)$`)

// licenseOf prefers the SPDX expression, then a short license field (some
// packages put the whole license text there), then the classifiers.
func licenseOf(expression, field string, classifiers []string) string {
	if expression != "" {
		return expression
	}
	field = strings.TrimSpace(field)
	if field != "" && !strings.Contains(field, "\n") && len(field) <= 80 {
		return field
	}
	var names []string
	for _, c := range classifiers {
		if m := licenseClassifier.FindStringSubmatch(c); m != nil {
			names = append(names, m[1])
		}
	}
	if len(names) > 0 {
		return strings.Join(names, ", ")
	}
	if field != "" {
		first, _, _ := strings.Cut(field, "\n")
		return backend.Detail(first)
	}
	return ""
}

// Search implements backend.Backend. Package indexes serve no search
// (PyPI withdrew its search API), so the query is looked up as an exact
// distribution name.
func (b *Backend) Search(ctx context.Context, query string) (backend.SearchResult, error) {
	query = strings.TrimSpace(query)
	res := backend.SearchResult{Note: "exact-name lookup: the Python package index serves no search"}
	if !namePattern.MatchString(query) {
		return res, nil
	}
	p, err := b.Info(ctx, query)
	switch {
	case backend.KindOf(err) == backend.KindNotFound:
		return res, nil
	case err != nil:
		return backend.SearchResult{}, fmt.Errorf("search: %w", err)
	}
	res.Packages = []backend.Package{p}
	return res, nil
}
