package packager

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services/packager/backend"
)

// wireError is the one place an error becomes the text of an `error`
// reply: classified errors read as their wrapped reason, context ends as
// what happened, and the text is always valid UTF-8 (protobuf strings must
// be).
func wireError(err error) error {
	var text string
	switch {
	case errors.Is(err, channels.ErrUnsupported):
		return err // the channel names the service in its text
	case errors.Is(err, channels.ErrPermissionDenied):
		return err
	case errors.Is(err, context.Canceled):
		text = "canceled"
	case errors.Is(err, context.DeadlineExceeded) && backend.KindOf(err) == backend.KindInternal:
		text = "timed out"
	default:
		text = err.Error()
	}
	return errors.New(strings.ToValidUTF8(text, "\uFFFD"))
}

// toAPI is the wire form of p.
func toAPI(p backend.Package) *api.Package {
	v := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
	out := &api.Package{
		Name:             v(p.Name),
		Spec:             v(p.Spec),
		Description:      v(p.Description),
		Version:          v(p.Version),
		HomepageURL:      v(p.Homepage),
		DocumentationURL: v(p.Documentation),
		SourceCodeURL:    v(p.Source),
		BugTrackerURL:    v(p.BugTracker),
		Author:           v(p.Author),
		License:          v(p.License),
	}
	for _, d := range p.Dependencies {
		out.Dependencies = append(out.Dependencies, toAPI(d))
	}
	return out
}

func stateCommand(state api.State) *api.Command {
	return &api.Command{Body: &api.Command_State{State: state}}
}

func outputCommand(text string) *api.Command {
	return &api.Command{Body: &api.Command_Output{Output: text}}
}

// Pace of the info-level log lines clients can cause.
const (
	logBurst  = 30
	logWindow = time.Minute
)

// logLimiter paces log lines: at most logBurst a logWindow; the next line
// let through reports how many were dropped.
type logLimiter struct {
	// mu guards the following.
	mu      sync.Mutex
	start   time.Time
	count   int
	dropped int
}

func newLogLimiter() *logLimiter { return &logLimiter{} }

// allow reports whether a line may be logged now and how many were
// dropped before it.
func (l *logLimiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= logWindow {
		l.start, l.count = now, 0
	}
	if l.count >= logBurst {
		l.dropped++
		return false, 0
	}
	l.count++
	dropped := l.dropped
	l.dropped = 0
	return true, dropped
}

// logInfo logs at info level within the service's pace.
func (s *Service) logInfo(msg string, attrs ...any) {
	ok, dropped := s.logs.allow(time.Now())
	if !ok {
		return
	}
	if dropped > 0 {
		attrs = append(attrs, "dropped_log_lines", dropped)
	}
	s.log.Info(msg, attrs...)
}
