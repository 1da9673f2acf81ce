package meta_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/meta"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func readMeta(key string) *api.Command {
	return &api.Command{Body: &api.Command_ReadMeta{ReadMeta: &api.ReadMeta{Key: key}}}
}

func writeMeta(key string, data []byte) *api.Command {
	return &api.Command{Body: &api.Command_WriteMeta{WriteMeta: &api.WriteMeta{Key: key, Data: data}}}
}

func appendMeta(key string, data []byte) *api.Command {
	return &api.Command{Body: &api.Command_AppendMeta{AppendMeta: &api.AppendMeta{Key: key, Data: data}}}
}

// requester sends a command and returns the reply: on channel 0, or on a
// meta channel.
type requester func(t *testing.T, cmd *api.Command) *api.Command

func onChannel0(c *client.Client) requester {
	return func(t *testing.T, cmd *api.Command) *api.Command {
		t.Helper()
		r, err := c.Request0(conmantest.Context(t), cmd)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

func onChannel(t *testing.T, c *client.Client) requester {
	ch, err := c.Open(conmantest.Context(t), meta.Name, "", api.OpenChannel_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	return func(t *testing.T, cmd *api.Command) *api.Command {
		t.Helper()
		r, err := ch.Request(conmantest.Context(t), cmd)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

func wantOK(t *testing.T, r *api.Command) {
	t.Helper()
	if r.GetOk() == nil {
		t.Fatalf("got %v, want ok", r)
	}
}

func wantValue(t *testing.T, r *api.Command, key string, want []byte) {
	t.Helper()
	rm := r.GetReadMeta()
	if rm == nil || rm.Key != key || !rm.Exists || !bytes.Equal(rm.Data, want) {
		t.Fatalf("read %s: got %v, want exists with %q", key, r, want)
	}
}

func TestReadWriteAppend(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ro := d.DialAs(t, auth.Claims{UserID: 9, UserName: "viewer", ReadOnly: true})
	for _, route := range []struct {
		name    string
		rw, ro  requester
		keyBase string
	}{
		{"channel 0", onChannel0(c), onChannel0(ro), "c0"},
		{"meta channel", onChannel(t, c), onChannel(t, ro), "ch"},
	} {
		t.Run(route.name, func(t *testing.T) {
			key := route.keyBase + ".settings"
			r := route.rw(t, readMeta(key))
			if rm := r.GetReadMeta(); rm == nil || rm.Exists || rm.Key != key || len(rm.Data) != 0 {
				t.Fatalf("missing key: %v", r)
			}
			wantOK(t, route.rw(t, writeMeta(key, []byte("v1"))))
			wantValue(t, route.rw(t, readMeta(key)), key, []byte("v1"))
			wantOK(t, route.rw(t, appendMeta(key, []byte("+v2"))))
			wantValue(t, route.ro(t, readMeta(key)), key, []byte("v1+v2"))
			wantOK(t, route.rw(t, appendMeta(route.keyBase+"-log", []byte("first"))))
			wantValue(t, route.rw(t, readMeta(route.keyBase+"-log")), route.keyBase+"-log", []byte("first"))

			// Read-only sessions read, but never change anything.
			for _, cmd := range []*api.Command{writeMeta(key, []byte("x")), appendMeta(key, []byte("x"))} {
				if r := route.ro(t, cmd); !client.IsError(r, "permission denied") {
					t.Fatalf("read-only %v: %v", cmd, r)
				}
			}
			wantValue(t, route.rw(t, readMeta(key)), key, []byte("v1+v2"))

			// Limits.
			for _, tc := range []struct {
				cmd  *api.Command
				want string
			}{
				{readMeta(""), "meta: invalid key: empty"},
				{readMeta("../keys"), `meta: invalid key "../keys"`},
				{writeMeta(".hidden", nil), "must start with a letter or a digit"},
				{writeMeta("a/b", nil), "only letters, digits"},
				{writeMeta("sp ace", nil), "only letters, digits"},
				{writeMeta(strings.Repeat("k", meta.MaxKeyBytes+1), nil), "longer than 128 bytes"},
				{writeMeta(key, make([]byte, meta.DefaultMaxValueBytes+1)), "meta: value too large"},
				{appendMeta(key, make([]byte, meta.DefaultMaxValueBytes-2)), "meta: value too large: the value would be"},
			} {
				if r := route.rw(t, tc.cmd); !client.IsError(r, tc.want) {
					t.Errorf("%.60v: got %.200v, want error %q", tc.cmd, r, tc.want)
				}
			}
			wantValue(t, route.rw(t, readMeta(key)), key, []byte("v1+v2"))
			big := bytes.Repeat([]byte{'b'}, meta.DefaultMaxValueBytes)
			wantOK(t, route.rw(t, writeMeta(key, big)))
			wantValue(t, route.rw(t, readMeta(key)), key, big)
		})
	}
	for i, cl := range []*client.Client{c, ro} {
		for _, v := range cl.Violations() {
			t.Errorf("client %d: %s: %v", i, v.Problem, v.Command)
		}
	}
}

func TestStoreConcurrentAppendsAreAtomic(t *testing.T) {
	t.Parallel()
	s, err := meta.OpenStore(t.TempDir(), 1<<20, 10)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := s.Append("log", []byte(fmt.Sprintf("<%d:%02d>", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	data, ok, err := s.Read("log")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if got := strings.Count(string(data), "<"); got != writers*each || len(data) != writers*each*len("<0:00>") {
		t.Fatalf("%d records in %d bytes, want %d whole ones", got, len(data), writers*each)
	}
	// The key limit counts distinct keys.
	for i := 1; i < 10; i++ {
		if err := s.Write(fmt.Sprintf("k%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Write("one-too-many", nil); !errors.Is(err, meta.ErrTooMany) {
		t.Fatalf("11th key: %v", err)
	}
	if err := s.Write("k1", []byte("rewriting is fine")); err != nil {
		t.Fatal(err)
	}
}

// Crash test: the daemon binary is killed with SIGKILL while a client
// writes and appends as fast as it can. After each restart every value
// must be whole (one that was written, never a mix), every acknowledged
// change must be there, and nothing that was never sent.

const recordSize = 4 << 10

// value is the seq'th value written to the "w" key: a header naming seq
// and the length, then a filler derived from seq, from 1 KiB to 200 KiB.
func value(seq int) []byte {
	n := 1<<10 + (seq*7919)%(200<<10)
	head := fmt.Sprintf("seq=%08d len=%08d;", seq, n)
	return append([]byte(head), bytes.Repeat([]byte{byte('a' + seq%26)}, n-len(head))...)
}

// record is the i'th record appended to the "a" key.
func record(i int) []byte {
	head := fmt.Sprintf("rec=%08d;", i)
	return append([]byte(head), bytes.Repeat([]byte{byte('A' + i%26)}, recordSize-len(head))...)
}

func parseValue(t *testing.T, data []byte) int {
	t.Helper()
	var seq, n int
	if _, err := fmt.Sscanf(string(data[:min(len(data), 27)]), "seq=%08d len=%08d;", &seq, &n); err != nil {
		t.Fatalf("torn value: header %q: %v", data[:min(len(data), 27)], err)
	}
	if !bytes.Equal(data, value(seq)) {
		t.Fatalf("torn value: %d bytes claiming seq %d (want %d bytes)", len(data), seq, len(value(seq)))
	}
	return seq
}

func parseRecords(t *testing.T, data []byte) int {
	t.Helper()
	if len(data)%recordSize != 0 {
		t.Fatalf("torn append: %d bytes is not a whole number of %d-byte records", len(data), recordSize)
	}
	n := len(data) / recordSize
	for i := 0; i < n; i++ {
		if !bytes.Equal(data[i*recordSize:(i+1)*recordSize], record(i)) {
			t.Fatalf("record %d is damaged: %q…", i, data[i*recordSize:i*recordSize+16])
		}
	}
	return n
}

func TestCrashLeavesNoTornValues(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	var (
		lastWritten = -1 // the last value acknowledged
		lastSent    = -1
		appended    = 0 // records acknowledged
		appendsSent = 0
	)
	for round := 0; round < 3; round++ {
		p := conmantest.StartProcess(t, ws)
		c := conmantest.DialURL(t, client.URL(p.Addr, p.Token(t, "ada")), client.Options{})
		ctx := conmantest.Context(t)

		// What survived the last crash.
		if round > 0 {
			r, err := c.Request0(ctx, readMeta("w"))
			if err != nil || !r.GetReadMeta().GetExists() {
				t.Fatalf("round %d: read w: %v %v", round, r, err)
			}
			seq := parseValue(t, r.GetReadMeta().Data)
			if seq < lastWritten || seq > lastSent {
				t.Fatalf("round %d: value %d survived; acknowledged up to %d, sent up to %d", round, seq, lastWritten, lastSent)
			}
			lastWritten, lastSent = seq, seq
			r, err = c.Request0(ctx, readMeta("a"))
			if err != nil {
				t.Fatal(err)
			}
			n := parseRecords(t, r.GetReadMeta().GetData())
			if n < appended || n > appendsSent {
				t.Fatalf("round %d: %d records survived; acknowledged %d, sent %d", round, n, appended, appendsSent)
			}
			appended, appendsSent = n, n
		}

		// Write and append until killed.
		killAfter := 15 + round*10
		acked := make(chan struct{}, 1000)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			for seq := lastSent + 1; ; seq++ {
				lastSent = seq
				r, err := c.Request0(ctx, writeMeta("w", value(seq)))
				if err != nil {
					return
				}
				if r.GetOk() == nil {
					t.Errorf("write %d: %v", seq, r)
					return
				}
				lastWritten = seq
				acked <- struct{}{}
			}
		}()
		ch, err := c.Open(ctx, meta.Name, "", api.OpenChannel_CREATE)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer wg.Done()
			for ; ; appendsSent++ {
				r, err := ch.Request(ctx, appendMeta("a", record(appendsSent)))
				if err != nil {
					return
				}
				if r.GetOk() == nil {
					t.Errorf("append %d: %v", appendsSent, r)
					return
				}
				appended = appendsSent + 1
				acked <- struct{}{}
			}
		}()
		for i := 0; i < killAfter; i++ {
			select {
			case <-acked:
			case <-p.Exited():
				t.Fatalf("daemon exited:\n%s", p.Log())
			}
		}
		p.Signal(syscall.SIGKILL)
		p.Wait(t)
		wg.Wait()
		// A request that was sent but not answered may or may not have
		// landed: the next round accepts either.
		appendsSent++
		c.Close()
		t.Logf("round %d: values acknowledged up to %d, %d records acknowledged", round, lastWritten, appended)
	}
	p := conmantest.StartProcess(t, ws)
	c := conmantest.DialURL(t, client.URL(p.Addr, p.Token(t, "ada")), client.Options{})
	r, err := c.Request0(conmantest.Context(t), readMeta("w"))
	if err != nil {
		t.Fatal(err)
	}
	if seq := parseValue(t, r.GetReadMeta().GetData()); seq < lastWritten {
		t.Fatalf("value %d after the last crash, acknowledged %d", seq, lastWritten)
	}
}
