package ot

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/ot"
)

// FuzzReplay: any bytes as a log load without panicking; what loads is
// consistent (the text's CRC is the last packet's).
func FuzzReplay(f *testing.F) {
	log := appendHeader(nil, "f.txt")
	text := ""
	for i, s := range []string{"hello", " 💃", "\n"} {
		var op ot.Op
		if i > 0 {
			op = append(op, ot.Skip(utf8.RuneCountInString(text)))
		}
		op = append(op, ot.Insert(s))
		text += s
		log, _ = appendPacket(log, &api.OTPacket{Version: uint32(i + 1), Ops: toWire(op), Crc32: crcOf([]byte(text))})
		log = appendDiskMark(log, diskMark{version: uint32(i + 1), crc: crcOf([]byte(text)), exists: true})
	}
	f.Add(log)
	f.Add(log[:len(log)-3])
	f.Add(append(append([]byte(nil), log...), 1, 0, 0, 0))
	f.Add(appendHeader(nil, "other.txt"))
	f.Add([]byte{})
	svc := &Service{opts: Options{}, log: slog.New(slog.DiscardHandler), metrics: newMetrics()}
	svc.opts.setDefaults()
	svc.opts.Window = 2
	// Cutting a torn tail syncs the log: on a memory file system when
	// there is one, so that fuzzing is not paced by the disk.
	dir := f.TempDir()
	if shm, err := os.MkdirTemp("/dev/shm", "conman-fuzz-"); err == nil {
		dir = shm
		f.Cleanup(func() { os.RemoveAll(shm) })
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "f.log")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		file, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		d := &document{svc: svc, rel: "f.txt", logPath: path}
		if _, err := d.replay(file); err != nil {
			return
		}
		if int(d.latest) != len(d.versions)-1 || d.text.CRC32() != d.versions[d.latest].crc || d.pub.String() != d.text.String() {
			t.Fatalf("inconsistent load: version %d of %d", d.latest, len(d.versions))
		}
		for v := d.recentFirst; v <= d.latest; v++ {
			if d.recent[v-d.recentFirst].pkt.Version != v {
				t.Fatalf("recent packet %d is version %d", v, d.recent[v-d.recentFirst].pkt.Version)
			}
		}
	})
}

// FuzzDiff: the diff of two texts turns the first into the second.
func FuzzDiff(f *testing.F) {
	f.Add("one\ntwo\nthree\n", "one\n2\nthree\nfour\n")
	f.Add("a💃c", "a🤖c")
	f.Add("", "x")
	f.Add("x\ny\nz\n", "y\nz\nx\n")
	f.Fuzz(func(t *testing.T, old, new string) {
		if !utf8.ValidString(old) || !utf8.ValidString(new) {
			return
		}
		op := diff(old, new)
		if got, err := ot.Apply(old, op); err != nil || got != new {
			t.Fatalf("diff(%q, %q) = %v gives %q, %v", old, new, op, got, err)
		}
	})
}
