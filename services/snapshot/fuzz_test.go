package snapshot

import (
	"path"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
)

func FuzzDecodeIndex(f *testing.F) {
	ix := newIndex([16]byte{1, 2, 3}, 2)
	ix.files["a/b.txt"] = entry{mode: filemode.Regular, size: 3, mtime: 1e18, ctime: 1e18, ino: 42, dev: 7, blob: plumbing.NewHash("8baef1b4abc478178b004d62031cf7fe6db6f903")}
	ix.files["link"] = entry{mode: filemode.Symlink, size: 5, racy: true}
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
