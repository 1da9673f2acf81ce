package diag

import (
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
)

// vcr records one session's frames in a ring bounded in frames and bytes.
// RecordFrame is called by the session's read loop and writer at once, so
// the ring has a mutex; frames are copied (the session reuses its
// buffers) and decoded only when read.
type vcr struct {
	uid                            string
	maxEntries, maxBytes, maxFrame int
	now                            func() time.Time

	// mu guards the following.
	mu      sync.Mutex
	entries []vcrEntry // a ring: the oldest at head
	head    int
	count   int
	bytes   int
}

type vcrEntry struct {
	at    time.Time
	in    bool
	frame []byte // nil when the frame was over maxFrame
	size  int
}

func newVCR(uid string, maxEntries, maxBytes, maxFrame int) *vcr {
	return &vcr{uid: uid, maxEntries: maxEntries, maxBytes: maxBytes, maxFrame: maxFrame, now: time.Now, entries: make([]vcrEntry, maxEntries)}
}

// RecordFrame keeps a copy of prefix+body.
func (v *vcr) RecordFrame(in bool, prefix, body []byte) {
	e := vcrEntry{at: v.now(), in: in, size: len(prefix) + len(body)}
	if e.size <= v.maxFrame {
		e.frame = make([]byte, 0, e.size)
		e.frame = append(append(e.frame, prefix...), body...)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for v.count > 0 && (v.count == v.maxEntries || v.bytes+len(e.frame) > v.maxBytes) {
		v.bytes -= len(v.entries[v.head].frame)
		v.entries[v.head] = vcrEntry{}
		v.head = (v.head + 1) % v.maxEntries
		v.count--
	}
	v.entries[(v.head+v.count)%v.maxEntries] = e
	v.count++
	v.bytes += len(e.frame)
}

// log decodes what the ring holds, oldest first.
func (v *vcr) log() *api.VCRLog {
	v.mu.Lock()
	entries := make([]vcrEntry, v.count)
	for i := range entries {
		entries[i] = v.entries[(v.head+i)%v.maxEntries]
	}
	v.mu.Unlock()
	out := &api.VCRLog{Log: make([]*api.VCREntry, 0, len(entries))}
	for _, e := range entries {
		cmd := new(api.Command)
		switch {
		case e.frame == nil:
			cmd.Body = &api.Command_Debug{Debug: &api.Debug{Text: fmt.Sprintf("a frame of %d bytes, not kept", e.size)}}
		default:
			if err := proto.Unmarshal(e.frame, cmd); err != nil {
				cmd = &api.Command{Body: &api.Command_Debug{Debug: &api.Debug{Text: fmt.Sprintf("an undecodable frame of %d bytes", e.size)}}}
			}
		}
		dir := api.VCREntry_OUT
		if e.in {
			dir = api.VCREntry_IN
		}
		out.Log = append(out.Log, &api.VCREntry{Timestamp: uint64(e.at.UnixMilli()), Direction: dir, Command: cmd, Uid: v.uid})
	}
	return out
}
