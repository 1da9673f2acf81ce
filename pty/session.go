package pty

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults for the zero values of Options.
const (
	DefaultRows            = 24
	DefaultCols            = 80
	DefaultTerm            = "xterm-256color"
	DefaultScrollbackBytes = 1 << 20
	DefaultQueueBytes      = 1 << 20
	DefaultReadBytes       = 32 << 10
	DefaultDrainTimeout    = 500 * time.Millisecond
)

// Errors returned by Session and Attachment methods.
var (
	// ErrClosed: the terminal has been released (the session is done).
	ErrClosed = errors.New("pty: session closed")
	// ErrOverflow: the attachment's queue would have grown past its bound,
	// so it was detached. Resume from its Offset to carry on.
	ErrOverflow = errors.New("pty: attachment fell too far behind")
	// ErrDetached: Detach was called.
	ErrDetached = errors.New("pty: attachment detached")
	// ErrFutureOffset: Resume was asked for an offset the output has not
	// reached, as happens with a client of an earlier session.
	ErrFutureOffset = errors.New("pty: offset beyond the output")
)

// Options describes a process to run in a terminal and how its output is
// kept. Zero values select the defaults given for each field.
type Options struct {
	// Argv is the program and its arguments; Argv[0] is looked up in PATH
	// when it has no slash. Required.
	Argv []string
	// Dir is the working directory; empty means the daemon's.
	Dir string
	// Env is the environment. nil means the daemon's, with TERM set to
	// xterm-256color; otherwise TERM=xterm-256color is added unless Env
	// sets TERM.
	Env []string
	// Rows and Cols are the initial size; zero means 24 rows, 80 columns.
	Rows, Cols uint16

	// ScrollbackBytes is how much of the most recent output is kept for
	// attachments made later; zero means 1 MiB.
	ScrollbackBytes int
	// QueueBytes bounds the live output queued for one attachment (the
	// scrollback it starts with is not counted): an attachment whose queue
	// would grow past it is detached with ErrOverflow. Zero means 1 MiB.
	QueueBytes int
	// HighWaterBytes is how much an attachment may have queued before it
	// counts as behind; the terminal is not read while every attachment
	// is behind. Zero means QueueBytes/4. It is lowered when needed so that
	// QueueBytes holds HighWaterBytes plus one read: an attachment alone is
	// slowed down, never detached.
	HighWaterBytes int
	// ReadBytes is the size of the buffer the terminal is read into; zero
	// means 32 KiB. It is lowered to QueueBytes/2 when larger.
	ReadBytes int

	// KillGrace is how long the group has between SIGTERM and SIGKILL when
	// stopped; zero means DefaultKillGrace.
	KillGrace time.Duration
	// DrainTimeout bounds the wait for more output once the leader has
	// exited, when processes that left its group still hold the terminal
	// open; zero means 500 ms.
	DrainTimeout time.Duration

	// OnReadPaused, when set, is called from the reader goroutine each time
	// reading stops because every attachment is behind (true) and starts
	// again (false). It must return quickly; it suits metrics.
	OnReadPaused func(paused bool)
}

func (o Options) withDefaults() Options {
	if o.Rows == 0 {
		o.Rows = DefaultRows
	}
	if o.Cols == 0 {
		o.Cols = DefaultCols
	}
	setsTerm := func(kv string) bool { return strings.HasPrefix(kv, "TERM=") }
	if o.Env == nil {
		// The daemon's own TERM says nothing about the browser's terminal.
		o.Env = slices.DeleteFunc(os.Environ(), setsTerm)
	}
	if !slices.ContainsFunc(o.Env, setsTerm) {
		o.Env = append(slices.Clip(o.Env), "TERM="+DefaultTerm)
	}
	if o.ScrollbackBytes <= 0 {
		o.ScrollbackBytes = DefaultScrollbackBytes
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = DefaultQueueBytes
	}
	o.QueueBytes = max(o.QueueBytes, 2)
	if o.ReadBytes <= 0 {
		o.ReadBytes = DefaultReadBytes
	}
	o.ReadBytes = min(o.ReadBytes, o.QueueBytes/2)
	if o.HighWaterBytes <= 0 {
		o.HighWaterBytes = o.QueueBytes / 4
	}
	o.HighWaterBytes = min(o.HighWaterBytes, o.QueueBytes-o.ReadBytes)
	if o.KillGrace <= 0 {
		o.KillGrace = DefaultKillGrace
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	return o
}

// Stats is a snapshot of a session's output state.
type Stats struct {
	// Written is how many bytes of output the process has produced: the
	// offset the next byte will have.
	Written int64
	// Oldest is the offset of the oldest byte the scrollback still holds.
	Oldest int64
	// Attachments is how many attachments receive live output.
	Attachments int
	// ReadPaused is true while the terminal is not read because every
	// attachment is behind.
	ReadPaused bool
}

// Session is a process running in a pseudo-terminal, with the scrollback
// of its output and the attachments reading it. All methods are safe for
// concurrent use.
type Session struct {
	opts       Options // with defaults applied
	controller *os.File
	group      *processGroup
	ctx        context.Context // ends when the session is closing
	cancel     context.CancelFunc
	done       chan struct{}
	readerWake chan struct{} // capacity 1: "check whether to read again"
	released   atomic.Bool   // set just before the controller is closed

	// inputMu serializes Input, which owns the write deadline.
	inputMu sync.Mutex

	// readDeadlineMu guards the following, which decide the read deadline.
	readDeadlineMu sync.Mutex
	draining       bool // the leader is gone: give up after DrainTimeout
	readingStopped bool // closing: no more reads

	// mu guards the following, and the queues of every attachment, so that
	// attaching takes the snapshot and starts the live output in one step.
	// Nothing that can block is done with it held.
	mu          sync.Mutex
	output      scrollback
	attachments []*Attachment // those receiving live output
	outputEnded bool          // the reader has finished
	readPaused  bool

	// Set by run before done is closed.
	status  ExitStatus
	waitErr error
}

// Start spawns opts.Argv in a new pseudo-terminal, as the leader of a new
// session and process group with the terminal as its controlling tty. The
// process is stopped when ctx ends; Close does the same and waits.
func Start(ctx context.Context, opts Options) (*Session, error) {
	if len(opts.Argv) == 0 {
		return nil, errors.New("pty: empty Argv")
	}
	opts = opts.withDefaults()
	controller, tty, err := openTerminal()
	if err != nil {
		return nil, err
	}
	defer tty.Close() // the child has its own copy once started
	if err := setWindowSize(controller, opts.Rows, opts.Cols); err != nil {
		_ = controller.Close()
		return nil, err
	}
	cmd := exec.Command(opts.Argv[0], opts.Argv[1:]...)
	cmd.Dir = opts.Dir
	cmd.Env = opts.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		_ = controller.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Session{
		opts:       opts,
		controller: controller,
		// A hangup is what closing a terminal means; interactive shells
		// ignore SIGTERM but pass SIGHUP on to their jobs.
		group:      newProcessGroup(cmd, opts.KillGrace, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGCONT),
		ctx:        ctx,
		cancel:     cancel,
		done:       make(chan struct{}),
		readerWake: make(chan struct{}, 1),
		output:     newScrollback(opts.ScrollbackBytes),
	}
	go s.run()
	return s, nil
}

// run owns the reader and the process group until both are finished.
func (s *Session) run() {
	defer close(s.done)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		s.readLoop()
	}()

	s.status, s.waitErr = s.group.supervise(s.ctx)

	if s.ctx.Err() != nil {
		s.stopReading()
	} else {
		s.startDraining()
	}
	select {
	case <-readerDone:
	case <-s.ctx.Done():
		s.stopReading()
		<-readerDone
	}
	s.released.Store(true)
	_ = s.controller.Close()
	s.endOutput()
}

// startDraining makes reads give up once no output has come for
// DrainTimeout: with the leader gone, the only processes that can still
// hold the terminal are ones that left its group.
func (s *Session) startDraining() {
	s.readDeadlineMu.Lock()
	defer s.readDeadlineMu.Unlock()
	s.draining = true
	_ = s.controller.SetReadDeadline(time.Now().Add(s.opts.DrainTimeout))
}

// stopReading ends the reader as soon as possible.
func (s *Session) stopReading() {
	s.readDeadlineMu.Lock()
	defer s.readDeadlineMu.Unlock()
	s.readingStopped = true
	_ = s.controller.SetReadDeadline(time.Unix(1, 0))
}

// beforeRead reports whether to read again, and renews the read deadline
// while draining.
func (s *Session) beforeRead() bool {
	s.readDeadlineMu.Lock()
	defer s.readDeadlineMu.Unlock()
	if s.readingStopped {
		return false
	}
	if s.draining {
		_ = s.controller.SetReadDeadline(time.Now().Add(s.opts.DrainTimeout))
	}
	return true
}

// readLoop is the reader: it moves output from the terminal to the
// scrollback and the attachments until the terminal has no writer left
// (EIO), the drain deadline passes, or the session is closing.
//
// Attachments are told about new output when the terminal has nothing
// more to read at once, when ReadBytes have come since they were last
// told, and before reading pauses: a flood reaches them in large chunks
// for one wake-up each, a keystroke's echo at once.
func (s *Session) readLoop() {
	conn, err := s.controller.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, s.opts.ReadBytes)
	unannounced := 0
	var n int
	var readErr error
	readOnce := func(fd uintptr) bool {
		n, readErr = unix.Read(int(fd), buf)
		if readErr == unix.EAGAIN {
			if unannounced > 0 {
				s.announce()
				unannounced = 0
			}
			return false // wait until the terminal is readable
		}
		return true
	}
	for s.beforeRead() {
		err := conn.Read(readOnce)
		if err == nil && readErr == unix.EINTR {
			continue
		}
		if err != nil || readErr != nil || n <= 0 {
			return // endOutput tells the attachments
		}
		allBehind := s.publish(buf[:n])
		unannounced += n
		if allBehind || unannounced >= s.opts.ReadBytes {
			s.announce()
			unannounced = 0
		}
		if allBehind && !s.waitForCatchUp() {
			return
		}
	}
}

// publish appends p to the scrollback and to every attachment's queue,
// detaching those it would overflow, and reports whether every attachment
// left is behind. It leaves waking the attachments to announce.
func (s *Session) publish(p []byte) (allBehind bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.output.write(p)
	kept := s.attachments[:0]
	allBehind = true
	for _, a := range s.attachments {
		if len(a.queue)+len(p) > s.opts.QueueBytes {
			a.stopLocked(ErrOverflow)
			continue
		}
		a.queue = append(a.queue, p...)
		if len(a.queue) <= s.opts.HighWaterBytes {
			allBehind = false
		}
		kept = append(kept, a)
	}
	clear(s.attachments[len(kept):])
	s.attachments = kept
	return allBehind && len(kept) > 0
}

// announce wakes the attachments that have output queued.
func (s *Session) announce() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.attachments {
		if len(a.queue) > 0 {
			a.notify()
		}
	}
}

// allBehindLocked reports whether there are attachments and all of them
// are behind.
func (s *Session) allBehindLocked() bool {
	for _, a := range s.attachments {
		if len(a.queue) <= s.opts.HighWaterBytes {
			return false
		}
	}
	return len(s.attachments) > 0
}

// waitForCatchUp pauses reading until some attachment is no longer behind
// (or none is left). It returns false if the session is closing.
func (s *Session) waitForCatchUp() bool {
	s.mu.Lock()
	if !s.allBehindLocked() {
		s.mu.Unlock()
		return true
	}
	s.readPaused = true
	s.mu.Unlock()
	s.notifyReadPaused(true)
	for {
		select {
		case <-s.readerWake:
		case <-s.ctx.Done():
			return false
		}
		s.mu.Lock()
		if !s.allBehindLocked() {
			s.readPaused = false
			s.mu.Unlock()
			s.notifyReadPaused(false)
			return true
		}
		s.mu.Unlock()
	}
}

func (s *Session) notifyReadPaused(paused bool) {
	if s.opts.OnReadPaused != nil {
		s.opts.OnReadPaused(paused)
	}
}

// wakeReader asks a paused reader to check again.
func (s *Session) wakeReader() {
	select {
	case s.readerWake <- struct{}{}:
	default:
	}
}

// endOutput tells every attachment that no more output will come.
func (s *Session) endOutput() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outputEnded = true
	s.readPaused = false
	for _, a := range s.attachments {
		a.err = errEndOfOutput
		close(a.done)
		a.notify()
	}
	s.attachments = nil
}

// Pid returns the process id of the leader, which is also its session and
// process group id.
func (s *Session) Pid() int { return s.group.pid }

// Stats returns a snapshot of the output state.
func (s *Session) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Written:     s.output.written,
		Oldest:      s.output.oldest(),
		Attachments: len(s.attachments),
		ReadPaused:  s.readPaused,
	}
}

// Input writes p to the terminal, as if typed. It returns ctx's error if
// ctx ends before all of p has been written (the terminal's input buffer
// is full when the process does not read); part of p may then have been
// written.
func (s *Session) Input(ctx context.Context, p []byte) error {
	s.inputMu.Lock()
	defer s.inputMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	deadline, _ := ctx.Deadline() // the zero time means none
	if err := s.controller.SetWriteDeadline(deadline); err != nil {
		return s.closedError(err)
	}
	if ctx.Done() != nil {
		interrupted := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(interrupted)
			_ = s.controller.SetWriteDeadline(time.Unix(1, 0))
		})
		defer func() {
			if !stop() {
				<-interrupted // so that it cannot touch the next write
			}
		}()
	}
	if _, err := s.controller.Write(p); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Only ctx sets write deadlines: it ends now if not already.
			<-ctx.Done()
			return ctx.Err()
		}
		return s.closedError(err)
	}
	return nil
}

// closedError turns the errors of a released controller into ErrClosed.
func (s *Session) closedError(err error) error {
	if err != nil && (s.released.Load() || errors.Is(err, os.ErrClosed)) {
		return ErrClosed
	}
	return err
}

// Resize sets the terminal's size; the process gets SIGWINCH.
func (s *Session) Resize(rows, cols uint16) error {
	if rows == 0 || cols == 0 {
		return errors.New("pty: zero terminal size")
	}
	return s.closedError(setWindowSize(s.controller, rows, cols))
}

// Sane resets the terminal's modes as `stty sane` does: canonical input,
// echo, signal characters, CR/NL translation, standard control characters.
func (s *Session) Sane() error { return s.closedError(setTermios(s.controller, makeSane)) }

// SetPipeMode switches pipe mode on (`stty raw icrnl isig -echo`: no echo,
// no line editing, output untranslated, for programs whose output is
// compared byte for byte) or off (the same as Sane).
func (s *Session) SetPipeMode(on bool) error {
	if on {
		return s.closedError(setTermios(s.controller, makePipe))
	}
	return s.Sane()
}

// Signal sends sig to every process in the group. It returns
// ErrProcessDone once the leader has been reaped.
func (s *Session) Signal(sig syscall.Signal) error { return s.group.signal(sig) }

// Kill starts stopping the process group: SIGHUP, SIGTERM and SIGCONT,
// then SIGKILL after the grace period. It returns at once; the output is
// still read to the end, and Done is closed after that.
func (s *Session) Kill() { s.group.requestKill() }

// Done is closed when the session is over: the leader has been reaped and
// the output read to its end (or the session closed), so every attachment
// has all the output it will get. Restarting is then up to the caller.
func (s *Session) Done() <-chan struct{} { return s.done }

// Wait waits until the session is done and returns how the leader ended.
// The error is ctx's if ctx ends first.
func (s *Session) Wait(ctx context.Context) (ExitStatus, error) {
	select {
	case <-s.done:
		return s.status, s.waitErr
	case <-ctx.Done():
		return ExitStatus{}, ctx.Err()
	}
}

// Close stops the process group if it still runs (see Kill), stops reading
// without waiting for attachments to catch up, releases the terminal and
// waits for the session's goroutines. The scrollback stays readable
// through Attach and Resume. Close may be called more than once.
func (s *Session) Close() error {
	s.cancel()
	<-s.done
	return nil
}
