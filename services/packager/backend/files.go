package backend

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Exists reports whether path names an existing file or directory.
func Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// WriteFile replaces path with data atomically (a temporary file in the
// same directory, synced, then renamed over it), keeping an existing
// file's permission bits.
func WriteFile(path string, data []byte) error {
	perm := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		perm = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// LineFile is a specfile with one entry a line (requirements.txt,
// apt.txt). Edits keep every other line, comments and blank lines
// included, as they are.
type LineFile struct {
	lines []string
	// Key returns the normalised name an entry line declares, or "" for a
	// comment, blank or option line.
	Key func(line string) string
}

// ReadLineFile reads path; a missing file reads as empty.
func ReadLineFile(path string, key func(string) string) (*LineFile, error) {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	f := &LineFile{Key: key}
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	if text != "" {
		f.lines = strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	}
	return f, nil
}

// Has reports whether an entry declares key.
func (f *LineFile) Has(key string) bool {
	for _, line := range f.lines {
		if f.Key(line) == key {
			return true
		}
	}
	return false
}

// Entries returns the entry lines.
func (f *LineFile) Entries() []string {
	var out []string
	for _, line := range f.lines {
		if f.Key(line) != "" {
			out = append(out, line)
		}
	}
	return out
}

// Set makes entry the declaration of key: the first line declaring key is
// replaced (keeping a trailing " # comment" of it), further ones removed;
// when no line declares key, entry is appended.
func (f *LineFile) Set(key, entry string) {
	out := f.lines[:0:0]
	done := false
	for _, line := range f.lines {
		if f.Key(line) != key {
			out = append(out, line)
			continue
		}
		if done {
			continue
		}
		done = true
		if i := strings.Index(line, " #"); i >= 0 {
			for i > 0 && (line[i-1] == ' ' || line[i-1] == '\t') {
				i--
			}
			entry += line[i:]
		}
		out = append(out, entry)
	}
	if !done {
		out = append(out, entry)
	}
	f.lines = out
}

// Remove drops every line declaring key.
func (f *LineFile) Remove(key string) {
	out := f.lines[:0:0]
	for _, line := range f.lines {
		if f.Key(line) != key {
			out = append(out, line)
		}
	}
	f.lines = out
}

// Bytes is the file's new content.
func (f *LineFile) Bytes() []byte {
	if len(f.lines) == 0 {
		return nil
	}
	return []byte(strings.Join(f.lines, "\n") + "\n")
}

// Environ returns base with the variables in set replaced or added
// ("NAME=value" entries).
func Environ(base []string, set ...string) []string {
	out := make([]string, 0, len(base)+len(set))
	names := make(map[string]bool, len(set))
	for _, kv := range set {
		name, _, _ := strings.Cut(kv, "=")
		names[name] = true
	}
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if !names[name] {
			out = append(out, kv)
		}
	}
	return append(out, set...)
}
