package web

import (
	"log/slog"
	"strings"
	"sync"
	"time"
)

// refusalLog logs refused requests without letting a client flood the log:
// at most burst records per interval; the rest are counted and reported
// with the next record that gets through.
type refusalLog struct {
	log      *slog.Logger
	burst    int
	interval time.Duration
	now      func() time.Time

	// mu guards the following.
	mu         sync.Mutex
	windowFrom time.Time
	inWindow   int
	suppressed int
}

func newRefusalLog(log *slog.Logger) *refusalLog {
	return &refusalLog{log: log, burst: 20, interval: 10 * time.Second, now: time.Now}
}

// Warn logs msg with args unless the budget of this interval is spent.
func (l *refusalLog) Warn(msg string, args ...any) {
	l.mu.Lock()
	now := l.now()
	if now.Sub(l.windowFrom) >= l.interval {
		l.windowFrom, l.inWindow = now, 0
	}
	if l.inWindow >= l.burst {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.inWindow++
	suppressed := l.suppressed
	l.suppressed = 0
	l.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed_before", suppressed)
	}
	l.log.Warn(msg, args...)
}

// redactPath hides the token of a /wsv2/ path, so a refused request's path
// can be logged.
func redactPath(path string) string {
	if strings.HasPrefix(path, "/wsv2/") {
		return "/wsv2/<token>"
	}
	return truncate(path, 100)
}
