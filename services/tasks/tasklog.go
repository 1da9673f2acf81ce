package tasks

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/services/logs/lines"
)

// taskLog is a task's log: a file of JSON lines, one per log line, that
// only grows while the task runs and is capped in bytes. Readers read the
// file themselves up to the size the log reports, which only ever covers
// complete lines, and wait on changed for more.
type taskLog struct {
	path     string
	capBytes int64

	// mu guards the following.
	mu        sync.Mutex
	f         *os.File // open for appending while the task runs
	size      int64    // bytes of complete lines in the file
	lines     uint64   // lines in the file
	truncated bool     // the cap was reached; later lines are dropped
	dropped   uint64   // lines dropped since
	failed    bool     // a write failed; nothing more is written
	done      bool     // the task has ended: the log is complete
	changed   chan struct{}
}

// storedLine is one line of the file.
type storedLine struct {
	Time   int64  `json:"t"` // unix milliseconds
	Stream int32  `json:"s"` // api.LogLine_Stream
	Text   string `json:"x"`
}

func newTaskLog(path string, capBytes int64) *taskLog {
	return &taskLog{path: path, capBytes: capBytes, changed: make(chan struct{})}
}

// loadedTaskLog is the log of a task that ended before this daemon
// started: complete, as the file holds it.
func loadedTaskLog(path string, capBytes int64) *taskLog {
	l := newTaskLog(path, capBytes)
	if info, err := os.Stat(path); err == nil {
		l.size = info.Size()
	}
	l.done = true
	close(l.changed)
	return l
}

// open creates the file for a task that starts.
func (l *taskLog) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("tasks: log: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.f = f
	return nil
}

// append adds line; past the cap it writes the truncation marker once and
// drops the rest. It returns a write error once, for the caller to report.
func (l *taskLog) append(line lines.Line) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil || l.failed || l.done {
		return nil
	}
	if l.truncated {
		l.dropped++
		return nil
	}
	data := encodeLine(line)
	if l.size+int64(len(data)) > l.capBytes {
		l.truncated = true
		l.dropped++
		data = encodeLine(lines.System(fmt.Sprintf("[log truncated: it reached its cap of %d bytes; later output is dropped]", l.capBytes)))
	}
	return l.writeLocked(data)
}

// finish completes the log: it says how many lines were dropped, closes
// the file and wakes every reader.
func (l *taskLog) finish() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if l.f != nil {
		if l.dropped > 0 && !l.failed {
			err = l.writeLocked(encodeLine(lines.System(fmt.Sprintf("[%d lines dropped]", l.dropped))))
		}
		if cerr := l.f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("tasks: log: %w", cerr)
		}
		l.f = nil
	}
	if !l.done {
		l.done = true
		close(l.changed)
	}
	return err
}

func (l *taskLog) writeLocked(data []byte) error {
	if _, err := l.f.Write(data); err != nil {
		l.failed = true
		return fmt.Errorf("tasks: log: %w", err)
	}
	l.size += int64(len(data))
	l.lines++
	close(l.changed)
	l.changed = make(chan struct{})
	return nil
}

// state returns how much of the file is complete, whether the log has
// ended, and a channel closed when that changes.
func (l *taskLog) state() (size int64, done bool, changed <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size, l.done, l.changed
}

// lineCount is the number of lines written so far.
func (l *taskLog) lineCount() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines
}

func (l *taskLog) isTruncated() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.truncated
}

func encodeLine(line lines.Line) []byte {
	data, _ := json.Marshal(storedLine{Time: line.Time.UnixMilli(), Stream: int32(line.Stream), Text: line.Text})
	return append(data, '\n')
}

// logReader reads a task's log file in order, one line at a time, never
// past the size the log reports complete.
type logReader struct {
	path string
	f    *os.File
	r    *bufio.Reader // reads the file from pos up to end
	pos  int64         // offset of the next line in the file
	end  int64
	seq  uint64
}

// next returns the next line if it lies before limit (the log's complete
// size); ok is false when there is none yet. A line that cannot be decoded
// (the torn tail of a crash) is skipped.
func (lr *logReader) next(limit int64) (line lines.Line, ok bool, err error) {
	for lr.pos < limit {
		if lr.f == nil {
			f, err := os.Open(lr.path)
			if errors.Is(err, fs.ErrNotExist) {
				return lines.Line{}, false, nil
			}
			if err != nil {
				return lines.Line{}, false, fmt.Errorf("tasks: log: %w", err)
			}
			lr.f = f
		}
		if lr.r == nil || lr.pos >= lr.end {
			section := io.NewSectionReader(lr.f, lr.pos, limit-lr.pos)
			if lr.r == nil {
				lr.r = bufio.NewReaderSize(section, 64<<10)
			} else {
				lr.r.Reset(section)
			}
			lr.end = limit
		}
		data, err := lr.r.ReadBytes('\n')
		if len(data) == 0 && errors.Is(err, io.EOF) {
			lr.pos = limit // the file is shorter than its log says: it was cut
			break
		}
		lr.pos += int64(len(data))
		if err != nil && !errors.Is(err, io.EOF) {
			return lines.Line{}, false, fmt.Errorf("tasks: log: %w", err)
		}
		var sl storedLine
		if err != nil || json.Unmarshal(data, &sl) != nil {
			continue // a torn or damaged line
		}
		line = lines.Line{Seq: lr.seq, Stream: api.LogLine_Stream(sl.Stream), Text: sl.Text, Time: time.UnixMilli(sl.Time)}
		lr.seq++
		return line, true, nil
	}
	return lines.Line{}, false, nil
}

func (lr *logReader) close() {
	if lr.f != nil {
		_ = lr.f.Close()
	}
}
