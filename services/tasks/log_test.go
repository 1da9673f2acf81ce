package tasks_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/conmantest"
)

// checkLines checks that lines are the whole log in order: seqs from 0,
// texts from want, and replayed exactly for the first replayed lines.
func checkLines(t *testing.T, who string, lines []*api.LogLine, want []string, replayed int) {
	t.Helper()
	if len(lines) != len(want) {
		t.Fatalf("%s: %d lines, want %d", who, len(lines), len(want))
	}
	for i, l := range lines {
		if l.Seq != uint64(i) || l.Text != want[i] || l.Replayed != (i < replayed) || l.Time == 0 {
			t.Fatalf("%s: line %d is %v; want seq %d, text %q, replayed %v", who, i, l, i, want[i], i < replayed)
		}
	}
}

// TestLogReplayThenLive: a session that attaches to a running task gets
// the lines so far as history, then the rest live, then the end: every
// line once, in order.
func TestLogReplayThenLive(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	first, second := d.Dial(t), d.Dial(t)
	ch := openTasks(t, first, "")
	release := newGate(t, d.Workspace, "release")
	task := submit(t, ch, "", "sh", "-c", "seq 1 100; "+release.wait()+"; seq 101 200; echo oops >&2")

	// The first session follows from the start and reads up to line 100:
	// by then the log holds exactly 100 lines, and the task waits.
	early := openTasks(t, first, "task:"+task.Id)
	var earlyLines []*api.LogLine
	for len(earlyLines) < 100 {
		earlyLines = append(earlyLines, recv(t, early).GetTaskLog())
	}

	late := openTasks(t, second, "task:"+task.Id)
	release.open(t)
	lateLines, end := followLog(t, late)
	rest, earlyEnd := followLog(t, early)
	earlyLines = append(earlyLines, rest...)

	// stdout and stderr are separate pipes: "oops" may come anywhere
	// after line 100, and the log's order is what every session sees.
	var want []string
	for _, l := range lateLines {
		want = append(want, l.Text)
	}
	checkLines(t, "late session", lateLines, want, 100)
	// The task may have started writing before the early session came.
	checkLines(t, "early session", earlyLines, want, countReplayed(earlyLines))
	var stdout []string
	for i, l := range lateLines {
		switch {
		case l.Stream == api.LogLine_STDOUT:
			stdout = append(stdout, l.Text)
		case l.Stream != api.LogLine_STDERR || l.Text != "oops" || i < 100:
			t.Errorf("line %v", l)
		}
	}
	for i := range 200 {
		if i >= len(stdout) || stdout[i] != strconv.Itoa(i+1) {
			t.Fatalf("stdout lines %q, want 1 to 200", stdout)
		}
	}
	if len(lateLines) != 201 {
		t.Errorf("%d lines, want 201", len(lateLines))
	}
	if end.Status != api.Task_SUCCEEDED || earlyEnd.Status != api.Task_SUCCEEDED {
		t.Errorf("ends: %v %v", end, earlyEnd)
	}

	// Once the task has ended, everything is history.
	after, _ := followLog(t, openTasks(t, d.Dial(t), "task:"+task.Id))
	checkLines(t, "session after the end", after, want, len(want))
	noViolations(t, first, second)
}

// TestLogHandOverUnderLoad: sessions that attach while a task writes as
// fast as it can each get every line exactly once, history first.
func TestLogHandOverUnderLoad(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := openTasks(t, c, "")
	const n = 2000
	task := submit(t, ch, "", "seq", "1", strconv.Itoa(n))
	want := make([]string, n)
	for i := range want {
		want[i] = strconv.Itoa(i + 1)
	}
	// Attach sessions one after another while the output flows; each
	// waits for one line before the next attaches, so they join at
	// different points.
	var results [][]*api.LogLine
	var firsts []*api.LogLine
	var opened []func() ([]*api.LogLine, *api.Task)
	for i := range 3 {
		cl := d.Dial(t)
		follow := openTasks(t, cl, "task:"+task.Id)
		cmd := recv(t, follow)
		line := cmd.GetTaskLog()
		if line == nil {
			// The task ended before this session read anything.
			if cmd.GetTaskEnd() == nil {
				t.Fatalf("session %d: %v", i, cmd)
			}
			firsts = append(firsts, nil)
			opened = append(opened, func() ([]*api.LogLine, *api.Task) { return nil, cmd.GetTaskEnd() })
			continue
		}
		firsts = append(firsts, line)
		opened = append(opened, func() ([]*api.LogLine, *api.Task) { return followLog(t, follow) })
	}
	for i, rest := range opened {
		lines, end := rest()
		if firsts[i] != nil {
			lines = append([]*api.LogLine{firsts[i]}, lines...)
		}
		if end.Status != api.Task_SUCCEEDED {
			t.Errorf("session %d: end %v", i, end)
		}
		results = append(results, lines)
	}
	for i, lines := range results {
		if len(lines) == 0 {
			continue
		}
		replayed := countReplayed(lines)
		t.Logf("session %d: %d lines replayed of %d", i, replayed, len(lines))
		checkLines(t, "session "+strconv.Itoa(i), lines, want, replayed)
	}
}

// TestLogCap: a log is cut at its cap with a marker, the record says so,
// and the end tells how many lines were dropped.
func TestLogCap(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := openTasks(t, c, "")
	// About 2.4 MB of output against the test cap of 256 KiB.
	task := submit(t, ch, "", "sh", "-c", "yes 0123456789012345678901234567890123456789 | head -n 60000")
	lines, end := followLog(t, openTasks(t, c, "task:"+task.Id))
	if !end.LogTruncated || end.Status != api.Task_SUCCEEDED {
		t.Fatalf("end %v", end)
	}
	if len(lines) < 1000 || len(lines) > 10000 {
		t.Fatalf("%d lines kept", len(lines))
	}
	marker, tail := lines[len(lines)-2], lines[len(lines)-1]
	if marker.Stream != api.LogLine_SYSTEM || !strings.HasPrefix(marker.Text, "[log truncated") {
		t.Errorf("marker %v", marker)
	}
	kept := len(lines) - 2
	if tail.Stream != api.LogLine_SYSTEM || tail.Text != "["+strconv.Itoa(60000-kept)+" lines dropped]" {
		t.Errorf("tail %v, want %d lines dropped", tail, 60000-kept)
	}
	noViolations(t, c)
}

// countReplayed counts the replayed lines that start lines.
func countReplayed(lines []*api.LogLine) int {
	n := 0
	for n < len(lines) && lines[n].Replayed {
		n++
	}
	return n
}
