//go:build !unix

package workspace

import (
	"io/fs"
	"os"
)

func inode(fs.FileInfo) uint64 { return 0 }

func keepOwner(*os.File, fs.FileInfo) {}

const openReadFlags = os.O_RDONLY
