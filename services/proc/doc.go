// Package proc holds what the process services (exec, shell and the run
// button) share: the environment and working directory workspace processes
// get (with the process-wide [Defaults] that pid1Config sets), the
// process-wide register of the process groups the daemon supervises,
// turning process output into protocol text, and [Console], which shares
// one terminal at a time among the sessions attached to a channel.
//
// It must not know any one service's commands or policies (when to restart,
// what to run): those stay in the services. It never reaps a process itself;
// the pty package does that for the processes it starts.
//
// # Ownership of children
//
// When the daemon is PID 1 (or a child subreaper) every orphan in the
// container becomes its child, and something must reap those orphans
// without stealing the exit status of a child that the pty package (or
// os/exec) is about to wait for. The rule that makes this safe:
//
//   - every child is started through [Start] (or [StartPTY],
//     [StartProcess], [StartCommand]), which holds the spawn lock for
//     reading across the start and the registration of the new leader's
//     pid;
//   - the reaper calls [ExcludeSpawns], which holds the spawn lock for
//     writing while it lists zombies and reaps those whose pid is not a
//     registered, still-supervised leader.
//
// A leader that exits before it is registered cannot be reaped by mistake:
// the reaper waits for the spawn lock, and by then the pid is registered. A
// registered leader counts as owned until its group's Done is closed, which
// happens only after its owner reaped it; a stale entry is then dropped.
// (The reaper also spares, for a while, zombies that look like children
// started with plain os/exec by code that did not register them; see
// conman's reaper.)
//
// # Concurrency
//
// Every exported function is safe for concurrent use. A [Console] starts
// one goroutine per attached session and waits for all of them in Close.
package proc
