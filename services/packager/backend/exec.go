package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/conman-dev/conman/services/proc"
)

// Cmd is one tool invocation. It never goes through a shell.
type Cmd struct {
	// Args is the program and its arguments. A program without a slash is
	// looked up in PATH; a relative one is relative to Dir.
	Args []string
	// Dir is the directory the tool runs in.
	Dir string
	// Env is the tool's whole environment.
	Env []string
}

// String renders c the way the `-->` line shows it: arguments that need it
// quoted.
func (c Cmd) String() string {
	parts := make([]string, len(c.Args))
	for i, a := range c.Args {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`") {
			a = strconv.Quote(a)
		}
		parts[i] = a
	}
	return strings.Join(parts, " ")
}

// A Runner runs the tools of one mutation.
type Runner interface {
	// Run runs c to completion. What the tool prints is streamed to the
	// client; a non-zero exit is an *ExitError; a canceled ctx kills the
	// tool's whole process group.
	Run(ctx context.Context, c Cmd) error
}

// ExitError is a tool that exited unsuccessfully (or could not start).
type ExitError struct {
	// Command is the tool and its subcommand ("npm install").
	Command string
	// Output is the end of what the tool printed, for classifying the
	// failure.
	Output string
	Err    error
}

func (e *ExitError) Error() string { return e.Command + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *ExitError) Unwrap() error { return e.Err }

// Defaults of [Exec].
const (
	// FlushAfter bounds how long a partial line waits before it is sent.
	FlushAfter = 100 * time.Millisecond
	// maxPending is a partial line long enough to be sent at once.
	maxPending = 32 << 10
	// streamTail is how much of a streamed tool's output is kept for
	// classifying a failure.
	streamTail = 64 << 10
	// captureLimit bounds the output Output returns.
	captureLimit = 8 << 20
	// killWait bounds how long Run waits for the output pipe to close
	// after the tool exits or is killed (a leftover grandchild may hold
	// it).
	killWait = 2 * time.Second
)

// Exec runs tools as the packager runs them: each in its own process
// group, the group killed when ctx ends and swept when the tool exits, stdout
// and stderr combined in order. It implements [Runner].
type Exec struct {
	// Output receives the `--> <command>` line before each tool, then the
	// tool's output: complete lines as soon as they are written, a partial
	// line after at most FlushAfter. Calls are sequential and every text is
	// valid UTF-8. Nil discards the output.
	Output func(text string)
}

var _ Runner = (*Exec)(nil)

// Run implements [Runner].
func (e *Exec) Run(ctx context.Context, c Cmd) error {
	if e.Output != nil {
		e.Output("--> " + c.String() + "\n")
	}
	w := &chunker{emit: e.Output, tailMax: streamTail, flushAfter: FlushAfter}
	err := run(ctx, c, w)
	w.Close()
	if err != nil {
		return &ExitError{Command: commandName(c), Output: w.Tail(), Err: err}
	}
	return nil
}

// Output runs c without streaming and returns what it printed (stdout and
// stderr combined, at most a few MiB). A failure is an *ExitError that
// carries the output too.
func Output(ctx context.Context, c Cmd) (string, error) {
	w := &chunker{tailMax: captureLimit}
	err := run(ctx, c, w)
	w.Close()
	if err != nil {
		return w.Tail(), &ExitError{Command: commandName(c), Output: w.Tail(), Err: err}
	}
	return w.Tail(), nil
}

// commandName is the program's base name and its subcommand, the first
// argument that is a plain word: "npm install", "apt-cache show"; for
// "python -m pip install" it is "pip install".
func commandName(c Cmd) string {
	if len(c.Args) == 0 {
		return "command"
	}
	name, rest := filepath.Base(c.Args[0]), c.Args[1:]
	if len(rest) >= 2 && rest[0] == "-m" {
		name, rest = rest[1], rest[2:]
	}
	for _, a := range rest {
		if strings.HasPrefix(a, "-") {
			continue
		}
		if subcommand.MatchString(a) {
			return name + " " + a
		}
		break
	}
	return name
}

var subcommand = regexp.MustCompile(`^[a-z][a-z-]*$`)

// run starts c in a new process group with w as stdout and stderr and
// waits for it.
func run(ctx context.Context, c Cmd, w *chunker) error {
	if len(c.Args) == 0 {
		return errors.New("no command")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, c.Args[0], c.Args[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = c.Env
	// One writer for both: exec then uses a single pipe, so the two
	// streams keep their relative order.
	cmd.Stdout = w
	cmd.Stderr = w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = killWait
	// Started as a supervised group: the daemon's reaper (when it is PID 1)
	// leaves its exit status alone, and signals the daemon gets reach it.
	wait, err := proc.StartCommand(cmd)
	if err != nil {
		return err
	}
	err = wait()
	// Sweep what the tool left behind in its group (background helpers);
	// the group id is the tool's pid, which stays reserved while any member
	// lives.
	killGroup(cmd)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// chunker turns a tool's output into the chunks the client sees, and keeps
// the end of it for classifying failures.
type chunker struct {
	emit       func(string)
	tailMax    int
	flushAfter time.Duration

	// mu guards the following.
	mu      sync.Mutex
	pending []byte // not yet emitted: a partial line
	timer   *time.Timer
	closed  bool
	tail    []byte
}

func (w *chunker) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tail = append(w.tail, p...)
	if over := len(w.tail) - w.tailMax; over > 0 {
		w.tail = append(w.tail[:0], w.tail[over:]...)
	}
	if w.emit == nil || w.closed {
		return len(p), nil
	}
	w.pending = append(w.pending, p...)
	if i := bytes.LastIndexByte(w.pending, '\n'); i >= 0 {
		w.emitLocked(i + 1)
	}
	if len(w.pending) >= maxPending {
		w.emitLocked(completeRunes(w.pending))
	}
	switch {
	case len(w.pending) == 0 && w.timer != nil:
		w.timer.Stop()
		w.timer = nil
	case len(w.pending) > 0 && w.timer == nil:
		w.timer = time.AfterFunc(w.flushAfter, w.flushPartial)
	}
	return len(p), nil
}

// flushPartial sends a partial line that has waited long enough.
func (w *chunker) flushPartial() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	if w.closed {
		return
	}
	w.emitLocked(completeRunes(w.pending))
}

// emitLocked sends the first n pending bytes.
func (w *chunker) emitLocked(n int) {
	if n <= 0 {
		return
	}
	text := strings.ToValidUTF8(string(w.pending[:n]), "\uFFFD")
	w.pending = append(w.pending[:0], w.pending[n:]...)
	w.emit(text)
}

// Close sends whatever is pending; nothing is sent after it returns.
func (w *chunker) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if w.emit != nil {
		w.emitLocked(len(w.pending))
	}
	w.closed = true
}

// Tail is the end of the output, as valid UTF-8.
func (w *chunker) Tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.ToValidUTF8(string(w.tail), "\uFFFD")
}

// completeRunes is the length of the longest prefix of b that does not end
// inside a UTF-8 sequence.
func completeRunes(b []byte) int {
	n := len(b)
	// A sequence is at most 4 bytes: look back at most 3 for its start.
	for i := n - 1; i >= 0 && i >= n-3; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			return n
		}
	}
	return n
}

// Lines returns the non-empty lines of output.
func Lines(output string) []string {
	var out []string
	for _, line := range strings.Split(output, "\n") {
		if line = strings.TrimRight(line, "\r"); strings.TrimSpace(line) != "" {
			out = append(out, line)
		}
	}
	return out
}

// describeExit renders an exit error the way reasons quote it.
func describeExit(err error) string {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if st, ok := exitErr.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			return "killed by " + st.Signal().String()
		}
		return fmt.Sprintf("exit status %d", exitErr.ExitCode())
	}
	return err.Error()
}

// Failed classifies an unrecognised tool failure: "<tool>: exit status N:
// <detail>", where detail is the line of output pick chooses (the last line
// when pick is nil or finds none).
func Failed(err error, pick func(lines []string) string) error {
	var ee *ExitError
	if !errors.As(err, &ee) {
		return err
	}
	if errors.Is(ee.Err, context.Canceled) || errors.Is(ee.Err, context.DeadlineExceeded) {
		return err
	}
	var notFound *exec.Error
	if errors.As(ee.Err, &notFound) {
		return Errorf(KindFailed, err, "%s: %s is not installed", ee.Command, filepath.Base(notFound.Name))
	}
	lines := Lines(ee.Output)
	detail := ""
	if pick != nil {
		detail = pick(lines)
	}
	if detail == "" && len(lines) > 0 {
		detail = lines[len(lines)-1]
	}
	reason := ee.Command + ": " + describeExit(ee.Err)
	if detail != "" {
		reason += ": " + Detail(detail)
	}
	return Errorf(KindFailed, err, "%s", reason)
}
