package chat

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/conman-dev/conman/api"
)

func msg(i int) *api.ChatMessage {
	return &api.ChatMessage{Username: "ada", Text: fmt.Sprintf("message %d", i)}
}

// appendN appends messages from..to-1 to l, keeping history as the room
// does.
func appendN(t *testing.T, l *roomLog, history []*api.ChatMessage, keep, from, to int) []*api.ChatMessage {
	t.Helper()
	for i := from; i < to; i++ {
		history = append(history, msg(i))
		if len(history) > keep {
			history = history[len(history)-keep:]
		}
		if err := l.append(msg(i), history); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	return history
}

func checkHistory(t *testing.T, got []*api.ChatMessage, from, to int) {
	t.Helper()
	if len(got) != to-from {
		t.Fatalf("history of %d messages, want %d", len(got), to-from)
	}
	for i, m := range got {
		if want := fmt.Sprintf("message %d", from+i); m.GetText() != want {
			t.Fatalf("history[%d] = %q, want %q", i, m.GetText(), want)
		}
	}
}

func TestLogKeepsTheLastMessagesAndCompacts(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "chat", "room.log")
	const keep = 10
	l, history, err := loadLog(path, keep, 1024)
	if err != nil || len(history) != 0 {
		t.Fatalf("empty log: %v %v", history, err)
	}
	history = appendN(t, l, history, keep, 0, 95)
	if l.records >= compactFactor*keep {
		t.Fatalf("%d records in the log: never compacted", l.records)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != l.size {
		t.Fatalf("file size %v (%v), want %d", fi.Size(), err, l.size)
	}
	l.close()
	checkHistory(t, history, 85, 95)

	l, history, err = loadLog(path, keep, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	checkHistory(t, history, 85, 95)
}

func TestLogCutsOffATornTail(t *testing.T) {
	t.Parallel()
	for _, tail := range [][]byte{
		{0, 0},                         // a torn header
		{0, 0, 0, 9, 1, 2, 3, 4, 'a'},  // a torn body
		{0, 0, 0, 1, 0, 0, 0, 0, 'x'},  // a bad checksum
		{0xff, 0xff, 0xff, 0xff, 0, 0}, // an absurd length
	} {
		t.Run(fmt.Sprintf("%x", tail), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "room.log")
			l, history, err := loadLog(path, 100, 1024)
			if err != nil {
				t.Fatal(err)
			}
			history = appendN(t, l, history, 100, 0, 3)
			l.close()
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(tail)
			f.Close()

			l, history, err = loadLog(path, 100, 1024)
			if err != nil {
				t.Fatal(err)
			}
			checkHistory(t, history, 0, 3)
			// Appends go on from a record boundary.
			history = appendN(t, l, history, 100, 3, 5)
			l.close()
			l, history, err = loadLog(path, 100, 1024)
			if err != nil {
				t.Fatal(err)
			}
			l.close()
			checkHistory(t, history, 0, 5)
		})
	}
}

func TestBucket(t *testing.T) {
	t.Parallel()
	var b bucket
	now := time.Unix(1000, 0)
	for i := 0; i < 3; i++ {
		if !b.take(now, 2, 3) {
			t.Fatalf("take %d of a full bucket refused", i)
		}
	}
	if b.take(now, 2, 3) {
		t.Fatal("an empty bucket gave a token")
	}
	now = now.Add(500 * time.Millisecond) // one token back
	if !b.take(now, 2, 3) || b.take(now, 2, 3) {
		t.Fatal("after half a second at 2/s: want exactly one token")
	}
	now = now.Add(time.Hour) // refills to the burst, no more
	for i := 0; i < 3; i++ {
		if !b.take(now, 2, 3) {
			t.Fatalf("take %d after a long pause refused", i)
		}
	}
	if b.take(now, 2, 3) {
		t.Fatal("the bucket held more than its burst")
	}
}
