package files_test

import "syscall"

// mountTmpfs mounts a tmpfs on dir (root only).
func mountTmpfs(dir string, readOnly bool, data string) error {
	var flags uintptr
	if readOnly {
		flags |= syscall.MS_RDONLY
	}
	return syscall.Mount("tmpfs", dir, "tmpfs", flags, data)
}

func unmount(dir string) error { return syscall.Unmount(dir, 0) }
