package pty

import (
	"bytes"
	"strings"
	"testing"
)

func TestScrollback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		limit      int
		writes     []string
		wantOldest int64
	}{
		{"empty", 8, nil, 0},
		{"under the limit", 8, []string{"abc", "de"}, 0},
		{"exactly full", 8, []string{"abcd", "efgh"}, 0},
		{"wraps", 8, []string{"abcd", "efgh", "ij"}, 2},
		{"wraps many times", 8, []string{"abcde", "fghij", "klmno", "pqrst", "u"}, 13},
		{"one write over the limit", 8, []string{"abcdefghijklmnopqrstu"}, 13},
		{"big write after wrapping", 8, []string{"abc", "defghijklmnop", "qrstu"}, 13},
		{"limit of one", 1, []string{"ab", "c"}, 2},
		{"large", 5000, []string{strings.Repeat("x", 4000), strings.Repeat("y", 4000)}, 3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newScrollback(tt.limit)
			stream := ""
			for _, w := range tt.writes {
				b.write([]byte(w))
				stream += w
			}
			if b.written != int64(len(stream)) {
				t.Fatalf("written %d, want %d", b.written, len(stream))
			}
			if got := b.oldest(); got != tt.wantOldest {
				t.Fatalf("oldest %d, want %d", got, tt.wantOldest)
			}
			if cap(b.ring) > tt.limit {
				t.Errorf("ring capacity %d over the limit %d", cap(b.ring), tt.limit)
			}
			for from := tt.wantOldest; from <= b.written; from++ {
				got := b.appendFrom([]byte("prefix"), from)
				if want := "prefix" + stream[from:]; string(got) != want {
					t.Errorf("appendFrom(%d) = %q, want %q", from, got, want)
				}
			}
		})
	}
}

func TestScrollbackManySmallWrites(t *testing.T) {
	t.Parallel()
	b := newScrollback(1000)
	var stream bytes.Buffer
	for i := range 5000 {
		chunk := bytes.Repeat([]byte{byte('a' + i%26)}, i%7+1)
		b.write(chunk)
		stream.Write(chunk)
	}
	want := stream.Bytes()[stream.Len()-1000:]
	if got := b.appendFrom(nil, b.oldest()); !bytes.Equal(got, want) {
		t.Errorf("retained bytes differ from the stream's last 1000")
	}
}
