package golang

import (
	"strconv"
	"strings"
)

// requirement is one require directive of a go.mod file.
type requirement struct {
	Path     string
	Version  string
	Indirect bool
}

// parseRequires returns the require directives of go.mod text, in order.
// Only the syntax require uses is understood; other directives are
// skipped, and so are lines it cannot read.
func parseRequires(text string) []requirement {
	var out []requirement
	inBlock := false
	for _, raw := range strings.Split(text, "\n") {
		line, comment, _ := strings.Cut(raw, "//")
		fields := strings.Fields(line)
		indirect := strings.TrimSpace(comment) == "indirect" || strings.HasPrefix(strings.TrimSpace(comment), "indirect;")
		if inBlock {
			if len(fields) == 1 && fields[0] == ")" {
				inBlock = false
				continue
			}
			if r, ok := requireFields(fields, indirect); ok {
				out = append(out, r)
			}
			continue
		}
		if len(fields) == 0 || fields[0] != "require" {
			continue
		}
		if len(fields) == 2 && fields[1] == "(" {
			inBlock = true
			continue
		}
		if r, ok := requireFields(fields[1:], indirect); ok {
			out = append(out, r)
		}
	}
	return out
}

func requireFields(fields []string, indirect bool) (requirement, bool) {
	if len(fields) != 2 {
		return requirement{}, false
	}
	path, version := fields[0], fields[1]
	if strings.HasPrefix(path, `"`) || strings.HasPrefix(path, "`") {
		p, err := strconv.Unquote(path)
		if err != nil {
			return requirement{}, false
		}
		path = p
	}
	return requirement{Path: path, Version: version, Indirect: indirect}, true
}

// semver is a parsed semantic version "vMAJOR.MINOR.PATCH[-pre][+build]".
type semver struct {
	nums [3]int
	pre  []string
}

// parseSemver parses v as Go modules write versions (with the "v").
func parseSemver(v string) (semver, bool) {
	rest, ok := strings.CutPrefix(v, "v")
	if !ok {
		return semver{}, false
	}
	rest, _, _ = strings.Cut(rest, "+")
	core, pre, hasPre := strings.Cut(rest, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return semver{}, false
	}
	var s semver
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || (len(p) > 1 && p[0] == '0') {
			return semver{}, false
		}
		s.nums[i] = n
	}
	if hasPre {
		if pre == "" {
			return semver{}, false
		}
		s.pre = strings.Split(pre, ".")
	}
	return s, true
}

// compare orders versions by semver precedence.
func (a semver) compare(b semver) int {
	for i := range a.nums {
		if a.nums[i] != b.nums[i] {
			if a.nums[i] < b.nums[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(a.pre) == 0 && len(b.pre) == 0:
		return 0
	case len(a.pre) == 0:
		return 1
	case len(b.pre) == 0:
		return -1
	}
	for i := 0; i < len(a.pre) && i < len(b.pre); i++ {
		if c := comparePre(a.pre[i], b.pre[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(a.pre) < len(b.pre):
		return -1
	case len(a.pre) > len(b.pre):
		return 1
	}
	return 0
}

// comparePre compares prerelease identifiers: numeric ones numerically and
// below alphanumeric ones, the rest in ASCII order.
func comparePre(x, y string) int {
	nx, errx := strconv.Atoi(x)
	ny, erry := strconv.Atoi(y)
	switch {
	case errx == nil && erry == nil:
		switch {
		case nx < ny:
			return -1
		case nx > ny:
			return 1
		}
		return 0
	case errx == nil:
		return -1
	case erry == nil:
		return 1
	}
	return strings.Compare(x, y)
}

// latestVersion picks from a proxy's version list the highest release, or
// the highest prerelease when there is no release; "" when the list has no
// valid version.
func latestVersion(versions []string) string {
	best, bestPre := "", ""
	var bestV, bestPreV semver
	for _, v := range versions {
		s, ok := parseSemver(v)
		if !ok {
			continue
		}
		if len(s.pre) == 0 {
			if best == "" || s.compare(bestV) > 0 {
				best, bestV = v, s
			}
		} else if bestPre == "" || s.compare(bestPreV) > 0 {
			bestPre, bestPreV = v, s
		}
	}
	if best != "" {
		return best
	}
	return bestPre
}

// escapePath escapes a module path or version for a proxy URL: each upper
// case letter becomes "!" and its lower case.
func escapePath(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('!')
			b.WriteRune(r + ('a' - 'A'))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
