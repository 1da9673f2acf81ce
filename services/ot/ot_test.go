package ot_test

import (
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/ot"
)

// TestLink: a fresh channel sends otstatus without linkedFile; otLinkFile
// creates the document (version 1 inserts the file's text; an empty or
// missing file stays at version 0); later sessions get otstatus with
// linkedFile.
func TestLink(t *testing.T) {
	t.Parallel()
	d := startIn(t, "")
	put(t, d.Workspace, "a.txt", "hello 💃\n")
	put(t, d.Workspace, "empty.txt", "")
	ctx := conmantest.Context(t)

	for _, tc := range []struct {
		file    string
		version uint32
		content string
	}{
		{"a.txt", 1, "hello 💃\n"},
		{"empty.txt", 0, ""},
		{"missing/new.txt", 0, ""},
	} {
		t.Run(tc.file, func(t *testing.T) {
			c := d.Dial(t)
			ch := openOT(t, ctx, c, tc.file)
			st := recv(t, ctx, ch).GetOtstatus()
			if st == nil || st.LinkedFile != nil || st.Version != 0 || st.Contents != "" {
				t.Fatalf("fresh channel: got otstatus %v, want an empty one without linkedFile", st)
			}
			res := request(t, ctx, ch, linkCmd(tc.file)).GetOtLinkFileResponse()
			if res == nil || res.Version != tc.version || string(res.LinkedFile.GetContent()) != tc.content || res.LinkedFile.GetPath() != tc.file {
				t.Fatalf("otLinkFile: got %v, want version %d and %q", res, tc.version, tc.content)
			}
			// Linking again answers the same.
			if again := request(t, ctx, ch, linkCmd(tc.file)).GetOtLinkFileResponse(); again.GetVersion() != tc.version {
				t.Fatalf("second otLinkFile: got %v", again)
			}

			other := openOT(t, ctx, d.Dial(t), tc.file)
			st = recv(t, ctx, other).GetOtstatus()
			if st == nil || st.LinkedFile.GetPath() != tc.file || st.Version != tc.version || st.Contents != tc.content {
				t.Fatalf("second session: got otstatus %v", st)
			}
			if tc.version > 0 {
				res := request(t, ctx, other, fetchCmd(1, 1)).GetOtFetchResponse()
				if len(res.GetPackets()) != 1 {
					t.Fatalf("fetch 1..1: got %v", res)
				}
				p := res.Packets[0]
				if p.Version != 1 || p.Crc32 != crc32.ChecksumIEEE([]byte(tc.content)) {
					t.Fatalf("packet 1: got %v", p)
				}
				if op := unwire(p.Ops); len(op) != 1 || op[0].Insert != tc.content {
					t.Fatalf("packet 1: op %v, want an insert of the file", op)
				}
			}
		})
	}
}

// TestLinkRefused: binary files, files that are not UTF-8 and directories
// are answered with an error, and the channel stays usable.
func TestLinkRefused(t *testing.T) {
	t.Parallel()
	d := startIn(t, "")
	put(t, d.Workspace, "bin.dat", "PK\x03\x04\x00\x00binary")
	put(t, d.Workspace, "latin1.txt", "caf\xe9")
	put(t, d.Workspace, "dir/x.txt", "x")
	put(t, d.Workspace, "ok.txt", "fine")
	ctx := conmantest.Context(t)
	for _, tc := range []struct{ file, want string }{
		{"bin.dat", "not a text file"},
		{"latin1.txt", "not a text file"},
		{"dir", "is a directory"},
		{"../outside.txt", "escapes"},
	} {
		ch := openOT(t, ctx, d.Dial(t), tc.file)
		recv(t, ctx, ch)
		if got := mustFail(t, request(t, ctx, ch, linkCmd(tc.file))); !strings.Contains(got, tc.want) {
			t.Errorf("link %s: got %q, want it to say %q", tc.file, got, tc.want)
		}
		if got := mustFail(t, request(t, ctx, ch, otCmd(0, ot.Op{ot.Insert("x")}, 1))); !strings.Contains(got, "otLinkFile") {
			t.Errorf("ot on an unlinked channel: got %q", got)
		}
		if res := request(t, ctx, ch, linkCmd("ok.txt")).GetOtLinkFileResponse(); res.GetVersion() != 1 {
			t.Errorf("link ok.txt after a refusal: got %v", res)
		}
	}
}

// TestEdit: the packet of an op carries both versions, the CRC of the whole
// document, the time, the nonce and the author, reaches every session
// (the author included) and precedes the ok; bad requests are errors that
// leave the document alone; an op that transforms to nothing still takes a
// version.
func TestEdit(t *testing.T) {
	t.Parallel()
	d := startIn(t, "")
	put(t, d.Workspace, "e.txt", "abc")
	ctx := conmantest.Context(t)
	a := openOT(t, ctx, d.DialAs(t, user(1)), "e.txt")
	recv(t, ctx, a)
	request(t, ctx, a, linkCmd("e.txt"))
	b := openOT(t, ctx, d.DialAs(t, user(2)), "e.txt")
	recv(t, ctx, b)

	before := time.Now().Add(-time.Second)
	if err := a.Send(withRef(otCmd(1, ot.Op{ot.Skip(1), ot.Insert("💃")}, 42), "r1")); err != nil {
		t.Fatal(err)
	}
	p := recv(t, ctx, a).GetOt()
	want := "a💃bc"
	if p == nil || p.Version != 2 || p.SpookyVersion != 2 || p.Crc32 != crc32.ChecksumIEEE([]byte(want)) || p.Nonce != 42 || p.UserId != user(1).UserID {
		t.Fatalf("author's packet: %v", p)
	}
	if c := p.Committed.AsTime(); c.Before(before) || c.After(time.Now().Add(time.Second)) {
		t.Fatalf("committed %v", c)
	}
	if ok := recv(t, ctx, a); ok.GetOk() == nil || ok.Ref != "r1" {
		t.Fatalf("after the packet: got %v, want ok r1", ok)
	}
	if pb := recv(t, ctx, b).GetOt(); pb.GetVersion() != 2 || pb.GetNonce() != 42 {
		t.Fatalf("other's packet: %v", pb)
	}

	// Refusals leave the document alone.
	for _, tc := range []struct {
		cmd  *api.Command
		want string
	}{
		{otCmd(3, ot.Op{ot.Insert("x")}, 1), "newer than the document"},
		{otCmd(2, ot.Op{ot.Skip(4), ot.Delete(1)}, 1), "does not fit"},
		{otCmd(1, ot.Op{ot.Skip(3), ot.Insert("x"), ot.Skip(1)}, 1), "does not fit"},
		{&api.Command{Body: &api.Command_Ot{Ot: &api.OTPacket{SpookyVersion: 1, Version: 2}}}, "disagree"},
	} {
		if got := mustFail(t, request(t, ctx, a, tc.cmd)); !strings.Contains(got, tc.want) {
			t.Errorf("%v: got %q, want %q", tc.cmd.Body, got, tc.want)
		}
	}
	st := statusOf(t, d, "e.txt")
	if st.Version != 2 || st.Contents != want {
		t.Fatalf("after refusals: version %d %q", st.Version, st.Contents)
	}

	// Both delete "💃" from version 2: the second transforms to nothing
	// and still takes version 4.
	del := ot.Op{ot.Skip(1), ot.Delete(1)}
	mustOK(t, request(t, ctx, a, otCmd(2, del, 7)))
	mustOK(t, request(t, ctx, b, otCmd(2, del, 8)))
	var got []*api.OTPacket
	for len(got) < 2 {
		if p := recv(t, ctx, b).GetOt(); p != nil {
			got = append(got, p)
		}
	}
	if got[0].Version != 3 || got[1].Version != 4 || len(got[1].Ops) != 0 || got[1].Crc32 != crc32.ChecksumIEEE([]byte("abc")) {
		t.Fatalf("concurrent deletes: %v", got)
	}

	// The version field alone works as the base too.
	r := request(t, ctx, a, &api.Command{Body: &api.Command_Ot{Ot: &api.OTPacket{Version: 4, Ops: wire(ot.Op{ot.Insert(">")})}}})
	mustOK(t, r)
	if st := statusOf(t, d, "e.txt"); st.Version != 5 || st.Contents != ">abc" {
		t.Fatalf("after a version-based op: %d %q", st.Version, st.Contents)
	}
}

func withRef(cmd *api.Command, ref string) *api.Command {
	cmd.Ref = ref
	return cmd
}

// statusOf opens a new session on file and returns its otstatus.
func statusOf(t testing.TB, d *conmantest.Daemon, file string) *api.OTStatus {
	t.Helper()
	ctx := conmantest.Context(t)
	c := d.Dial(t)
	ch := openOT(t, ctx, c, file)
	st := recv(t, ctx, ch).GetOtstatus()
	if st == nil {
		t.Fatal("no otstatus")
	}
	c.Close()
	return st
}

// TestReadOnly: a read-only session follows and fetches, but its ot is
// refused.
func TestReadOnly(t *testing.T) {
	t.Parallel()
	d := startIn(t, "")
	put(t, d.Workspace, "r.txt", "read me")
	ctx := conmantest.Context(t)
	ro := openOT(t, ctx, d.DialAs(t, auth.Claims{UserID: 9, UserName: "viewer", ReadOnly: true}), "r.txt")
	recv(t, ctx, ro)
	if res := request(t, ctx, ro, linkCmd("r.txt")).GetOtLinkFileResponse(); res.GetVersion() != 1 {
		t.Fatalf("read-only link: %v", res)
	}
	if got := mustFail(t, request(t, ctx, ro, otCmd(1, ot.Op{ot.Insert("x")}, 1))); !strings.Contains(got, "permission denied") {
		t.Fatalf("read-only ot: %q", got)
	}
	rw := openOT(t, ctx, d.Dial(t), "r.txt")
	recv(t, ctx, rw)
	mustOK(t, request(t, ctx, rw, otCmd(1, ot.Op{ot.Insert("x")}, 1)))
	if p := recv(t, ctx, ro).GetOt(); p.GetVersion() != 2 {
		t.Fatalf("read-only session: got %v, want version 2", p)
	}
	if res := request(t, ctx, ro, fetchCmd(1, 9)).GetOtFetchResponse(); len(res.GetPackets()) != 2 {
		t.Fatalf("read-only fetch: %v", res)
	}
	mustOK(t, request(t, ctx, ro, flushCmd()))
	if got := onDisk(t, d.Workspace, "r.txt"); got != "xread me" {
		t.Fatalf("on disk: %q", got)
	}
}
