package workspace

import (
	"errors"
	"io/fs"
	"path"
	"strings"
	"syscall"
	"unicode/utf8"
)

// Path limits.
const (
	// MaxPathBytes bounds a path as the caller spells it (Linux's PATH_MAX).
	MaxPathBytes = 4096
	// MaxNameBytes bounds one component (Linux's NAME_MAX).
	MaxNameBytes = 255
	// MaxSymlinks bounds the symbolic links followed while resolving one
	// path (Linux's MAXSYMLINKS).
	MaxSymlinks = 40
)

// checkSyntax refuses what no lookup can make valid.
func checkSyntax(p string) error {
	if !utf8.ValidString(p) {
		return errNotUTF8
	}
	if strings.IndexByte(p, 0) >= 0 {
		return errNUL
	}
	if len(p) > MaxPathBytes {
		return syscall.ENAMETOOLONG
	}
	depth := 0
	for rest := p; rest != ""; {
		var name string
		name, rest, _ = strings.Cut(rest, "/")
		switch {
		case len(name) > MaxNameBytes:
			return syscall.ENAMETOOLONG
		case name == "..":
			// Climbing above the root as spelled is refused whatever the
			// components are, even where links would lead back inside.
			if depth--; depth < 0 {
				return errEscapes
			}
		case name != "" && name != ".":
			depth++
		}
	}
	return nil
}

// pushComponents pushes the components of p onto the stack of names still
// to resolve (the next name is at the end), dropping empty ones and ".".
func pushComponents(stack []string, p string) []string {
	parts := strings.Split(p, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if parts[i] != "" && parts[i] != "." {
			stack = append(stack, parts[i])
		}
	}
	return stack
}

// Resolve returns the canonical workspace-relative path that p names,
// following symbolic links: "." for the root, otherwise slash-separated
// names without ".", ".." or symbolic links. It refuses the paths the
// package documentation lists with an [*Error] (op "resolve").
func (w *FS) Resolve(p string) (string, error) {
	rel, err := w.resolve(p, true)
	return rel, pathErr("resolve", p, err)
}

// ResolveNoFollow is [FS.Resolve] that leaves a symbolic link in the last
// component unfollowed, as lstat, unlink and rename treat it.
func (w *FS) ResolveNoFollow(p string) (string, error) {
	rel, err := w.resolve(p, false)
	return rel, pathErr("resolve", p, err)
}

// resolve walks p inside the root one component at a time, as the kernel
// would, but with every lookup made through the root and every prefix
// checked against the data dir. The errors it returns carry no path.
func (w *FS) resolve(p string, follow bool) (string, error) {
	if err := checkSyntax(p); err != nil {
		return "", err
	}
	pending := pushComponents(nil, p)
	done := make([]string, 0, len(pending))
	links := 0
	missing := false // a component did not exist: the rest cannot be looked up
	for len(pending) > 0 {
		name := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		if name == ".." {
			if missing {
				return "", syscall.ENOENT
			}
			if len(done) == 0 {
				return "", errEscapes
			}
			done = done[:len(done)-1]
			continue
		}
		done = append(done, name)
		rel := strings.Join(done, "/")
		if w.inDataDir(rel) {
			return "", errDataDir
		}
		if missing {
			continue
		}
		last := len(pending) == 0
		fi, err := w.root.Lstat(rel)
		if errors.Is(err, fs.ErrNotExist) {
			missing = true
			continue
		}
		if err != nil {
			return "", bare(err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 && (follow || !last) {
			if links++; links > MaxSymlinks {
				return "", syscall.ELOOP
			}
			target, err := w.root.Readlink(rel)
			if err != nil {
				return "", bare(err)
			}
			done = done[:len(done)-1]
			if path.IsAbs(target) {
				// An absolute link may still name a place inside the
				// workspace; anywhere else is an escape.
				inside, ok := w.hostRel(target)
				if !ok {
					return "", errEscapes
				}
				done, target = done[:0], inside
			}
			if target == "" {
				return "", syscall.ENOENT
			}
			pending = pushComponents(pending, target)
			continue
		}
		if !last && !fi.IsDir() {
			return "", syscall.ENOTDIR
		}
	}
	if len(done) == 0 {
		if w.dataRel == "." {
			return "", errDataDir
		}
		return ".", nil
	}
	return strings.Join(done, "/"), nil
}

// hostRel turns an absolute host path inside the workspace into a
// workspace-relative one.
func (w *FS) hostRel(abs string) (string, bool) {
	abs = path.Clean(abs)
	switch {
	case abs == w.host:
		return ".", true
	case w.host == "/":
		return abs[1:], true
	}
	return strings.CutPrefix(abs, w.host+"/")
}

// inDataDir reports whether the canonical path rel is the data dir or
// inside it.
func (w *FS) inDataDir(rel string) bool {
	switch w.dataRel {
	case "":
		return false
	case ".":
		return true
	}
	return rel == w.dataRel || strings.HasPrefix(rel, w.dataRel+"/")
}

// holdsDataDir reports whether the canonical path rel is the data dir or
// one of its ancestors (removing or moving it would take the data along).
func (w *FS) holdsDataDir(rel string) bool {
	switch w.dataRel {
	case "":
		return false
	case ".":
		return true
	}
	return rel == "." || rel == w.dataRel || strings.HasPrefix(w.dataRel, rel+"/")
}

// split returns the directory and last name of the canonical path rel.
func split(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return ".", rel
	}
	return rel[:i], rel[i+1:]
}

// join joins a canonical directory and a name.
func join(dir, name string) string {
	if dir == "." || dir == "" {
		return name
	}
	return dir + "/" + name
}
