package fsevents_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/services/fsevents"
)

// maxQueuedEvents is the kernel's inotify queue length.
func maxQueuedEvents(t testing.TB) int {
	t.Helper()
	raw, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Skipf("no inotify queue length to size the storm: %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// listing is a directory as a client keeps it: name → is a directory.
type listing map[string]bool

func (e *env) readdir(p string) listing {
	e.t.Helper()
	reply, err := e.files.Request(e.ctx, &api.Command{Body: &api.Command_Readdir{Readdir: file(p)}})
	if err != nil {
		e.t.Fatal(err)
	}
	if reply.GetFiles() == nil {
		e.t.Fatalf("readdir %s: %v", p, reply)
	}
	l := listing{}
	for _, f := range reply.GetFiles().GetFiles() {
		l[p+"/"+f.Path] = f.Type == api.File_DIRECTORY
	}
	return l
}

// apply applies one event to l the way a client does, and reports what
// does not fit the listing.
func (l listing) apply(ev *api.FileEvent) error {
	p := ev.GetFile().GetPath()
	dir := ev.GetFile().GetType() == api.File_DIRECTORY
	_, exists := l[p]
	switch ev.Op {
	case api.FileEvent_Create:
		l[p] = dir
	case api.FileEvent_Remove:
		if !exists {
			return fmt.Errorf("remove of %s, which is not listed", p)
		}
		delete(l, p)
	case api.FileEvent_Move:
		if !exists {
			return fmt.Errorf("move of %s, which is not listed", p)
		}
		delete(l, p)
		l[ev.GetDest().GetPath()] = dir
	case api.FileEvent_Modify:
		if !exists {
			return fmt.Errorf("modify of %s, which is not listed", p)
		}
	}
	return nil
}

// TestOverflowRescan makes the kernel's event queue overflow and checks
// that the events received still take the listing from before the storm
// to the listing after it. It runs alone: it holds every event loop.
func TestOverflowRescan(t *testing.T) {
	maxQueued := maxQueuedEvents(t)
	e := newEnv(t)
	e.mkdirs("storm/keepdir")
	for i := range 100 {
		e.put(fmt.Sprintf("storm/keep-%d", i), "k")
		e.put(fmt.Sprintf("storm/old-%d", i), "o")
	}
	w := e.watch("storm")
	state := e.readdir("storm")

	resume := fsevents.PauseEvents()
	// One event per creation, one per removal: half again more events than
	// the queue holds, whatever the loop took before it stopped.
	storm := maxQueued + maxQueued/8
	for i := range storm {
		name := e.host(fmt.Sprintf("storm/s-%d", i))
		f, err := os.Create(name)
		if err != nil {
			resume()
			t.Fatal(err)
		}
		f.Close()
		if i%2 == 0 {
			os.Remove(name)
		}
	}
	for i := range 100 {
		os.Remove(e.host(fmt.Sprintf("storm/old-%d", i)))
		switch i % 3 {
		case 0:
			os.Rename(e.host(fmt.Sprintf("storm/keep-%d", i)), e.host(fmt.Sprintf("storm/ren-%d", i)))
		case 1:
			os.WriteFile(e.host(fmt.Sprintf("storm/keep-%d", i)), []byte("changed"), 0o644)
		}
	}
	os.Rename(e.host("storm/keepdir"), e.host("storm/movedir"))
	resume()

	// Everything before the sentinel is reported before it.
	e.put("storm/zz-sentinel", "")
	received := 0
	for {
		cmd, err := w.ch.Recv(e.ctx)
		if err != nil {
			t.Fatalf("after %d events: %v", received, err)
		}
		ev := cmd.GetFileEvent()
		if ev == nil {
			t.Fatalf("got %v", cmd)
		}
		received++
		if err := state.apply(ev); err != nil {
			t.Errorf("event %d (%s): %v", received, format(ev), err)
		}
		if ev.Op == api.FileEvent_Create && ev.File.Path == "storm/zz-sentinel" {
			break
		}
	}
	final := e.readdir("storm")
	for p, dir := range final {
		if got, ok := state[p]; !ok || got != dir {
			t.Errorf("%s (dir %v) is listed, the events say %v (present %v)", p, dir, got, ok)
		}
	}
	for p := range state {
		if _, ok := final[p]; !ok {
			t.Errorf("the events leave %s, which is not listed", p)
		}
	}
	if got := metric(t, e.d, "conman_fsevents_overflows_total"); got < 1 {
		t.Errorf("overflows = %v: the storm of %d changes did not overflow a queue of %d", got, storm*3/2, maxQueued)
	}
	t.Logf("%d changes (queue %d), %d events received, %d names listed", storm*3/2+300, maxQueued, received, len(final))
}
