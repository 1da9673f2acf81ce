//go:build unix

package workspace

import (
	"io/fs"
	"os"
	"syscall"
)

// inode returns fi's file serial number.
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}

// keepOwner gives f the owner of old, when the daemon runs as root and they
// differ (an editor's atomic save does the same); failures are ignored, the
// content matters more than the owner.
func keepOwner(f *os.File, old fs.FileInfo) {
	st, ok := old.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return
	}
	if int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid() {
		f.Chown(int(st.Uid), int(st.Gid))
	}
}

// openReadFlags opens without blocking on a FIFO that has no writer; read
// refuses anything but regular files once it is open.
const openReadFlags = os.O_RDONLY | syscall.O_NONBLOCK
