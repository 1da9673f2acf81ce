package web

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRefusalLogIsBounded(t *testing.T) {
	var buf bytes.Buffer
	l := newRefusalLog(slog.New(slog.NewTextHandler(&buf, nil)))
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	for i := 0; i < 1000; i++ {
		l.Warn("token refused", "reason", "malformed")
	}
	if got := strings.Count(buf.String(), "token refused"); got != l.burst {
		t.Fatalf("%d records in one interval, want %d", got, l.burst)
	}
	now = now.Add(l.interval)
	buf.Reset()
	l.Warn("token refused", "reason", "expired")
	if !strings.Contains(buf.String(), "suppressed_before=980") {
		t.Fatalf("the next record does not report what was dropped: %s", buf.String())
	}
}

func TestRedactPath(t *testing.T) {
	for path, want := range map[string]string{
		"/wsv2/v2.public.secret": "/wsv2/<token>",
		"/wsv2/":                 "/wsv2/<token>",
		"/metrics":               "/metrics",
	} {
		if got := redactPath(path); got != want {
			t.Errorf("redactPath(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestFrameBufSizes(t *testing.T) {
	for _, n := range []int{1, 512, 513, 64 << 10, 1 << 20} {
		b, pool := frameBuf(n)
		if cap(b) < n || len(b) != 0 || pool < 0 {
			t.Errorf("frameBuf(%d): len %d cap %d pool %d", n, len(b), cap(b), pool)
		}
	}
	if b, pool := frameBuf(1<<20 + 1); pool != -1 || cap(b) < 1<<20+1 {
		t.Errorf("an oversized frame came from pool %d with cap %d", pool, cap(b))
	}
}
