package snapshot

import (
	"crypto/sha256"
	"encoding/binary"
	"path"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"golang.org/x/sys/unix"
)

// TestDecodeIndexVersion1 checks that an index written before permission
// bits were kept still vouches for its objects, but not for any file's
// mode: every file is read again once.
func TestDecodeIndexVersion1(t *testing.T) {
	t.Parallel()
	blob := plumbing.NewHash("8baef1b4abc478178b004d62031cf7fe6db6f903")
	b := append([]byte(indexMagic), 1)
	b = append(b, make([]byte, 16)...) // store id
	b = binary.AppendUvarint(b, 1)     // one file
	b = appendString(b, "f")
	b = binary.AppendUvarint(b, uint64(filemode.Regular))
	for _, v := range []int64{3, 1e18, 1e18} { // size, mtime, ctime
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, 42) // inode
	b = binary.AppendUvarint(b, 7)  // device
	b = append(b, blob[:]...)
	b = append(b, make([]byte, 32+1)...) // SHA-256, flags
	b = binary.AppendUvarint(b, 0)       // no directories
	sum := sha256.Sum256(b)
	ix, err := decodeIndex(append(b, sum[:]...))
	if err != nil {
		t.Fatal(err)
	}
	e := ix.files["f"]
	if e.blob != blob || e.size != 3 || e.ino != 42 || e.dev != 7 || e.perm != noPerm {
		t.Fatalf("entry = %+v", e)
	}
	if e.sameStat(fileStat{mode: unix.S_IFREG | 0o644, size: 3, mtime: 1e18, ctime: 1e18, ino: 42, dev: 7}) {
		t.Errorf("an entry without permission bits matches a file")
	}
}

func FuzzDecodeIndex(f *testing.F) {
	ix := newIndex([16]byte{1, 2, 3}, 2)
	ix.files["a/b.txt"] = entry{mode: filemode.Regular, perm: 0o640, size: 3, mtime: 1e18, ctime: 1e18, ino: 42, dev: 7, blob: plumbing.NewHash("8baef1b4abc478178b004d62031cf7fe6db6f903")}
	ix.files["link"] = entry{mode: filemode.Symlink, perm: 0o777, size: 5, racy: true}
	ix.files["old"] = entry{mode: filemode.Executable, perm: noPerm}
	ix.dirs[""] = dirRecord{tree: plumbing.NewHash("4b825dc642cb6eb9a060e54bf8d69288fbee4904"), entries: 2}
	ix.dirs["a"] = dirRecord{entries: 1}
	f.Add(ix.encode())
	f.Add(newIndex([16]byte{}, 0).encode())
	f.Add([]byte(indexMagic))
	f.Add([]byte("not an index at all"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := decodeIndex(data)
		if err != nil {
			return
		}
		again, err := decodeIndex(ix.encode())
		if err != nil {
			t.Fatalf("re-encoded index does not decode: %v", err)
		}
		if len(again.files) != len(ix.files) || len(again.dirs) != len(ix.dirs) || again.storeID != ix.storeID {
			t.Fatalf("round trip changed the index")
		}
	})
}

// FuzzCleanRel checks that a client's restore destination always lands
// inside the workspace.
func FuzzCleanRel(f *testing.F) {
	for _, seed := range []string{"", "/", "a/b", "../../etc", "/a/../../b", "a//b/./c/", "..", "a\x00b"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		got, err := cleanRel(rel)
		if err != nil {
			return
		}
		if strings.HasPrefix(got, "/") || got == ".." || strings.HasPrefix(got, "../") || path.Clean("/"+got) != "/"+got && got != "" {
			t.Fatalf("cleanRel(%q) = %q, which may leave the workspace", rel, got)
		}
		for _, part := range strings.Split(got, "/") {
			if got != "" && (part == "" || part == "." || part == "..") {
				t.Fatalf("cleanRel(%q) = %q has component %q", rel, got, part)
			}
		}
	})
}
