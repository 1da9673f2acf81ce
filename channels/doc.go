// Package channels owns the transport-agnostic heart of the daemon: sessions
// (one per connection), channel 0, opening, attaching and closing channels,
// addressing service output by session, and the one writer goroutine per
// session with its byte-bounded queue.
//
// It knows nothing of HTTP or websockets (a [Conn] is all it needs from the
// transport) and nothing of any particular service (services reach it through
// [Service] and [Handler]).
//
// # Goroutines
//
//   - The transport's read loop calls [Session.HandleFrame]. Channel-0
//     commands (open, close, ping) run right there, in order, so they are
//     processed before anything the client sent after them.
//   - Every channel has one goroutine that runs its handler's Handle for each
//     command, in arrival order. The read loop hands commands over through a
//     byte-bounded inbox and waits when it is full (backpressure reaches the
//     client's socket, memory does not grow).
//   - Every session has one writer goroutine, the only one that writes to its
//     Conn. Everything sent to a session goes through its queue, which is
//     bounded in bytes; a session whose queue overflows is closed, so a slow
//     reader never blocks anyone else.
//
// The [Hub] owns every goroutine it starts and waits for them in
// [Hub.Shutdown].
//
// # Ordering guarantees
//
// Messages sent on a channel reach every member in the order the channel
// sent them. A session receives openChanRes before anything on the new
// channel, and nothing on a channel id after its closeChanRes.
package channels
