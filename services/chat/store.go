package chat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
)

// A room's log is a file of records, each a ChatMessage:
//
//	length  uint32, big-endian: the size of the message
//	crc     uint32, big-endian: CRC-32C of the message
//	message the protobuf encoding of api.ChatMessage
//
// Appends are written and fsynced one record at a time. A record torn by a
// crash, or anything after a damaged record, is cut off when the log is
// next loaded. When the log holds compactFactor times the history it keeps,
// it is rewritten with the history alone (a new file, fsynced, renamed over
// the old one).
const (
	recordHeader  = 8
	compactFactor = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// roomLog is the durable log of one room. It is not safe for concurrent
// use: its room's mutex guards it.
type roomLog struct {
	path      string
	maxRecord int      // the largest message a record may hold
	f         *os.File // nil until the first append
	size      int64    // bytes of whole records in the file
	records   int
	broken    error // set when the file could not be restored after a failed write
	// reserve, when set, is asked before the file is created.
	reserve func() error
}

// loadLog reads the log at path, keeping its last keep messages, and cuts
// off a torn or damaged tail. A missing file is an empty log.
func loadLog(path string, keep, maxRecord int) (*roomLog, []*api.ChatMessage, error) {
	l := &roomLog{path: path, maxRecord: maxRecord}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("chat log: %w", err)
	}
	var history []*api.ChatMessage
	off := 0
	for len(raw)-off >= recordHeader {
		n := int(binary.BigEndian.Uint32(raw[off:]))
		sum := binary.BigEndian.Uint32(raw[off+4:])
		if n > maxRecord || len(raw)-off-recordHeader < n {
			break
		}
		body := raw[off+recordHeader : off+recordHeader+n]
		if crc32.Checksum(body, castagnoli) != sum {
			break
		}
		msg := new(api.ChatMessage)
		if err := proto.Unmarshal(body, msg); err != nil {
			break
		}
		history = append(history, msg)
		if len(history) > keep {
			history = history[1:]
		}
		off += recordHeader + n
		l.records++
	}
	l.size = int64(off)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("chat log: %w", err)
	}
	if off < len(raw) {
		if err := truncateSync(f, l.size); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("chat log: cut off a damaged tail: %w", err)
		}
	}
	l.f = f
	return l, history, nil
}

func truncateSync(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

func encodeRecord(msg *api.ChatMessage) ([]byte, error) {
	body, err := proto.Marshal(msg)
	if err != nil {
		return nil, err
	}
	rec := make([]byte, recordHeader, recordHeader+len(body))
	binary.BigEndian.PutUint32(rec, uint32(len(body)))
	binary.BigEndian.PutUint32(rec[4:], crc32.Checksum(body, castagnoli))
	return append(rec, body...), nil
}

// append writes msg durably. history is the room's history including msg,
// used when the log is due for compaction.
func (l *roomLog) append(msg *api.ChatMessage, history []*api.ChatMessage) error {
	if l.broken != nil {
		return l.broken
	}
	rec, err := encodeRecord(msg)
	if err != nil {
		return fmt.Errorf("chat log: %w", err)
	}
	if len(rec)-recordHeader > l.maxRecord {
		return fmt.Errorf("chat log: message of %d bytes is over the record limit", len(rec)-recordHeader)
	}
	if l.f == nil {
		if l.reserve != nil {
			if err := l.reserve(); err != nil {
				return err
			}
			l.reserve = nil // reserved once, even if creating fails
		}
		if err := l.create(); err != nil {
			return err
		}
	}
	if _, err := l.f.Write(rec); err != nil {
		l.restore()
		return fmt.Errorf("chat log: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		l.restore()
		return fmt.Errorf("chat log: %w", err)
	}
	l.size += int64(len(rec))
	l.records++
	if l.records >= compactFactor*max(len(history), 1) && l.records > len(history) {
		if err := l.compact(history); err != nil {
			// The log is still whole, only longer than it should be.
			return nil
		}
	}
	return nil
}

// restore cuts a partly written record off, so the next append starts on a
// record boundary; when even that fails the log refuses further appends.
func (l *roomLog) restore() {
	if err := truncateSync(l.f, l.size); err != nil {
		l.broken = fmt.Errorf("chat log: unusable after a failed write: %w", err)
	}
}

// create makes the log's file and its directory entry durable.
func (l *roomLog) create() error {
	if err := os.MkdirAll(filepath.Dir(l.path), 0o700); err != nil {
		return fmt.Errorf("chat log: %w", err)
	}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("chat log: %w", err)
	}
	if err := syncDir(filepath.Dir(l.path)); err != nil {
		f.Close()
		return fmt.Errorf("chat log: %w", err)
	}
	l.f = f
	return nil
}

// compact replaces the log by one holding history alone.
func (l *roomLog) compact(history []*api.ChatMessage) error {
	var buf bytes.Buffer
	for _, msg := range history {
		rec, err := encodeRecord(msg)
		if err != nil {
			return err
		}
		buf.Write(rec)
	}
	tmp, err := os.CreateTemp(filepath.Dir(l.path), ".compact-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	size := int64(buf.Len())
	if _, err := io.Copy(tmp, &buf); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), l.path); err != nil {
		return err
	}
	// From here on the path names the new file, whatever happens.
	dirErr := syncDir(filepath.Dir(l.path))
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		// The old descriptor names the replaced file: appends through it
		// would be lost, so stop appending.
		l.broken = fmt.Errorf("chat log: reopen after compaction: %w", err)
		return l.broken
	}
	l.f.Close()
	l.f = f
	l.size = size
	l.records = len(history)
	return dirErr
}

// close releases the file.
func (l *roomLog) close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
