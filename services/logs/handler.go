package logs

import (
	"context"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Wrap returns a handler that hands every record h is enabled for to h,
// and every record to the subscribers of the logs service, each at its own
// level. Subscribers never slow the logger down: a subscriber whose buffer
// is full misses records, counted. The daemon applies it to its logger
// before building the services; the logs service finds it there.
func Wrap(h slog.Handler) slog.Handler {
	b := &broker{subs: make(map[*subscription]struct{})}
	b.minLevel.Store(math.MaxInt64)
	return &handler{inner: h, broker: b}
}

// handler is Wrap's handler. Children made by WithAttrs and WithGroup
// share the broker.
type handler struct {
	inner  slog.Handler
	broker *broker
	prefix string // the open groups, as "a.b."
	attrs  []Attr // from WithAttrs, rendered and redacted
}

func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.broker.wants(level) || h.inner.Enabled(ctx, level)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	if h.broker.wants(r.Level) {
		h.broker.publish(h.entry(r))
	}
	if !h.inner.Enabled(ctx, r.Level) {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	child := *h
	child.inner = h.inner.WithAttrs(attrs)
	child.attrs = slices.Clip(h.attrs)
	for _, a := range attrs {
		child.attrs = appendAttr(child.attrs, h.prefix, a)
	}
	return &child
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	child := *h
	child.inner = h.inner.WithGroup(name)
	child.prefix = h.prefix + name + "."
	return &child
}

// entry renders r for the subscribers.
func (h *handler) entry(r slog.Record) *Entry {
	e := &Entry{
		Time:    r.Time,
		Level:   r.Level,
		Message: clean(r.Message),
		Attrs:   make([]Attr, 0, len(h.attrs)+r.NumAttrs()),
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Attrs = append(e.Attrs, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		e.Attrs = appendAttr(e.Attrs, h.prefix, a)
		return true
	})
	return e
}

// Entry is a log record as subscribers see it: rendered, flattened and
// redacted. It is shared by every subscriber and never changed.
type Entry struct {
	Time    time.Time
	Level   slog.Level
	Message string
	Attrs   []Attr
}

// Attr is one attribute of an [Entry]; keys of groups are joined by dots.
type Attr struct {
	Key, Value string
}

// Redacted replaces the value of an attribute that may hold a secret.
const Redacted = "[redacted]"

// secretKeyParts mark an attribute as secret when its lower-cased key (any
// of its group path) contains one of them.
var secretKeyParts = []string{"token", "secret", "password", "passwd", "key", "credential", "authorization", "cookie"}

// tokenPattern matches what looks like a token anywhere in a text: PASETO
// tokens (the daemon's own kind) and JSON web tokens.
var tokenPattern = regexp.MustCompile(`v[1-4]\.(?:public|local)\.[A-Za-z0-9_\-.]+|eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+`)

// isSecretKey reports whether an attribute named key may hold a secret.
func isSecretKey(key string) bool {
	lower := strings.ToLower(key)
	for _, part := range secretKeyParts {
		if strings.Contains(lower, part) {
			return true
		}
	}
	return false
}

// clean makes s fit to send: whatever looks like a token is replaced, and
// bytes that are not UTF-8 (which a protobuf string cannot hold) become
// U+FFFD.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if !strings.Contains(s, ".") {
		return s
	}
	return tokenPattern.ReplaceAllString(s, Redacted)
}

// appendAttr flattens a (resolving values, opening groups) onto attrs,
// redacting secrets.
func appendAttr(attrs []Attr, prefix string, a slog.Attr) []Attr {
	a.Value = a.Value.Resolve()
	if a.Value.Kind() == slog.KindGroup {
		inner := prefix
		if a.Key != "" {
			inner = prefix + a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			attrs = appendAttr(attrs, inner, ga)
		}
		return attrs
	}
	if a.Equal(slog.Attr{}) {
		return attrs
	}
	key := prefix + a.Key
	value := Redacted
	if !isSecretKey(key) {
		value = clean(renderValue(a.Value))
	}
	return append(attrs, Attr{Key: strings.ToValidUTF8(key, "\uFFFD"), Value: value})
}

func renderValue(v slog.Value) string {
	if v.Kind() == slog.KindTime {
		return v.Time().Format(time.RFC3339Nano)
	}
	return v.String()
}

// broker fans entries out to the subscriptions.
type broker struct {
	// minLevel is the lowest level any subscription wants, as an int64
	// (math.MaxInt64 when there is none): a cheap test for Enabled.
	minLevel atomic.Int64

	// mu guards the following. Publishing holds it for reading; it never
	// waits for a subscriber.
	mu   sync.RWMutex
	subs map[*subscription]struct{}
}

func (b *broker) wants(level slog.Level) bool {
	return int64(level) >= b.minLevel.Load()
}

func (b *broker) publish(e *Entry) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for s := range b.subs {
		if e.Level >= s.level {
			s.offer(e)
		}
	}
}

// subscribe adds a subscription at level with room for buffer entries;
// onDrop, when set, is called for each entry it misses.
func (b *broker) subscribe(level slog.Level, buffer int, onDrop func()) *subscription {
	s := &subscription{
		broker:  b,
		level:   level,
		entries: make(chan queued, buffer),
		onDrop:  onDrop,
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs[s] = struct{}{}
	b.updateMinLocked()
	return s
}

// setLevel changes the level of s.
func (b *broker) setLevel(s *subscription, level slog.Level) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s.level = level
	b.updateMinLocked()
}

// unsubscribe removes s; it receives nothing more.
func (b *broker) unsubscribe(s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs, s)
	b.updateMinLocked()
}

func (b *broker) updateMinLocked() {
	low := int64(math.MaxInt64)
	for s := range b.subs {
		low = min(low, int64(s.level))
	}
	b.minLevel.Store(low)
}

// subscription is one subscriber's buffer. Entries that do not fit are
// dropped and counted; the count travels with the next entry that fits,
// so the reader knows exactly where the gap is.
type subscription struct {
	broker  *broker
	level   slog.Level // guarded by broker.mu
	entries chan queued
	onDrop  func()

	// mu guards the following; it is held only around a non-blocking
	// send.
	mu      sync.Mutex
	dropped uint64 // since the last entry that fitted
}

// queued is an entry in a subscription's buffer.
type queued struct {
	entry         *Entry
	droppedBefore uint64 // entries missed just before this one
}

// offer queues e without waiting.
func (s *subscription) offer(e *Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case s.entries <- queued{entry: e, droppedBefore: s.dropped}:
		s.dropped = 0
	default:
		s.dropped++
		if s.onDrop != nil {
			s.onDrop()
		}
	}
}

// next waits for the next entry. With the buffer empty and entries missed
// since the last one, it returns a nil entry and the count, so that the
// gap is reported even when no entry follows it. It reports false when ctx
// ends.
func (s *subscription) next(ctx context.Context) (q queued, ok bool) {
	select {
	case q = <-s.entries:
		return q, true
	default:
	}
	s.mu.Lock()
	if s.dropped > 0 && len(s.entries) == 0 {
		q.droppedBefore, s.dropped = s.dropped, 0
		s.mu.Unlock()
		return q, true
	}
	s.mu.Unlock()
	select {
	case q = <-s.entries:
		return q, true
	case <-ctx.Done():
		return queued{}, false
	}
}
