package backend

import (
	"fmt"
	"strings"
	"unicode"
)

// Bounds of what a client may send.
const (
	MaxNameLen  = 214 // npm's limit, the longest of the backends'
	MaxSpecLen  = 128
	MaxQueryLen = 256
)

// nameMeta are characters no package name of any backend contains and that
// a shell, a glob or an option parser would read specially.
const nameMeta = "`$&|;<>()[]{}*?!'\"\\#%^=,"

// specMeta are characters refused in specs. Version constraints use < > =
// ! ~ ^ * | and commas, so those pass; nothing here reaches a shell, and
// these are refused only because no constraint needs them.
const specMeta = "`$&;()[]{}'\"\\#%"

// CheckName refuses names no backend accepts: empty or overlong names,
// whitespace and control characters, shell and glob metacharacters, a
// leading "-" (an option to the tool), and "." or ".." path elements.
// Backends narrow this further with their own syntax.
func CheckName(name string) error {
	switch {
	case name == "":
		return badName(name, "empty")
	case len(name) > MaxNameLen:
		return badName(name, fmt.Sprintf("longer than %d bytes", MaxNameLen))
	case strings.HasPrefix(name, "-"):
		return badName(name, "it would be read as an option")
	}
	for _, r := range name {
		switch {
		case unicode.IsSpace(r):
			return badName(name, "it contains whitespace")
		case unicode.IsControl(r) || r == unicode.ReplacementChar:
			return badName(name, "it contains a control character")
		case strings.ContainsRune(nameMeta, r):
			return badName(name, fmt.Sprintf("it contains %q", r))
		case r > unicode.MaxASCII:
			return badName(name, "it contains a non-ASCII character")
		}
	}
	if strings.HasPrefix(name, "/") {
		return badName(name, "it is an absolute path")
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == "." || elem == ".." {
			return badName(name, "it contains a "+elem+" path element")
		}
	}
	return nil
}

// CheckSpec refuses version constraints that are overlong, contain
// whitespace, control characters or shell metacharacters, or begin with
// "-". An empty spec is fine.
func CheckSpec(name, spec string) error {
	if spec == "" {
		return nil
	}
	if len(spec) > MaxSpecLen {
		return badSpec(name, spec, fmt.Sprintf("longer than %d bytes", MaxSpecLen))
	}
	if strings.HasPrefix(spec, "-") {
		return badSpec(name, spec, "it would be read as an option")
	}
	for _, r := range spec {
		switch {
		case unicode.IsSpace(r):
			return badSpec(name, spec, "it contains whitespace")
		case unicode.IsControl(r) || r == unicode.ReplacementChar:
			return badSpec(name, spec, "it contains a control character")
		case strings.ContainsRune(specMeta, r):
			return badSpec(name, spec, fmt.Sprintf("it contains %q", r))
		case r > unicode.MaxASCII:
			return badSpec(name, spec, "it contains a non-ASCII character")
		}
	}
	return nil
}

// CheckQuery refuses search queries that are empty, overlong or contain
// control characters.
func CheckQuery(query string) error {
	switch {
	case strings.TrimSpace(query) == "":
		return Errorf(KindInvalid, nil, "empty search query")
	case len(query) > MaxQueryLen:
		return Errorf(KindInvalid, nil, "search query longer than %d bytes", MaxQueryLen)
	}
	for _, r := range query {
		if unicode.IsControl(r) {
			return Errorf(KindInvalid, nil, "search query contains a control character")
		}
	}
	return nil
}

// BadName is the error for a name a backend's syntax refuses.
func BadName(name, why string) error { return badName(name, why) }

// BadSpec is the error for a spec a backend's syntax refuses.
func BadSpec(name, spec, why string) error { return badSpec(name, spec, why) }

func badName(name, why string) error {
	return Errorf(KindInvalid, nil, "invalid package name %q: %s", name, why)
}

func badSpec(name, spec, why string) error {
	return Errorf(KindInvalid, nil, "invalid version spec %q for %s: %s", spec, name, why)
}
