//go:build !(linux && (amd64 || arm64))

package workspace

import "os"

// renameat2 is not available here: Move falls back to checking for the
// destination before renaming, which a concurrent creator can race.
func renameat2(oldDir *os.File, oldName string, newDir *os.File, newName string) error {
	return errNoReplaceUnsupported
}

// reserve does nothing where fallocate is unknown.
func reserve(f *os.File, size int64) error { return nil }
