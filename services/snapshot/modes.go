package snapshot

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"golang.org/x/sys/unix"
)

// Git trees keep only whether a file is executable, so a snapshot's commit
// records the rest of the permission bits (mode & 07777) of its files and
// directories, as trailers of its message:
//
//	Conman-Usual-Modes: 0644 0755 0755
//	Conman-Mode: 0600 "etc/secret.key"
//	Conman-Mode: 1777 "tmp"
//
// The usual modes are those of most regular files, executables (files
// whose owner may execute them, 100755 in git) and directories of the
// snapshot, in that order (git's 0644, 0755 and 0755 unless others are
// more common); each entry whose bits differ from its kind's
// usual ones has a Conman-Mode record, its path quoted as by
// strconv.Quote, the records in listing order. A workspace made under a
// restrictive umask (0600 files, say) therefore needs few records too.
// Symlinks have no permission bits worth keeping, and the workspace
// directory itself is not recorded: a restore leaves the target's own.
//
// The exact modes are part of the canonical listing (see listing.go), so
// the snapshot's checksum covers them. Snapshots of format 1 predate the
// records: they restore files as 0644 or 0755, like a git checkout.

// Kinds of entry that have permission bits.
const (
	kindFile = iota // regular, not executable by its owner
	kindExec        // regular, executable by its owner
	kindDir
	kinds
)

const (
	permMask = 0o7777
	// noPerm is a permission no file has (it is not within permMask).
	noPerm = 1 << 16
)

// usualModes are the permission bits an entry of a snapshot has unless a
// record says otherwise, by kind.
type usualModes [kinds]uint32

// gitUsual are git's: what a checkout gives.
var gitUsual = usualModes{kindFile: 0o644, kindExec: 0o755, kindDir: 0o755}

// modeRecord is an entry whose permission bits are not its kind's usual ones.
type modeRecord struct {
	path string
	perm uint32
}

// snapshotModes is what a snapshot's commit records of permission bits.
type snapshotModes struct {
	// exact is false for snapshots of format 1, which recorded none:
	// their listing has git's modes, and a restore leaves the modes of
	// existing directories alone.
	exact   bool
	usual   usualModes
	records []modeRecord // in listing order
}

// gitModeOfKind is the mode a git tree has for an entry of each kind.
var gitModeOfKind = [kinds]filemode.FileMode{kindFile: filemode.Regular, kindExec: filemode.Executable, kindDir: filemode.Dir}

// kindOf is the kind of an entry of git mode m, or -1 for a symlink.
func kindOf(m filemode.FileMode) int {
	switch m {
	case filemode.Regular:
		return kindFile
	case filemode.Executable:
		return kindExec
	case filemode.Dir:
		return kindDir
	}
	return -1
}

// fitsKind reports whether permission bits perm can be those of an entry
// of kind k: git's executable bit follows the owner's.
func fitsKind(k int, perm uint32) bool {
	if perm&^permMask != 0 {
		return false
	}
	switch k {
	case kindFile:
		return perm&unix.S_IXUSR == 0
	case kindExec:
		return perm&unix.S_IXUSR != 0
	}
	return k == kindDir
}

// unixMode is what the listing records for an entry of kind k (-1 for a
// symlink): its type and permission bits as in st_mode.
func unixMode(k int, perm uint32) uint32 {
	switch k {
	case kindFile, kindExec:
		return unix.S_IFREG | perm
	case kindDir:
		return unix.S_IFDIR | perm
	}
	return unix.S_IFLNK
}

// permCounts counts the entries of each kind by permission bits, to find
// the usual ones.
type permCounts [kinds][permMask + 1]int32

func (c *permCounts) usual() usualModes {
	u := gitUsual
	for k := range u {
		for perm, n := range c[k] {
			if n > c[k][u[k]] {
				u[k] = uint32(perm)
			}
		}
	}
	return u
}

func (u usualModes) String() string {
	return fmt.Sprintf("%04o %04o %04o", u[kindFile], u[kindExec], u[kindDir])
}

func parseUsualModes(s string) (usualModes, error) {
	var u usualModes
	fields := strings.Fields(s)
	if len(fields) != kinds {
		return u, fmt.Errorf("want %d modes", kinds)
	}
	for k, f := range fields {
		perm, err := parsePerm(f)
		if err != nil {
			return u, err
		}
		if !fitsKind(k, perm) {
			return u, fmt.Errorf("mode %04o cannot be the usual one of its kind", perm)
		}
		u[k] = perm
	}
	return u, nil
}

func parsePerm(s string) (uint32, error) {
	perm, err := strconv.ParseUint(s, 8, 32)
	if err != nil || len(s) != 4 || perm&^permMask != 0 {
		return 0, fmt.Errorf("bad mode %q", s)
	}
	return uint32(perm), nil
}

func appendModeRecord(b []byte, rec modeRecord) []byte {
	b = append(b, trailerMode...)
	b = append(b, ": "...)
	b = fmt.Appendf(b, "%04o ", rec.perm)
	b = strconv.AppendQuote(b, rec.path)
	return append(b, '\n')
}

func parseModeRecord(s string) (modeRecord, error) {
	permText, quoted, ok := strings.Cut(s, " ")
	if !ok {
		return modeRecord{}, fmt.Errorf("bad record %q", s)
	}
	perm, err := parsePerm(permText)
	if err != nil {
		return modeRecord{}, err
	}
	path, err := strconv.Unquote(quoted)
	if err != nil || !strings.HasPrefix(quoted, `"`) || path == "" {
		return modeRecord{}, fmt.Errorf("bad path in record %q", s)
	}
	return modeRecord{path: path, perm: perm}, nil
}

// osMode converts permission bits to what os.Chmod takes.
func osMode(perm uint32) os.FileMode {
	m := os.FileMode(perm & 0o777)
	if perm&unix.S_ISUID != 0 {
		m |= os.ModeSetuid
	}
	if perm&unix.S_ISGID != 0 {
		m |= os.ModeSetgid
	}
	if perm&unix.S_ISVTX != 0 {
		m |= os.ModeSticky
	}
	return m
}
