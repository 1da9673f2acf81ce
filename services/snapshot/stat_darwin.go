package snapshot

import (
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

func statFromUnix(st *unix.Stat_t) fileStat {
	return fileStat{
		mode:  uint32(st.Mode),
		size:  st.Size,
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
		ino:   st.Ino,
		dev:   uint64(st.Dev),
	}
}

func statFromInfo(info fs.FileInfo) (fileStat, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStat{}, false
	}
	return fileStat{
		mode:  uint32(st.Mode),
		size:  st.Size,
		mtime: st.Mtimespec.Nano(),
		ctime: st.Ctimespec.Nano(),
		ino:   st.Ino,
		dev:   uint64(st.Dev),
	}, true
}

// syncFS makes everything written durable. Darwin has no syncfs(2); f's own
// fsync is not enough, so sync everything.
func syncFS(*os.File) error {
	syscall.Sync()
	return nil
}
