package tasks_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/tasks"
)

// testKillGrace keeps tests that kill tasks short.
const testKillGrace = 300 * time.Millisecond

func TestMain(m *testing.M) {
	// Every in-process daemon of this package gets these.
	tasks.Configure(tasks.Options{KillGrace: testKillGrace, LogBytes: 256 << 10})
	goleak.VerifyTestMain(m)
}

func submitCmd(name string, args ...string) *api.Command {
	return &api.Command{Body: &api.Command_TaskSubmit{TaskSubmit: &api.TaskSubmit{Name: name, Args: args}}}
}

func openTasks(t *testing.T, c *client.Client, name string) *client.Channel {
	t.Helper()
	action := api.OpenChannel_CREATE
	if name != "" {
		action = api.OpenChannel_ATTACH_OR_CREATE
	}
	ch, err := c.Open(conmantest.Context(t), tasks.Name, name, action)
	if err != nil {
		t.Fatalf("open tasks %q: %v", name, err)
	}
	return ch
}

func request(t *testing.T, ch *client.Channel, cmd *api.Command) *api.Command {
	t.Helper()
	reply, err := ch.Request(conmantest.Context(t), cmd)
	if err != nil {
		t.Fatalf("request %v: %v", cmd, err)
	}
	return reply
}

// submit queues a task and returns its record.
func submit(t *testing.T, ch *client.Channel, name string, args ...string) *api.Task {
	t.Helper()
	reply := request(t, ch, submitCmd(name, args...))
	task := reply.GetTask()
	if task == nil || task.Status != api.Task_QUEUED || task.Id == "" {
		t.Fatalf("submit %q: reply %v", args, reply)
	}
	return task
}

func list(t *testing.T, ch *client.Channel, statuses ...api.Task_Status) []*api.Task {
	t.Helper()
	reply := request(t, ch, &api.Command{Body: &api.Command_TaskList{TaskList: &api.TaskList{Statuses: statuses}}})
	res := reply.GetTaskListRes()
	if res == nil {
		t.Fatalf("taskList: reply %v", reply)
	}
	return res.Tasks
}

func recv(t *testing.T, ch *client.Channel) *api.Command {
	t.Helper()
	cmd, err := ch.Recv(conmantest.Context(t))
	if err != nil {
		t.Fatalf("recv on channel %d: %v", ch.ID(), err)
	}
	return cmd
}

// history keeps every status change each test channel has received, so
// that waiting for one task never loses another's change.
var history = struct {
	sync.Mutex
	seen map[*client.Channel][]*api.Task
}{seen: map[*client.Channel][]*api.Task{}}

// waitTask returns the first record of task id that satisfies cond among
// the status changes ch has received, reading more as needed. Every record
// newly read is passed to seen, if set, in order.
func waitTask(t *testing.T, ch *client.Channel, id string, cond func(*api.Task) bool, seen func(*api.Task)) *api.Task {
	t.Helper()
	history.Lock()
	for _, task := range history.seen[ch] {
		if task.Id == id && cond(task) {
			history.Unlock()
			return task
		}
	}
	history.Unlock()
	for {
		cmd := recv(t, ch)
		task := cmd.GetTask()
		if task == nil {
			t.Fatalf("unexpected message %v", cmd)
		}
		history.Lock()
		history.seen[ch] = append(history.seen[ch], task)
		history.Unlock()
		if seen != nil {
			seen(task)
		}
		if task.Id == id && cond(task) {
			return task
		}
	}
}

func hasStatus(s api.Task_Status) func(*api.Task) bool {
	return func(task *api.Task) bool { return task.Status == s }
}

func ended(task *api.Task) bool {
	switch task.Status {
	case api.Task_SUCCEEDED, api.Task_FAILED, api.Task_CANCELED:
		return true
	}
	return false
}

// running reports a task that has started (its pid is known).
func running(task *api.Task) bool { return task.Status == api.Task_RUNNING && task.Pid != 0 }

// followLog reads a task:<id> channel to its end and returns the lines
// and the final record.
func followLog(t *testing.T, ch *client.Channel) ([]*api.LogLine, *api.Task) {
	t.Helper()
	var lines []*api.LogLine
	for {
		cmd := recv(t, ch)
		switch body := cmd.Body.(type) {
		case *api.Command_TaskLog:
			lines = append(lines, body.TaskLog)
		case *api.Command_TaskEnd:
			return lines, body.TaskEnd
		default:
			t.Fatalf("unexpected message on a task log: %v", cmd)
		}
	}
}

func noViolations(t *testing.T, clients ...*client.Client) {
	t.Helper()
	for i, c := range clients {
		for _, v := range c.Violations() {
			t.Errorf("client %d: %s: %v", i, v.Problem, v.Command)
		}
	}
}

// waitUntil polls cond, which inspects state outside the test's reach
// (/proc), until it holds or the timeout passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(conmantest.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// alive reports whether pid is a process that has not exited.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

// gate is a file a task waits for: `sh -c "$(gate.wait) ; …"`.
type gate string

func newGate(t *testing.T, dir, name string) gate {
	return gate(filepath.Join(dir, name))
}

// wait is shell code that waits until the gate is opened.
func (g gate) wait() string {
	return "while [ ! -e '" + string(g) + "' ]; do sleep 0.02; done"
}

func (g gate) open(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(string(g), nil, 0o600); err != nil {
		t.Fatal(err)
	}
}
