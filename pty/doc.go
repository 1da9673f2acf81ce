// Package pty runs processes in pseudo-terminals and shares their output.
//
// It owns, for one process at a time:
//
//   - the pseudo-terminal: spawning the process as the leader of a new
//     session and process group with the terminal as its controlling tty,
//     resizing, writing input, and switching the line discipline between
//     "sane" (canonical, echo) and "pipe" (raw, no echo) modes;
//   - the process group: signals go to the whole group, and stopping sends
//     SIGHUP, SIGTERM and SIGCONT, then SIGKILL after a grace period;
//     whatever is left of the group when the leader exits is killed, and
//     the leader is always reaped;
//   - the output: a scrollback ring addressed by absolute byte offsets, and
//     fan-out to any number of [Attachment]s, each with its own queue
//     bounded in bytes, with flow control back to the process.
//
// It must not know about the wire protocol or the channels layer: it
// imports neither. Policies belong to the services built on it: when to
// restart a process that exited, what size to give a terminal shared by
// several clients, what to tell a client that was detached. [Process]
// gives the same process-group handling to commands that run without a
// terminal.
//
// # Flow control
//
// One goroutine reads the terminal and appends what it reads to the
// scrollback and to the queue of every attachment. An attachment with more
// than Options.HighWaterBytes queued is behind. Reading stops only while
// every attachment is behind; the kernel's buffer then fills and the
// process blocks in write until some attachment catches up. An attachment
// whose queue would grow past Options.QueueBytes is detached with
// [ErrOverflow] instead of slowing anybody down; it may come back with
// [Session.Resume] from [Attachment.Offset]. With no attachment at all the
// output still goes to the scrollback: a shell outlives its clients.
//
// # Goroutines
//
// A [Session] starts three goroutines and waits for all of them before
// [Session.Done] is closed:
//
//   - run supervises the process group (signals, the kill grace, reaping)
//     and, once the leader is reaped, lets the reader drain what is left
//     and then releases the terminal;
//   - the reader reads the terminal into the scrollback and the queues,
//     and wakes the attachments' readers when the terminal has nothing
//     more to read at once (or every Options.ReadBytes): a flood is
//     handed over in large chunks, a keystroke's echo at once; run owns
//     it;
//   - a waiter blocks in waitid until the leader exits, without reaping it,
//     so that the group id stays reserved while the rest of the group is
//     killed; run owns it.
//
// A [Process] starts run and the waiter only. [Session.Input] arms a
// context.AfterFunc to interrupt its write and waits for it before
// returning. Nothing else in the package starts a goroutine; attachments
// are read on the caller's goroutine.
//
// # Lifetimes
//
// The context given to [Start] or [StartProcess] bounds the process: when
// it ends, the group is stopped as if Close had been called. Close stops
// the process if it still runs and waits until everything is released.
package pty
