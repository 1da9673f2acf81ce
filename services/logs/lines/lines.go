// Package lines turns the output of a process into timestamped lines and
// streams logs of such lines to sessions. The tasks and services services
// share it: each keeps its own log (a file, a ring) of [Line]s.
//
// It owns cutting a pipe's bytes into lines ([Reader]), the bounded
// in-memory log [Ring], and pacing a stream to one session ([Send]). It
// must not know what a task or a service is, and it never starts or stops
// a process.
//
// # Concurrency
//
// A [Reader] is used by one goroutine (its Run), except for
// [Reader.ProcessExited], which any goroutine may call. A [Ring] is safe for
// concurrent use.
package lines

import (
	"context"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
)

// Line is one line of a log.
type Line struct {
	// Seq is the line's position in its log, from 0 (set by the log).
	Seq    uint64
	Stream api.LogLine_Stream
	// Text is valid UTF-8 without the line's newline.
	Text string
	Time time.Time
}

// Proto is l as the wire message for source (a task id, a service name).
func (l Line) Proto(source string, replayed bool) *api.LogLine {
	return &api.LogLine{
		Source:   source,
		Seq:      l.Seq,
		Stream:   l.Stream,
		Text:     l.Text,
		Time:     l.Time.UnixMilli(),
		Replayed: replayed,
	}
}

// System returns a line conman adds to a log (a start, an exit, a marker).
func System(text string) Line {
	return Line{Stream: api.LogLine_SYSTEM, Text: text, Time: time.Now()}
}

// Send waits until at most half of s's write queue is full, then sends cmd
// to s on ch. A stream sent this way goes at the session's pace and never
// overflows its queue. It reports false when ctx ends or s closes first.
func Send(ctx context.Context, ch *channels.Channel, s *channels.Session, cmd *api.Command) bool {
	if err := s.WaitQueueBelow(ctx, s.QueueLimit()/2); err != nil {
		return false
	}
	ch.SendTo(s, cmd)
	return true
}
