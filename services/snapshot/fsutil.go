package snapshot

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"golang.org/x/sys/unix"
)

// fileStat is the part of a stat(2) result the store compares.
type fileStat struct {
	mode  uint32 // st_mode: type and permission bits
	size  int64
	mtime int64 // ns
	ctime int64 // ns
	ino   uint64
	dev   uint64
}

func (st fileStat) isDir() bool     { return st.mode&unix.S_IFMT == unix.S_IFDIR }
func (st fileStat) isRegular() bool { return st.mode&unix.S_IFMT == unix.S_IFREG }
func (st fileStat) isSymlink() bool { return st.mode&unix.S_IFMT == unix.S_IFLNK }

// perm is st's permission bits, setuid, setgid and sticky included.
func (st fileStat) perm() uint32 { return st.mode & permMask }

// gitMode is the mode git records for st: a symlink, or a regular file
// that is executable when its owner may execute it (as git decides).
func (st fileStat) gitMode() filemode.FileMode {
	switch {
	case st.isSymlink():
		return filemode.Symlink
	case st.isDir():
		return filemode.Dir
	case st.mode&unix.S_IXUSR != 0:
		return filemode.Executable
	default:
		return filemode.Regular
	}
}

// writeFileAtomic replaces path with data through a temporary file in the
// same directory and a rename, so readers see the old or the new content,
// never a mix. With sync the data are durable before the rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode, sync bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// joinPath joins a workspace-relative directory and a name with a slash.
func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// dirOrDot is path as os.Root methods want it and as people read it:
// "." for the root.
func dirOrDot(path string) string {
	if path == "" {
		return "."
	}
	return path
}

// isUnder reports whether path is inside dir (both slash-separated and
// relative; "" is the root, which holds everything).
func isUnder(path, dir string) bool {
	return dir == "" || path == dir || strings.HasPrefix(path, dir+"/")
}

// gitNameCompare orders tree entries as git does: a directory's name
// compares as if it ended in a slash.
func gitNameCompare(a string, aDir bool, b string, bDir bool) int {
	n := min(len(a), len(b))
	if c := strings.Compare(a[:n], b[:n]); c != 0 {
		return c
	}
	next := func(s string, dir bool) int {
		switch {
		case len(s) > n:
			return int(s[n])
		case dir:
			return '/'
		default:
			return 0
		}
	}
	return cmp.Compare(next(a, aDir), next(b, bDir))
}
