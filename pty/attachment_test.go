package pty

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// seqOutput is what `seq 1 n` prints through a terminal in sane mode.
func seqOutput(n int) []byte {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d\r\n", i)
	}
	return b.Bytes()
}

// startSeq starts `seq 1 n` once a line is typed, so that attachments can
// be made first. The typed newline is echoed as CR NL before seq's output.
func startSeq(t *testing.T, opts Options, n int) (s *Session, start func(), want []byte) {
	t.Helper()
	s = startShell(t, opts, "read line; exec seq 1 "+strconv.Itoa(n))
	start = func() {
		if err := s.Input(testContext(t), []byte("\n")); err != nil {
			t.Fatal(err)
		}
	}
	return s, start, append([]byte("\r\n"), seqOutput(n)...)
}

func TestAttachAfterOutputGetsItOnce(t *testing.T) {
	t.Parallel()
	s := startShell(t, Options{}, "echo first; read line; echo second")
	early := newReader(t, s.Attach())
	early.until("first\r\n")

	late := s.Attach()
	if late.Offset() != 0 || late.Lost() != 0 {
		t.Errorf("late attachment starts at %d with %d lost, want 0 and 0", late.Offset(), late.Lost())
	}
	chunk, err := late.Next(testContext(t))
	if err != nil || string(chunk) != "first\r\n" {
		t.Fatalf("snapshot %q, %v; want %q", chunk, err, "first\r\n")
	}
	lateReader := newReader(t, late)
	lateReader.got.Write(chunk)

	if err := s.Input(testContext(t), []byte("go\n")); err != nil {
		t.Fatal(err)
	}
	const want = "first\r\ngo\r\nsecond\r\n"
	for name, r := range map[string]*reader{"early": early, "late": lateReader} {
		if got := r.toEnd(); string(got) != want {
			t.Errorf("%s attachment got %q, want %q", name, got, want)
		}
	}
}

// TestAttachDuringFloodHasNoGapOrDuplicate attaches while output pours in:
// each attachment's stream must be exactly the output from its first offset.
func TestAttachDuringFloodHasNoGapOrDuplicate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		scrollbackBytes int
	}{
		{"everything retained", 4 << 20},
		{"small scrollback", 4 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, start, want := startSeq(t, Options{ScrollbackBytes: tt.scrollbackBytes}, 100000)
			first := newReader(t, s.Attach())
			start()
			ctx := testContext(t)
			var late []*Attachment
			for len(late) < 20 {
				chunk, err := first.att.Next(ctx)
				if err != nil {
					break // the output ended before all were attached
				}
				first.got.Write(chunk)
				late = append(late, s.Attach())
			}
			if got := first.toEnd(); !bytes.Equal(got, want) {
				t.Fatalf("first attachment got %d bytes, want %d", len(got), len(want))
			}
			for i, att := range late {
				from := att.Offset()
				if got := newReader(t, att).toEnd(); !bytes.Equal(got, want[from:]) {
					t.Errorf("attachment %d from offset %d: got %d bytes, want the %d after it",
						i, from, len(got), len(want[from:]))
				}
			}
		})
	}
}

func TestResume(t *testing.T) {
	t.Parallel()
	const scrollbackBytes = 100
	s := startShell(t, Options{ScrollbackBytes: scrollbackBytes}, "seq 1 1000")
	all := newReader(t, s.Attach()).toEnd()
	if !bytes.Equal(all, seqOutput(1000)) {
		t.Fatalf("live output differs from seq's")
	}
	written := int64(len(all))
	if stats := s.Stats(); stats.Written != written || stats.Oldest != written-scrollbackBytes {
		t.Fatalf("stats %+v, want %d written and %d retained", stats, written, scrollbackBytes)
	}
	tests := []struct {
		name     string
		attach   func() (*Attachment, error)
		wantLost int64
		wantFrom int64
		wantErr  error
	}{
		{"attach after the end", func() (*Attachment, error) { return s.Attach(), nil }, 0, written - scrollbackBytes, nil},
		{"resume from the start", func() (*Attachment, error) { return s.Resume(0) }, written - scrollbackBytes, written - scrollbackBytes, nil},
		{"resume within", func() (*Attachment, error) { return s.Resume(written - 10) }, 0, written - 10, nil},
		{"resume at the end", func() (*Attachment, error) { return s.Resume(written) }, 0, written, nil},
		{"resume past the end", func() (*Attachment, error) { return s.Resume(written + 1) }, 0, 0, ErrFutureOffset},
		{"negative offset", func() (*Attachment, error) { return s.Resume(-1) }, 0, 0, ErrFutureOffset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			att, err := tt.attach()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if att.Lost() != tt.wantLost || att.Offset() != tt.wantFrom {
				t.Errorf("lost %d from %d, want %d from %d", att.Lost(), att.Offset(), tt.wantLost, tt.wantFrom)
			}
			if got := newReader(t, att).toEnd(); !bytes.Equal(got, all[tt.wantFrom:]) {
				t.Errorf("got %q, want %q", got, all[tt.wantFrom:])
			}
			if att.Offset() != written {
				t.Errorf("offset after the end %d, want %d", att.Offset(), written)
			}
		})
	}
}

func TestDetachAndResumeLive(t *testing.T) {
	t.Parallel()
	s, start, want := startSeq(t, Options{ScrollbackBytes: 4 << 20}, 100000)
	first := newReader(t, s.Attach())
	start()
	ctx := testContext(t)
	var got bytes.Buffer
	for got.Len() < 100000 {
		chunk, err := first.att.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got.Write(chunk)
	}
	first.att.Detach()
	waitFor(t, first.att.Done(), "the detached attachment to be done")
	if _, err := first.att.Next(ctx); !errors.Is(err, ErrDetached) {
		t.Fatalf("Next after Detach: %v, want %v", err, ErrDetached)
	}
	first.att.Detach() // a second Detach does nothing

	resumed, err := s.Resume(first.att.Offset())
	if err != nil {
		t.Fatal(err)
	}
	if resumed.Lost() != 0 {
		t.Errorf("lost %d", resumed.Lost())
	}
	got.Write(newReader(t, resumed).toEnd())
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("detached then resumed: %d bytes, want %d", got.Len(), len(want))
	}
}

func TestNextRespectsContext(t *testing.T) {
	t.Parallel()
	s := startSession(t, Options{}, "sleep", "1000")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Attach().Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next with a cancelled context: %v", err)
	}
}

func TestOutputWithoutAttachments(t *testing.T) {
	t.Parallel()
	// Nobody reads, yet the process is never blocked: the output goes to
	// the scrollback only.
	s := startShell(t, Options{ScrollbackBytes: 1000}, "seq 1 100000")
	wait(t, s)
	want := seqOutput(100000)
	if stats := s.Stats(); stats.Written != int64(len(want)) {
		t.Errorf("written %d, want %d", stats.Written, len(want))
	}
	if got := newReader(t, s.Attach()).toEnd(); !bytes.Equal(got, want[len(want)-1000:]) {
		t.Errorf("scrollback %q", got)
	}
}

func TestStalledAttachmentIsDetached(t *testing.T) {
	t.Parallel()
	const scrollbackBytes = 64 << 10
	s, start, want := startSeq(t, Options{QueueBytes: 64 << 10, ScrollbackBytes: scrollbackBytes}, 300000)
	fast := newReader(t, s.Attach())
	stalled := s.Attach()
	start()
	if got := fast.toEnd(); !bytes.Equal(got, want) {
		t.Fatalf("the reading attachment got %d bytes, want %d", len(got), len(want))
	}
	waitFor(t, stalled.Done(), "the stalled attachment to be detached")
	if err := stalled.Err(); !errors.Is(err, ErrOverflow) {
		t.Fatalf("stalled attachment: %v, want %v", err, ErrOverflow)
	}
	if _, err := stalled.Next(testContext(t)); !errors.Is(err, ErrOverflow) {
		t.Fatalf("Next on the stalled attachment: %v, want %v", err, ErrOverflow)
	}

	// It comes back from where it was; the scrollback no longer has the start.
	resumed, err := s.Resume(stalled.Offset())
	if err != nil {
		t.Fatal(err)
	}
	retainedFrom := int64(len(want) - scrollbackBytes)
	if stalled.Offset() != 0 || resumed.Lost() != retainedFrom {
		t.Errorf("resumed from %d with %d lost, want 0 and %d", stalled.Offset(), resumed.Lost(), retainedFrom)
	}
	if got := newReader(t, resumed).toEnd(); !bytes.Equal(got, want[retainedFrom:]) {
		t.Errorf("resumed attachment got %d bytes, want %d", len(got), scrollbackBytes)
	}
}

// charsWritten returns how many bytes process pid has written so far.
func charsWritten(t *testing.T, pid int) int64 {
	t.Helper()
	counters, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(counters)) {
		if rest, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no wchar in /proc/%d/io", pid)
	return 0
}

// waitBlocked polls until process pid has written nothing new for a while,
// and returns how much it has written.
func waitBlocked(t *testing.T, pid int) int64 {
	t.Helper()
	const samplesAlike = 5
	deadline := time.Now().Add(testTimeout)
	last, alike := charsWritten(t, pid), 0
	for alike < samplesAlike {
		if time.Now().After(deadline) {
			t.Fatalf("process %d keeps writing", pid)
		}
		time.Sleep(20 * time.Millisecond)
		now := charsWritten(t, pid)
		if now == last {
			alike++
		} else {
			last, alike = now, 0
		}
	}
	return last
}

// waitWrites polls until process pid has written more than before.
func waitWrites(t *testing.T, pid int, before int64) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for charsWritten(t, pid) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("process %d stays blocked", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAllAttachmentsStalledBlocksProcess(t *testing.T) {
	t.Parallel()
	paused := make(chan bool, 64)
	opts := Options{
		QueueBytes: 64 << 10,
		OnReadPaused: func(p bool) {
			select {
			case paused <- p:
			default:
			}
		},
	}
	s := startSession(t, opts, "yes")
	first, second := s.Attach(), s.Attach()

	if !waitFor(t, paused, "reading to pause") {
		t.Fatal("reading resumed before it paused")
	}
	blockedAt := waitBlocked(t, s.Pid())
	stats := s.Stats()
	if !stats.ReadPaused || stats.Attachments != 2 {
		t.Errorf("stats %+v, want reading paused with two attachments", stats)
	}
	if waitBlocked(t, s.Pid()); s.Stats().Written != stats.Written {
		t.Errorf("output grew from %d to %d while paused", stats.Written, s.Stats().Written)
	}
	for _, att := range []*Attachment{first, second} {
		if err := att.Err(); err != nil {
			t.Fatalf("a stalled attachment was detached while all were stalled: %v", err)
		}
	}

	// One attachment catching up is enough to read again.
	if _, err := first.Next(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if waitFor(t, paused, "reading to resume") {
		t.Fatal("reading paused again before it resumed")
	}
	waitWrites(t, s.Pid(), blockedAt)
}

// TestFanOutDoesNotAllocate checks that, once warmed up, moving a chunk
// from the reader to two attachments allocates nothing.
func TestFanOutDoesNotAllocate(t *testing.T) {
	opts := Options{ScrollbackBytes: 64 << 10}.withDefaults()
	s := &Session{opts: opts, output: newScrollback(opts.ScrollbackBytes), readerWake: make(chan struct{}, 1)}
	first, second := s.Attach(), s.Attach()
	ctx := context.Background()
	chunk := bytes.Repeat([]byte("x"), 4000)
	cycle := func() {
		for range 3 {
			s.publish(chunk)
		}
		s.announce()
		for _, att := range []*Attachment{first, second} {
			if got, err := att.Next(ctx); err != nil || len(got) != 3*len(chunk) {
				t.Fatalf("Next: %d bytes, %v", len(got), err)
			}
		}
	}
	for range 100 { // fills the scrollback and sizes the queues
		cycle()
	}
	if allocs := testing.AllocsPerRun(100, cycle); allocs != 0 {
		t.Errorf("%v allocations per cycle, want 0", allocs)
	}
}
