package conman_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
)

// orphanCount is how many orphaned grandchildren the scripts make.
const orphanCount = 1000

// spawnTimeout bounds making the orphans: forks are slow on a loaded
// machine.
const spawnTimeout = 2 * time.Minute

// orphanScript makes n processes whose parent exits before them or before
// reaping them (each subshell starts a background subshell and exits
// without waiting), says so, and then waits as `sleep 1000` (the keeper),
// never reaping anything.
func orphanScript(n int) string {
	return fmt.Sprintf(`i=0
while [ $i -lt %d ]; do (: &); i=$((i+1)); done
echo orphans-spawned
exec sleep 1000`, n)
}

// keeper is the command line of what the scripts end as.
var keeper = []byte("sleep\x001000\x00")

// requireNamespaces skips t unless this process may create PID
// namespaces.
func requireNamespaces(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating a PID namespace needs root")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare (util-linux) is not installed")
	}
	if out, err := exec.Command(unshare, "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot create a PID namespace here: %v %s", err, out)
	}
	return unshare
}

// namespace is a command running as PID 1 of a new PID namespace.
type namespace struct {
	cmd    *exec.Cmd
	pid1   int    // host pid of the namespace's PID 1
	ns     string // its /proc/<pid>/ns/pid link
	lines  chan string
	exited chan struct{}

	mu  sync.Mutex
	out strings.Builder
}

// startNamespace runs argv as PID 1 of a new PID namespace (with its own
// /proc), and streams its output lines.
func startNamespace(t *testing.T, unshare string, argv ...string) *namespace {
	t.Helper()
	cmd := exec.Command(unshare, append([]string{"--pid", "--fork", "--mount-proc", "--kill-child"}, argv...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &namespace{cmd: cmd, lines: make(chan string, 1024), exited: make(chan struct{})}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			n.mu.Lock()
			n.out.WriteString(sc.Text() + "\n")
			n.mu.Unlock()
			select {
			case n.lines <- sc.Text():
			default:
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		<-scanned
		close(n.exited)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if n.pid1 != 0 {
			syscall.Kill(n.pid1, syscall.SIGKILL)
		}
		<-n.exited
	})
	waitUntil(t, "the namespace's PID 1", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			n.pid1 = pid
		}
		return n.pid1 != 0
	})
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", n.pid1))
	if err != nil {
		t.Fatal(err)
	}
	n.ns = link
	return n
}

func (n *namespace) output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.out.String()
}

// waitLine waits for an output line matching re and returns its groups.
func (n *namespace) waitLine(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case line := <-n.lines:
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-n.exited:
			t.Fatalf("exited before printing %v:\n%s", re, n.output())
		case <-timer.C:
			t.Fatalf("no line matching %v:\n%s", re, n.output())
		}
	}
}

// census counts the processes of the namespace other than PID 1 and the
// keepers: the living ones and the zombies.
func (n *namespace) census() (living, zombies int) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == n.pid1 {
			continue
		}
		if link, _ := os.Readlink("/proc/" + e.Name() + "/ns/pid"); link != n.ns {
			continue
		}
		state, _, _, ok := procStat(pid)
		switch {
		case !ok:
		case state == 'Z':
			zombies++
		default:
			if cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline"); !bytes.Equal(cmdline, keeper) {
				living++
			}
		}
	}
	return living, zombies
}

// zombiesLeft waits until only PID 1 and keepers live in the namespace,
// then until the zombie count reaches zero or stays the same for a
// while, and returns it.
func (n *namespace) zombiesLeft(t *testing.T) int {
	t.Helper()
	last, since := -1, time.Now()
	var living, zombies int
	waitUntil(t, "the orphans to exit", func() bool {
		living, zombies = n.census()
		if zombies != last {
			last, since = zombies, time.Now()
		}
		return living == 0 && (zombies == 0 || time.Since(since) > time.Second)
	})
	return zombies
}

// procStat reads state, ppid and pgrp of pid; ok is false once it is gone.
func procStat(pid int) (state byte, ppid, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, _ = strconv.Atoi(fields[1])
	pgrp, _ = strconv.Atoi(fields[2])
	return fields[0][0], ppid, pgrp, true
}

// waitUntil polls cond, which inspects state outside the test's reach
// (/proc), until it holds or the timeout passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(conmantest.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

var readyLine = regexp.MustCompile(`msg="conman ready" listen=(\S+)`)

// execOrphans runs the orphan script on an exec channel of c and returns
// once it has made its orphans; the keeper still runs.
func execOrphans(t *testing.T, c *client.Client, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), spawnTimeout)
	defer cancel()
	ch, err := c.Open(ctx, "exec", "", api.OpenChannel_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	cmd := &api.Command{Ref: "orphans", Body: &api.Command_Exec{Exec: &api.Exec{Args: []string{"sh", "-c", orphanScript(n)}}}}
	if err := ch.Send(cmd); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := ch.Recv(ctx)
		if err != nil {
			t.Fatalf("making orphans: %v", err)
		}
		if m.Ref != "" {
			t.Fatalf("the script ended early: %v", m)
		}
		if strings.Contains(m.GetOutput(), "orphans-spawned") {
			return
		}
	}
}

// execMany runs n short commands one after the other on a channel of its
// own and checks that each reports its own exit status.
func execMany(c *client.Client, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), spawnTimeout)
	defer cancel()
	ch, err := c.Open(ctx, "exec", "", api.OpenChannel_CREATE)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		want := fmt.Sprintf("exit status %d", 1+i%100)
		reply, err := ch.Request(ctx, &api.Command{Body: &api.Command_Exec{Exec: &api.Exec{Args: []string{"sh", "-c", fmt.Sprintf("exit %d", 1+i%100)}}}})
		if err != nil {
			return err
		}
		if reply.GetError() != want {
			return fmt.Errorf("exec %d: %v, want %q", i, reply, want)
		}
	}
	return nil
}

var reapedLine = regexp.MustCompile(`msg="reaper stopped" reaped=(\d+)`)

// reaped returns how many zombies the daemon's log says it reaped.
func reaped(t *testing.T, log string) int {
	t.Helper()
	m := reapedLine.FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no reaper count in the log:\n%s", log)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestPID1 runs the daemon binary as PID 1 of a new PID namespace: the
// orphans its exec'd processes leave behind are all reaped, as tini reaps
// the same script's, and SIGTERM ends everything within the grace.
func TestPID1(t *testing.T) {
	t.Parallel()
	unshare := requireNamespaces(t)
	bin := conmantest.Binary(t)

	// The control: with a PID 1 that never reaps (the script runs beside
	// it), zombies stay, so the script does make orphans.
	t.Run("no reaper", func(t *testing.T) {
		t.Parallel()
		n := startNamespace(t, unshare, "sh", "-c", fmt.Sprintf("sh -c '%s' & exec sleep 1000", orphanScript(100)))
		n.waitLine(t, regexp.MustCompile(`orphans-spawned`), spawnTimeout)
		if z := n.zombiesLeft(t); z == 0 {
			t.Fatal("no zombies without a reaper: the script made no orphans")
		} else {
			t.Logf("without a reaper: %d zombies", z)
		}
	})

	// tini and the daemon run the same script side by side; their counts
	// are compared once both are done.
	tiniZombies, conmanZombies := -1, -1
	t.Run("reapers", func(t *testing.T) {
		t.Run("tini", func(t *testing.T) {
			t.Parallel()
			tiniReaps(t, unshare, &tiniZombies)
		})
		t.Run("conman", func(t *testing.T) {
			t.Parallel()
			conmanReaps(t, unshare, bin, &conmanZombies)
		})
	})
	if tiniZombies >= 0 && conmanZombies >= 0 && tiniZombies != conmanZombies {
		t.Fatalf("the daemon left %d zombies, tini %d", conmanZombies, tiniZombies)
	}
}

// tiniReaps runs the orphan script under tini as PID 1 and stores how many
// zombies are left.
func tiniReaps(t *testing.T, unshare string, zombies *int) {
	tini, err := exec.LookPath("tini")
	if err != nil {
		t.Skip("tini is not installed (Debian package tini)")
	}
	n := startNamespace(t, unshare, tini, "--", "sh", "-c", orphanScript(orphanCount))
	n.waitLine(t, regexp.MustCompile(`orphans-spawned`), spawnTimeout)
	*zombies = n.zombiesLeft(t)
	if *zombies != 0 {
		t.Fatalf("tini left %d zombies", *zombies)
	}
}

// conmanReaps runs the daemon binary as PID 1, the orphan script on an exec
// channel, then SIGTERM; it stores how many zombies were left.
func conmanReaps(t *testing.T, unshare, bin string, zombiesLeft *int) {
	ws := t.TempDir()
	n := startNamespace(t, unshare, bin, "serve", "--workspace", ws, "--listen", "127.0.0.1:0", "--shutdown-grace", "5s", "--log-level", "debug")
	addr := n.waitLine(t, readyLine, conmantest.Timeout)[1]
	if pid, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.pid1)); !bytes.Contains(pid, []byte("(conman)")) {
		t.Fatalf("PID 1 of the namespace is not the daemon: %s", pid)
	}
	tok, err := exec.Command(bin, "token", "--data-dir", filepath.Join(ws, ".conman"), "--user", "pid1").Output()
	if err != nil {
		t.Fatal(err)
	}
	c := conmantest.DialURL(t, client.URL(addr, strings.TrimSpace(string(tok))), client.Options{})

	// While the orphans come and go, the daemon's own children keep
	// their exit statuses: the reaper never takes them.
	owned := make(chan error, 1)
	go func() {
		owned <- execMany(c, 100)
	}()
	execOrphans(t, c, orphanCount)
	if err := <-owned; err != nil {
		t.Fatal(err)
	}
	zombies := n.zombiesLeft(t)
	*zombiesLeft = zombies
	if zombies != 0 {
		t.Fatalf("the daemon as PID 1 left %d zombies", zombies)
	}

	// SIGTERM with a shell, a process ignoring SIGTERM and the
	// orphan script's keeper running: everything ends within the
	// grace, and the daemon exits 0.
	ctx := conmantest.Context(t)
	sh, err := c.Open(ctx, "shell", "main", api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	sh.Send(&api.Command{Body: &api.Command_Input{Input: "echo shell-is-up\r"}})
	for {
		m, err := sh.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(m.GetOutput(), "shell-is-up\r\n") {
			break
		}
	}
	stubborn, err := c.Open(ctx, "exec", "", api.OpenChannel_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	stubborn.Send(&api.Command{Ref: "stubborn", Body: &api.Command_Exec{Exec: &api.Exec{Args: []string{"sh", "-c", `trap "" TERM HUP; echo ignoring; while :; do sleep 1; done`}}}})
	for {
		m, err := stubborn.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(m.GetOutput(), "ignoring") {
			break
		}
	}
	start := time.Now()
	syscall.Kill(n.pid1, syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(conmantest.Timeout):
		t.Fatalf("the daemon did not exit after SIGTERM:\n%s", n.output())
	}
	took := time.Since(start)
	if code := n.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM:\n%s", code, n.output())
	}
	if took > 5*time.Second+3*time.Second { // the grace, and slack for a loaded machine
		t.Fatalf("shutdown took %v, over the 5 s grace", took)
	}
	if !strings.Contains(n.output(), "forwarded_to_groups=") {
		t.Fatalf("SIGTERM was not forwarded:\n%s", n.output())
	}
	if got := reaped(t, n.output()); got < orphanCount {
		t.Fatalf("the daemon reaped %d zombies, want at least %d", got, orphanCount)
	}
	t.Logf("SIGTERM to exit: %v", took.Round(time.Millisecond))
}

// TestSubreaper: with --subreaper the daemon reaps the orphans of its
// descendants without being PID 1.
func TestSubreaper(t *testing.T) {
	t.Parallel()
	p := conmantest.StartProcess(t, "", "--subreaper", "--log-level", "debug")
	c := conmantest.DialURL(t, client.URL(p.Addr, p.Token(t, "sub")), client.Options{})
	daemon := p.Cmd.Process.Pid
	const n = 200
	execOrphans(t, c, n)
	waitUntil(t, "the orphans to exit and be reaped", func() bool {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if _, ppid, _, ok := procStat(pid); !ok || ppid != daemon {
				continue
			}
			if cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline"); !bytes.Equal(cmdline, keeper) {
				return false // an orphan, living or not yet reaped
			}
		}
		return true
	})
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(t); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, p.Log())
	}
	if got := reaped(t, p.Log()); got < n {
		t.Fatalf("the daemon reaped %d zombies, want at least %d: the orphans were not handed to it", got, n)
	}
}
