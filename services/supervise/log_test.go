package supervise_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/logs/lines"
)

// TestLogReplayThenLive: a session that opens a service's log gets what
// the ring holds as history, then the new lines live, each exactly once.
func TestLogReplayThenLive(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	first, second := d.Dial(t), d.Dial(t)
	ch := openServices(t, first, "")
	release := newGate(d.Workspace, "release")
	early := openServices(t, first, "log:web")
	if cmd := recv(t, early); !strings.HasPrefix(cmd.GetError(), `services: no service "web"`) {
		t.Fatalf("log of an unknown service: %v", cmd)
	}
	enable(t, ch, &api.ServiceSpec{Name: "web", Args: sh("seq 1 50; " + release.wait() + "; seq 51 100; echo oops >&2; exec sleep 600")})
	waitStatus(t, ch, "web", inState(api.ServiceStatus_ACTIVE), nil)

	// This session attaches while the process runs; it reads up to line
	// 50, after which the process waits.
	mid := openServices(t, d.Dial(t), "log:web")
	var midLines []*api.LogLine
	for len(midLines) == 0 || midLines[len(midLines)-1].Text != "50" {
		midLines = append(midLines, recvLog(t, mid))
	}
	late := openServices(t, second, "log:web")
	release.open(t)
	var lateLines []*api.LogLine
	for len(lateLines) < 102 { // started, 1 to 100, oops
		lateLines = append(lateLines, recvLog(t, late))
	}
	for len(midLines) < 102 {
		midLines = append(midLines, recvLog(t, mid))
	}

	for who, got := range map[string][]*api.LogLine{"late": lateLines, "mid": midLines} {
		replayed := 0
		for replayed < len(got) && got[replayed].Replayed {
			replayed++
		}
		if who == "late" && replayed != 51 {
			t.Errorf("late session: %d lines replayed, want 51 (started and 1 to 50)", replayed)
		}
		var stdout []string
		for i, l := range got {
			if l.Seq != uint64(i) || l.Replayed != (i < replayed) || l.Source != "web" || l.Time == 0 {
				t.Fatalf("%s session: line %d is %v", who, i, l)
			}
			if l.Text != lateLines[i].Text {
				t.Fatalf("%s session: line %d is %q, the other session's %q", who, i, l.Text, lateLines[i].Text)
			}
			switch l.Stream {
			case api.LogLine_STDOUT:
				stdout = append(stdout, l.Text)
			case api.LogLine_STDERR:
				if l.Text != "oops" || i < 51 {
					t.Errorf("%s session: stderr line %v", who, l)
				}
			case api.LogLine_SYSTEM:
				if i != 0 || !strings.HasPrefix(l.Text, "started: pid ") {
					t.Errorf("%s session: system line %v", who, l)
				}
			}
		}
		for i := range 100 {
			if i >= len(stdout) || stdout[i] != strconv.Itoa(i+1) {
				t.Fatalf("%s session: stdout %q, want 1 to 100", who, stdout)
			}
		}
	}
	noViolations(t, first, second)
}

// TestLogRing: the ring keeps the latest lines; a session that opens the
// log later gets those, in order, and nothing before.
func TestLogRing(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := openServices(t, c, "")
	enable(t, ch, &api.ServiceSpec{Name: "chatty", Args: sh("seq 1 3000; echo done; exec sleep 600")})
	// Follow until the output is complete (a slow reader may be told it
	// skipped lines: that is fine here).
	first := openServices(t, c, "log:chatty")
	for {
		if recvLog(t, first).Text == "done" {
			break
		}
	}
	late := openServices(t, d.Dial(t), "log:chatty")
	var got []*api.LogLine
	for len(got) == 0 || got[len(got)-1].Text != "done" {
		got = append(got, recvLog(t, late))
	}
	if len(got) != lines.DefaultRingLines {
		t.Fatalf("%d lines, want the ring's %d", len(got), lines.DefaultRingLines)
	}
	firstSeq := got[0].Seq
	for i, l := range got {
		if l.Seq != firstSeq+uint64(i) || !l.Replayed || l.Skipped != 0 {
			t.Fatalf("line %d: %v", i, l)
		}
	}
	// started (seq 0), 1 to 3000 (seq 1 to 3000), done (seq 3001).
	if last := got[len(got)-1]; last.Seq != 3001 || got[0].Text != strconv.Itoa(int(firstSeq)) {
		t.Errorf("first %v, last %v", got[0], last)
	}
	noViolations(t, c)
}
