package exec_test

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman"
	"github.com/conman-dev/conman/conman/conmantest"
)

// rawClient speaks the protocol by hand so that it can stop reading, as a
// frozen tab does.
type rawClient struct{ ws *websocket.Conn }

func dialRaw(t *testing.T, d *conmantest.Daemon) *rawClient {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(d.URL(d.Token(t, conmantest.User)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	r := &rawClient{ws: ws}
	r.until(t, func(c *api.Command) bool { return c.GetContainerState() != nil })
	return r
}

func (r *rawClient) send(t *testing.T, cmd *api.Command) {
	t.Helper()
	b, err := proto.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		t.Fatal(err)
	}
}

func (r *rawClient) until(t *testing.T, match func(*api.Command) bool) *api.Command {
	t.Helper()
	r.ws.SetReadDeadline(time.Now().Add(conmantest.Timeout))
	for {
		_, data, err := r.ws.ReadMessage()
		if err != nil {
			t.Fatalf("raw read: %v", err)
		}
		cmd := new(api.Command)
		if err := proto.Unmarshal(data, cmd); err != nil {
			t.Fatal(err)
		}
		if match(cmd) {
			return cmd
		}
	}
}

// findChild returns the pid of the test process's child whose command
// line contains marker.
func findChild(marker string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, _, ok := procStat(pid); !ok || ppid != os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if bytes.Contains(cmdline, []byte(marker)) {
			return pid
		}
	}
	return 0
}

// written is how many bytes pid has written so far.
func written(pid int) int64 {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

func blockedInPipeWrite(pid int) bool {
	wchan, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/wchan")
	state, _, _, _ := procStat(pid)
	return state == 'S' && strings.Contains(string(wchan), "pipe_write")
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestReaderThatNeverReads: a process writing 200 MB to a session that
// reads nothing is blocked by the full pipe, and the daemon's memory stays
// bounded.
func TestReaderThatNeverReads(t *testing.T) {
	// Not parallel: it measures the heap of the whole test binary.
	d := conmantest.Start(t, func(c *conman.Config) {
		c.WriteWait = time.Minute // keep the stalled socket open while we look
	})
	before := heapInUse()
	r := dialRaw(t, d)
	r.send(t, &api.Command{Ref: "open", Body: &api.Command_OpenChan{OpenChan: &api.OpenChannel{Service: "exec", Action: api.OpenChannel_CREATE}}})
	res := r.until(t, func(c *api.Command) bool { return c.GetOpenChanRes() != nil }).GetOpenChanRes()
	const total = 200_000_000
	marker := strconv.Itoa(total)
	r.send(t, &api.Command{Channel: res.Id, Ref: "flood", Body: &api.Command_Exec{Exec: &api.Exec{Args: []string{"head", "-c", marker, "/dev/zero"}}}})

	var pid int
	waitUntil(t, "the writer to start", func() bool { pid = findChild(marker); return pid != 0 })
	// Stable means blocked in pipe_write with nothing written for a while.
	last, stableSince := int64(-1), time.Now()
	waitUntil(t, "the writer to be blocked", func() bool {
		n := written(pid)
		if n != last || !blockedInPipeWrite(pid) {
			last, stableSince = n, time.Now()
			return false
		}
		return time.Since(stableSince) > 300*time.Millisecond
	})
	if last >= total/4 {
		t.Fatalf("the writer wrote %d of %d bytes to a client that reads nothing", last, total)
	}
	grown := int64(heapInUse()) - int64(before)
	t.Logf("writer blocked after %.1f MB; daemon heap grew by %.1f MB", float64(last)/1e6, float64(grown)/1e6)
	if grown > 48<<20 {
		t.Fatalf("the heap grew by %d bytes", grown)
	}
	// Leaving frees everything: the group is stopped.
	r.ws.Close()
	waitUntil(t, "the writer to be stopped", func() bool { _, _, _, ok := procStat(pid); return !ok })
}
