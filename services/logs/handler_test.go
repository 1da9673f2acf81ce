package logs

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is an inner handler that keeps what it is given.
type recorder struct {
	level slog.Level
	mu    *sync.Mutex
	msgs  *[]string
}

func newRecorder(level slog.Level) recorder {
	return recorder{level: level, mu: new(sync.Mutex), msgs: new([]string)}
}

func (r recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }
func (r recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.msgs = append(*r.msgs, rec.Message)
	return nil
}
func (r recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r recorder) WithGroup(string) slog.Handler      { return r }

func (r recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), *r.msgs...)
}

func brokerOf(t *testing.T, h slog.Handler) *broker {
	t.Helper()
	wrapped, ok := h.(*handler)
	if !ok {
		t.Fatalf("Wrap returned %T", h)
	}
	return wrapped.broker
}

func next(t *testing.T, sub *subscription) queued {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, ok := sub.next(ctx)
	if !ok {
		t.Fatal("no entry in time")
	}
	return q
}

// TestSlowSubscriber: a subscriber that does not read never holds the
// logger up; it misses records, counted, and learns where.
func TestSlowSubscriber(t *testing.T) {
	inner := newRecorder(slog.LevelInfo)
	h := Wrap(inner)
	b := brokerOf(t, h)
	var drops atomic.Int64
	sub := b.subscribe(slog.LevelInfo, 4, func() { drops.Add(1) })
	defer b.unsubscribe(sub)

	log := slog.New(h)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 100 {
			log.Info("record", "i", i)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the logger blocked on a subscriber that does not read")
	}
	if n := len(inner.got()); n != 100 {
		t.Fatalf("the inner handler got %d records, want 100", n)
	}
	for i := range 4 {
		q := next(t, sub)
		if q.entry == nil || q.droppedBefore != 0 || q.entry.Attrs[0].Value != string(rune('0'+i)) {
			t.Fatalf("entry %d: %+v", i, q)
		}
	}
	// The buffer is empty: the gap is reported on its own.
	if q := next(t, sub); q.entry != nil || q.droppedBefore != 96 {
		t.Fatalf("gap notice %+v, want 96 dropped", q)
	}
	if drops.Load() != 96 {
		t.Errorf("onDrop called %d times", drops.Load())
	}
	log.Info("after")
	if q := next(t, sub); q.entry == nil || q.entry.Message != "after" || q.droppedBefore != 0 {
		t.Fatalf("after the gap: %+v", q)
	}

	// A gap followed by an entry that fits: the count travels with it.
	for range 6 {
		log.Info("burst")
	}
	for range 4 {
		next(t, sub)
	}
	log.Info("late")
	if q := next(t, sub); q.entry == nil || q.entry.Message != "late" || q.droppedBefore != 2 {
		t.Fatalf("entry after a gap: %+v", q)
	}
}

// TestLevels: the wrapped handler is enabled for what a subscriber wants,
// below the inner handler's level, and the inner handler only gets its
// own.
func TestLevels(t *testing.T) {
	inner := newRecorder(slog.LevelWarn)
	h := Wrap(inner)
	b := brokerOf(t, h)
	ctx := context.Background()
	if h.Enabled(ctx, slog.LevelDebug) || h.Enabled(ctx, slog.LevelInfo) || !h.Enabled(ctx, slog.LevelWarn) {
		t.Fatal("without subscribers, Enabled should be the inner handler's")
	}
	sub := b.subscribe(slog.LevelInfo, 16, nil)
	if !h.Enabled(ctx, slog.LevelInfo) || h.Enabled(ctx, slog.LevelDebug) {
		t.Fatal("with an info subscriber, info should be enabled and debug not")
	}
	log := slog.New(h)
	log.Debug("debug")
	log.Info("info")
	log.Error("error")
	if got := inner.got(); len(got) != 1 || got[0] != "error" {
		t.Errorf("inner handler got %q", got)
	}
	for _, want := range []string{"info", "error"} {
		if q := next(t, sub); q.entry.Message != want {
			t.Errorf("subscriber got %q, want %q", q.entry.Message, want)
		}
	}
	b.setLevel(sub, slog.LevelError)
	if h.Enabled(ctx, slog.LevelInfo) {
		t.Error("after raising the level, info should not be enabled")
	}
	b.unsubscribe(sub)
	if h.Enabled(ctx, slog.LevelInfo) {
		t.Error("after the last subscriber left, info should not be enabled")
	}
}

type secretValuer struct{}

func (secretValuer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("password", "hunter2"), slog.String("user", "ada"))
}

func TestRedaction(t *testing.T) {
	h := Wrap(newRecorder(slog.LevelError))
	b := brokerOf(t, h)
	sub := b.subscribe(slog.LevelDebug, 16, nil)
	defer b.unsubscribe(sub)
	token := "v2.public.eyJ1c2VyIjoiYWRhIn0.c2lnbmF0dXJl"
	log := slog.New(h).With("session", 7, "auth_token", token).WithGroup("req")
	log.Info("dial /wsv2/"+token+" refused",
		"path", "/wsv2/"+token,
		"API_KEY", "k-123",
		"secret", "s",
		slog.Group("db", "password", "p", "host", "h"),
		"creds", secretValuer{},
		"err", errors.New("bad token "+token),
		"bytes", []byte("\xff\xfe"),
	)
	e := next(t, sub).entry
	if e.Message != "dial /wsv2/"+Redacted+" refused" {
		t.Errorf("message %q", e.Message)
	}
	want := map[string]string{
		"session":            "7",
		"auth_token":         Redacted,
		"req.path":           "/wsv2/" + Redacted,
		"req.API_KEY":        Redacted,
		"req.secret":         Redacted,
		"req.db.password":    Redacted,
		"req.db.host":        "h",
		"req.creds.password": Redacted,
		"req.creds.user":     "ada",
		"req.err":            "bad token " + Redacted,
		"req.bytes":          "[255 254]",
	}
	got := map[string]string{}
	for _, a := range e.Attrs {
		got[a.Key] = a.Value
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("attrs %v", got)
	}
}
