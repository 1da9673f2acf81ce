package tasks_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/conmantest"
)

func TestStatuses(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := openTasks(t, c, "")

	tests := []struct {
		name       string
		args       []string
		wantStatus api.Task_Status
		wantCode   int32
		wantReason string
	}{
		{"success", []string{"true"}, api.Task_SUCCEEDED, 0, ""},
		{"exit code", []string{"sh", "-c", "exit 3"}, api.Task_FAILED, 3, "exit status 3"},
		{"signal", []string{"sh", "-c", "kill -KILL $$"}, api.Task_FAILED, -1, "signal: killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := submit(t, ch, tt.name, tt.args...)
			if task.User != conmantest.User.UserName || task.Name != tt.name || task.QueuedAt == 0 {
				t.Errorf("queued record %v", task)
			}
			end := waitTask(t, ch, task.Id, ended, nil)
			if end.Status != tt.wantStatus || end.ExitCode != tt.wantCode || end.Reason != tt.wantReason {
				t.Fatalf("ended as %v, want %v, exit code %d, reason %q", end, tt.wantStatus, tt.wantCode, tt.wantReason)
			}
			if end.StartedAt < end.QueuedAt || end.EndedAt < end.StartedAt || end.Pid == 0 {
				t.Errorf("times or pid wrong: %v", end)
			}
		})
	}

	failed := list(t, ch, api.Task_FAILED)
	if len(failed) != 2 || failed[0].Name != "exit code" || failed[1].Name != "signal" {
		t.Errorf("failed tasks: %v", failed)
	}
	if all := list(t, ch); len(all) != 3 {
		t.Errorf("all tasks: %v", all)
	}
	got := request(t, ch, &api.Command{Body: &api.Command_TaskGet{TaskGet: &api.TaskRef{Id: failed[0].Id}}})
	if got.GetTask().GetReason() != "exit status 3" {
		t.Errorf("taskGet: %v", got)
	}

	for _, bad := range []struct {
		args []string
		want string
	}{
		{nil, "tasks: no command given"},
		{[]string{"conman-no-such-command"}, `tasks: exec: "conman-no-such-command": executable file not found in $PATH`},
	} {
		if reply := request(t, ch, submitCmd("", bad.args...)); reply.GetError() != bad.want {
			t.Errorf("submit %q: %v, want error %q", bad.args, reply, bad.want)
		}
	}
	if reply := request(t, ch, &api.Command{Body: &api.Command_TaskGet{TaskGet: &api.TaskRef{Id: "999"}}}); reply.GetError() != `tasks: no task "999"` {
		t.Errorf("taskGet of an unknown id: %v", reply)
	}
	noViolations(t, c)
}

// TestConcurrencyLimit: with the default limit of 2, of 4 tasks never more
// than 2 run, and the others start in order as room frees up.
func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := openTasks(t, c, "")

	var gates []gate
	var ids []string
	for i := range 4 {
		g := newGate(t, d.Workspace, fmt.Sprintf("gate%d", i))
		gates = append(gates, g)
		ids = append(ids, submit(t, ch, "", "sh", "-c", g.wait()).Id)
	}
	runningNow := map[string]bool{}
	maxRunning := 0
	track := func(task *api.Task) {
		switch {
		case task.Status == api.Task_RUNNING:
			runningNow[task.Id] = true
		case ended(task):
			delete(runningNow, task.Id)
		}
		maxRunning = max(maxRunning, len(runningNow))
	}
	waitTask(t, ch, ids[0], running, track)
	waitTask(t, ch, ids[1], running, track)
	for _, task := range list(t, ch) {
		want := api.Task_QUEUED
		if task.Id == ids[0] || task.Id == ids[1] {
			want = api.Task_RUNNING
		}
		if task.Status != want {
			t.Fatalf("task %s is %v, want %v", task.Id, task.Status, want)
		}
	}
	// Each task that ends lets the next one start, in order.
	for i := range 4 {
		gates[i].open(t)
		waitTask(t, ch, ids[i], ended, track)
		if i+2 < 4 {
			waitTask(t, ch, ids[i+2], running, track)
		}
	}
	if maxRunning != 2 {
		t.Errorf("at most %d tasks ran at once, want 2", maxRunning)
	}
	if n := len(list(t, ch, api.Task_SUCCEEDED)); n != 4 {
		t.Errorf("%d tasks succeeded, want 4", n)
	}
	noViolations(t, c)
}

func TestCancel(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := openTasks(t, c, "")
	hold := newGate(t, d.Workspace, "hold")

	// Two tasks fill the slots: one stops on SIGTERM, one ignores it.
	polite := submit(t, ch, "polite", "sh", "-c", "sleep 600 & wait")
	stubborn := submit(t, ch, "stubborn", "sh", "-c", "trap '' TERM; echo ready; "+hold.wait())
	marker := filepath.Join(d.Workspace, "never")
	queued := submit(t, ch, "queued", "sh", "-c", "touch "+marker)

	follow := openTasks(t, c, "task:"+stubborn.Id)
	if line := recv(t, follow).GetTaskLog(); line.GetText() != "ready" {
		t.Fatalf("first line %v, want ready", line)
	}
	politeRec := waitTask(t, ch, polite.Id, running, nil)

	reply := request(t, ch, &api.Command{Body: &api.Command_TaskCancel{TaskCancel: &api.TaskRef{Id: queued.Id}}})
	if got := reply.GetTask(); got.GetStatus() != api.Task_CANCELED || got.Reason != "canceled before it started" || got.ExitCode != -1 {
		t.Fatalf("cancel of a queued task: %v", reply)
	}
	reply = request(t, ch, &api.Command{Body: &api.Command_TaskCancel{TaskCancel: &api.TaskRef{Id: polite.Id}}})
	if got := reply.GetTask(); got.GetStatus() != api.Task_CANCELED || got.Reason != "canceled while it ran (signal: terminated)" || got.ExitCode != -1 {
		t.Fatalf("cancel of a running task: %v", reply)
	}
	// The whole group is gone, the background sleep too.
	waitUntil(t, "the canceled task's group to end", func() bool { return !groupAlive(int(politeRec.Pid)) })

	reply = request(t, ch, &api.Command{Body: &api.Command_TaskCancel{TaskCancel: &api.TaskRef{Id: stubborn.Id}}})
	if got := reply.GetTask(); got.GetStatus() != api.Task_CANCELED || got.Reason != "canceled while it ran (signal: killed)" {
		t.Fatalf("cancel of a task that ignores SIGTERM: %v", reply)
	}
	if _, end := followLog(t, follow); end.Status != api.Task_CANCELED {
		t.Errorf("taskEnd %v", end)
	}
	// Canceling an ended task answers its record.
	reply = request(t, ch, &api.Command{Body: &api.Command_TaskCancel{TaskCancel: &api.TaskRef{Id: polite.Id}}})
	if reply.GetTask().GetStatus() != api.Task_CANCELED {
		t.Errorf("cancel of an ended task: %v", reply)
	}
	// The slots are free, and the canceled queued task never ran.
	last := submit(t, ch, "", "true")
	waitTask(t, ch, last.Id, ended, nil)
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("the canceled task ran: %v", err)
	}
	noViolations(t, c)
}

// groupAlive reports whether any process of group pgid has not exited.
func groupAlive(pgid int) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 2 && fields[2] == strconv.Itoa(pgid) && fields[0] != "Z" && pid > 0 {
			return true
		}
	}
	return false
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	rw := d.Dial(t)
	ro := d.DialAs(t, auth.Claims{UserID: 8, UserName: "viewer", ReadOnly: true})
	rwCh := openTasks(t, rw, "")
	roCh := openTasks(t, ro, "")

	task := submit(t, rwCh, "", "echo", "hello")
	waitTask(t, rwCh, task.Id, ended, nil)

	for _, cmd := range []*api.Command{
		submitCmd("", "true"),
		{Body: &api.Command_TaskCancel{TaskCancel: &api.TaskRef{Id: task.Id}}},
	} {
		if reply := request(t, roCh, cmd); reply.GetError() != "permission denied" {
			t.Errorf("read-only %v: %v, want permission denied", cmd, reply)
		}
	}
	// Reading is allowed: listing, and following a log.
	if tasks := list(t, roCh); len(tasks) != 1 {
		t.Errorf("read-only list: %v", tasks)
	}
	lines, end := followLog(t, openTasks(t, ro, "task:"+task.Id))
	if len(lines) != 1 || lines[0].Text != "hello" || end.Status != api.Task_SUCCEEDED {
		t.Errorf("read-only follow: %v %v", lines, end)
	}
	noViolations(t, rw, ro)
}

func TestUnknownTaskChannel(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := openTasks(t, c, "task:nope")
	if cmd := recv(t, ch); cmd.GetError() != `tasks: no task "nope"` {
		t.Errorf("got %v", cmd)
	}
	noViolations(t, c)
}
