//go:build linux && (amd64 || arm64)

package workspace

import (
	"os"
	"syscall"
	"unsafe"
)

// renameNoReplace is RENAME_NOREPLACE for renameat2(2).
const renameNoReplace = 0x1

// renameat2 renames oldName in oldDir to newName in newDir, failing with
// EEXIST instead of replacing an existing newName. It reports
// errNoReplaceUnsupported when the kernel or the filesystem lacks the flag.
func renameat2(oldDir *os.File, oldName string, newDir *os.File, newName string) error {
	oldPtr, err := syscall.BytePtrFromString(oldName)
	if err != nil {
		return err
	}
	newPtr, err := syscall.BytePtrFromString(newName)
	if err != nil {
		return err
	}
	_, _, errno := syscall.Syscall6(sysRenameat2,
		oldDir.Fd(), uintptr(unsafe.Pointer(oldPtr)),
		newDir.Fd(), uintptr(unsafe.Pointer(newPtr)),
		renameNoReplace, 0)
	switch errno {
	case 0:
		return nil
	case syscall.ENOSYS, syscall.EINVAL:
		// EINVAL: the filesystem does not support the flag (moving a
		// directory into itself is refused before we get here).
		return errNoReplaceUnsupported
	}
	return errno
}

// fallocKeepSize is FALLOC_FL_KEEP_SIZE: reserve blocks, leave the size.
const fallocKeepSize = 0x1

// reserve asks the filesystem for size bytes of f up front, so a full disk
// shows at the start of an upload. Filesystems that cannot reserve are not
// an error.
func reserve(f *os.File, size int64) error {
	if size <= 0 {
		return nil
	}
	err := syscall.Fallocate(int(f.Fd()), fallocKeepSize, 0, size)
	switch err {
	case nil, syscall.EOPNOTSUPP, syscall.ENOSYS, syscall.EINVAL:
		return nil
	}
	return err
}
