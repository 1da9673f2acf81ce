package tasks_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
)

// startDaemon runs the daemon binary on ws with one task at a time and
// opens a tasks channel on it.
func startDaemon(t *testing.T, ws string) (*conmantest.Process, *client.Client, *client.Channel) {
	t.Helper()
	p := conmantest.StartProcess(t, ws, "--tasks-concurrency", "1", "--shutdown-grace", "5s")
	c := conmantest.DialURL(t, client.URL(p.Addr, p.Token(t, "ada")), client.Options{})
	return p, c, openTasks(t, c, "")
}

func byID(tasks []*api.Task) map[string]*api.Task {
	out := map[string]*api.Task{}
	for _, task := range tasks {
		out[task.Id] = task
	}
	return out
}

// TestDaemonRestart: task records and logs survive the daemon. A task
// running when the daemon dies is marked failed, and what is left of it
// is killed; queued tasks run after the restart. A daemon that stops on
// SIGTERM fails its running task and leaves the queue for the next start.
func TestDaemonRestart(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	hold := newGate(t, ws, "hold")
	p, _, ch := startDaemon(t, ws)

	crashed := submit(t, ch, "crashed", "sh", "-c", "echo before the crash; "+hold.wait())
	afterCrash := submit(t, ch, "after crash", "sh", "-c", "echo ran > ran-after-crash")
	follow := openTasks(t, mustClient(t, p), "task:"+crashed.Id)
	if line := recv(t, follow).GetTaskLog(); line.GetText() != "before the crash" {
		t.Fatalf("first line %v", line)
	}
	crashedPid := int(waitTask(t, ch, crashed.Id, running, nil).Pid)

	p.Signal(syscall.SIGKILL)
	p.Wait(t)
	if !alive(crashedPid) {
		t.Fatalf("the task died with the daemon; the test cannot tell whether the next daemon kills it")
	}

	p, c, ch := startDaemon(t, ws)
	tasks := byID(list(t, ch))
	if got := tasks[crashed.Id]; got.GetStatus() != api.Task_FAILED || got.Reason != "daemon restarted while it ran" || got.EndedAt == 0 {
		t.Fatalf("task running at the crash: %v", got)
	}
	waitUntil(t, "the crashed task's process to be killed", func() bool { return !alive(crashedPid) })
	if got := tasks[afterCrash.Id]; got.GetStatus() == api.Task_QUEUED || got.GetStatus() == api.Task_RUNNING {
		waitTask(t, ch, afterCrash.Id, ended, nil)
	}
	if got := byID(list(t, ch))[afterCrash.Id]; got.GetStatus() != api.Task_SUCCEEDED {
		t.Fatalf("queued task after the restart: %v", got)
	}
	if data, err := os.ReadFile(filepath.Join(ws, "ran-after-crash")); err != nil || string(data) != "ran\n" {
		t.Fatalf("queued task did not run: %q %v", data, err)
	}
	// The log of the crashed task is still there.
	lines, end := followLog(t, openTasks(t, c, "task:"+crashed.Id))
	if len(lines) != 1 || lines[0].Text != "before the crash" || !lines[0].Replayed || end.Status != api.Task_FAILED {
		t.Fatalf("log after the restart: %v %v", lines, end)
	}

	// A graceful stop: the running task fails, the queued one waits.
	stopped := submit(t, ch, "stopped", "sh", "-c", "echo running; sleep 600")
	waiting := submit(t, ch, "waiting", "sh", "-c", "echo ran > ran-after-stop")
	follow = openTasks(t, c, "task:"+stopped.Id)
	if line := recv(t, follow).GetTaskLog(); line.GetText() != "running" {
		t.Fatalf("first line %v", line)
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(t); code != 0 {
		t.Errorf("daemon exit code %d after SIGTERM\n%s", code, p.Log())
	}
	if _, err := os.Stat(filepath.Join(ws, "ran-after-stop")); !os.IsNotExist(err) {
		t.Fatalf("the queued task ran while the daemon stopped: %v", err)
	}

	_, _, ch = startDaemon(t, ws)
	tasks = byID(list(t, ch))
	if got := tasks[stopped.Id]; got.GetStatus() != api.Task_FAILED || got.Reason != "daemon stopped while it ran (signal: terminated)" {
		t.Fatalf("task running at the stop: %v", got)
	}
	if got := tasks[waiting.Id]; got.GetStatus() == api.Task_QUEUED || got.GetStatus() == api.Task_RUNNING {
		waitTask(t, ch, waiting.Id, ended, nil)
	}
	if got := byID(list(t, ch))[waiting.Id]; got.GetStatus() != api.Task_SUCCEEDED {
		t.Fatalf("queued task after the second restart: %v", got)
	}
}

// mustClient dials p as another session.
func mustClient(t *testing.T, p *conmantest.Process) *client.Client {
	t.Helper()
	return conmantest.DialURL(t, client.URL(p.Addr, p.Token(t, "ada")), client.Options{})
}
