package snapshot

import (
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

func statFromUnix(st *unix.Stat_t) fileStat {
	return fileStat{
		mode:  st.Mode,
		size:  st.Size,
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
		ino:   st.Ino,
		dev:   uint64(st.Dev),
	}
}

// statFromInfo extracts the stat data from what os.Lstat and friends return.
func statFromInfo(info fs.FileInfo) (fileStat, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStat{}, false
	}
	return fileStat{
		mode:  st.Mode,
		size:  st.Size,
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
		ino:   st.Ino,
		dev:   uint64(st.Dev),
	}, true
}

// syncFS makes everything written to the filesystem holding f durable. A
// restore writes many files: one syncfs(2) beats an fsync each.
func syncFS(f *os.File) error {
	return unix.Syncfs(int(f.Fd()))
}
