package ot

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/ot"
)

var (
	errNoHistory = errors.New("no history")
	errNotText   = errors.New("not a text file (binary or not valid UTF-8)")
	errTooLarge  = errors.New("file too large")
)

// logName is the name of the log of the canonical path rel in the
// history directory.
func logName(rel string) string {
	sum := sha256.Sum256([]byte(rel))
	return hex.EncodeToString(sum[:16]) + ".log"
}

// load reads the document's history and reconciles it with the file. With
// create, a file without history gets one: version 1 inserts its text (an
// empty or missing file stays at version 0). Without create, a file without
// history is errNoHistory. On success the document's goroutines run.
func (d *document) load(create bool) error {
	return d.loadOnce(create, true)
}

// loadOnce is load; quarantine says whether a suspect history may be moved
// aside and replaced.
func (d *document) loadOnce(create, quarantine bool) error {
	content, exists, err := d.readDisk()
	if err != nil {
		return err
	}
	if exists {
		if err := checkText(content, d.svc.opts.MaxDocBytes); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(d.logPath, os.O_RDWR|os.O_APPEND, 0)
	if errors.Is(err, os.ErrNotExist) {
		if !create {
			return errNoHistory
		}
		if err := d.createLog(content, exists); err != nil {
			return err
		}
		f, err = os.OpenFile(d.logPath, os.O_RDWR|os.O_APPEND, 0)
	}
	if err != nil {
		return fmt.Errorf("open history: %w", err)
	}
	mark, err := d.replay(f)
	if errors.Is(err, errBadRecord) && quarantine {
		// The history cannot be trusted: keep it aside for a human and
		// start a new one from the file.
		f.Close()
		d.svc.log.Error("history is inconsistent; starting a new one", "path", d.rel, "err", err)
		if err := d.quarantine(); err != nil {
			return err
		}
		return d.loadOnce(true, false)
	}
	if err != nil {
		f.Close()
		return err
	}
	d.reconcile(content, exists, mark)
	// Make what reconcile appended durable before anyone sees it.
	if len(d.buf) > 0 {
		if err := d.appendLog(d.buf); err != nil {
			f.Close()
			return fmt.Errorf("write history: %w", err)
		}
		d.buf = nil
		d.publishLocked(d.batch)
		d.batch = nil
	}
	d.start()
	return nil
}

// createLog writes a new history for the file's content: a header, version
// 1 inserting the content unless it is empty, and a disk mark. The log
// appears whole or not at all.
func (d *document) createLog(content []byte, exists bool) error {
	buf := appendHeader(nil, d.rel)
	version, sum := uint32(0), crcOf(content)
	if len(content) > 0 {
		version = 1
		var err error
		buf, err = appendPacket(buf, &api.OTPacket{
			SpookyVersion: 1,
			Version:       1,
			Ops:           toWire(ot.Op{ot.Insert(string(content))}),
			Crc32:         sum,
			Committed:     timestamppb.Now(),
		})
		if err != nil {
			return fmt.Errorf("create history: %w", err)
		}
	}
	buf = appendDiskMark(buf, diskMark{version: version, crc: sum, exists: exists})
	if err := writeFileSync(d.logPath, buf); err != nil {
		return fmt.Errorf("create history: %w", err)
	}
	return nil
}

// writeFileSync writes a new file atomically and durably: a temporary file,
// synced, renamed into place, and the directory synced.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a directory's entries durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// quarantine moves the log aside, keeping it for inspection.
func (d *document) quarantine() error {
	aside := strings.TrimSuffix(d.logPath, ".log") + fmt.Sprintf(".corrupt-%d", time.Now().UnixNano())
	if err := os.Rename(d.logPath, aside); err != nil {
		return fmt.Errorf("move history aside: %w", err)
	}
	return syncDir(filepath.Dir(d.logPath))
}

// replay reads the log f: it rebuilds the text, the version index and the
// recent packets, and cuts off a torn tail. It returns the last disk mark.
// Records that are whole but make no sense (a gap in the versions, an op
// that does not apply, a final CRC that disagrees with the text) are
// errBadRecord: the whole log is suspect.
func (d *document) replay(f *os.File) (diskMark, error) {
	var mark diskMark
	rr, err := newRecordReader(f)
	if err != nil {
		return mark, fmt.Errorf("read history: %w", err)
	}
	kind, body, _, err := rr.next()
	if err != nil && !errors.Is(err, errBadRecord) && err != io.EOF {
		return mark, fmt.Errorf("read history: %w", err)
	}
	if err != nil || kind != kindHeader {
		return mark, fmt.Errorf("%w: no header", errBadRecord)
	}
	path, err := parseHeader(body)
	if err != nil {
		return mark, err
	}
	if path != d.rel {
		return mark, fmt.Errorf("%w: the log is for %q", errBadRecord, path)
	}
	text := &ot.Doc{}
	versions := []versionInfo{{offset: -1}}
	window := d.svc.opts.Window
	var recent []*entry
	recentFirst := uint32(1)
	end := rr.offset
	for {
		kind, body, offset, err := rr.next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, errBadRecord) {
			d.svc.log.Warn("history has a torn tail; cutting it off", "path", d.rel, "offset", offset, "err", err)
			break
		}
		if err != nil {
			return mark, fmt.Errorf("read history: %w", err)
		}
		switch kind {
		case kindPacket:
			pkt, err := parsePacket(body)
			if err != nil {
				return mark, err
			}
			v := uint32(len(versions))
			if pkt.Version != v {
				return mark, fmt.Errorf("%w: version %d where %d belongs", errBadRecord, pkt.Version, v)
			}
			op, err := ot.Normalize(fromWire(pkt.Ops))
			if err == nil {
				err = text.Apply(op)
			}
			if err != nil {
				return mark, fmt.Errorf("%w: version %d: %v", errBadRecord, v, err)
			}
			versions = append(versions, versionInfo{offset: offset, crc: pkt.Crc32, runes: text.Len()})
			recent = append(recent, &entry{op: op, pkt: pkt})
			if len(recent) > 2*window {
				drop := len(recent) - window
				recent = append(recent[:0:0], recent[drop:]...)
				recentFirst += uint32(drop)
			}
		case kindDisk:
			if mark, err = parseDiskMark(body); err != nil {
				return mark, err
			}
		default:
			return mark, fmt.Errorf("%w: record of kind %d", errBadRecord, kind)
		}
		end = rr.offset
	}
	latest := uint32(len(versions) - 1)
	if got, want := text.CRC32(), versions[latest].crc; got != want {
		return mark, fmt.Errorf("%w: the text after version %d has CRC %08x, the packet says %08x", errBadRecord, latest, got, want)
	}
	if size, err := f.Seek(0, io.SeekEnd); err != nil {
		return mark, fmt.Errorf("read history: %w", err)
	} else if size > end {
		if err := f.Truncate(end); err != nil {
			return mark, fmt.Errorf("cut torn tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			return mark, fmt.Errorf("cut torn tail: %w", err)
		}
	}
	pub, err := ot.NewDoc(text.String())
	if err != nil {
		return mark, fmt.Errorf("%w: %v", errBadRecord, err)
	}
	d.file = f
	d.text, d.pub = text, pub
	d.latest, d.published = latest, latest
	d.versions = versions
	d.recent, d.recentFirst = recent, recentFirst
	d.nextOffset = end
	return mark, nil
}

// reconcile compares the file with the history after loading. The file
// holds a version of the history when it was last written by the daemon
// (one at or after the last disk mark, which may be behind if the daemon
// died before writing the newest): then it is brought up to date later.
// Otherwise it was changed while the daemon was not watching, and the
// difference becomes the next version, so the history stays replayable.
func (d *document) reconcile(content []byte, exists bool, mark diskMark) {
	if mark.version > d.latest {
		mark = diskMark{}
	}
	if !exists {
		if !mark.exists || d.text.Len() == 0 {
			// Never written, or deleted with nothing to lose: the next
			// write brings it back.
			d.disk = diskState{version: 0}
			if d.text.Len() == 0 {
				d.disk.version = d.latest
			}
			d.dirtySince = time.Now()
			return
		}
		// Deleted while the daemon was away: an empty file is the truth.
		v, err := d.submitLocked(submission{base: d.latest, op: ot.Op{ot.Delete(d.text.Len())}})
		if err != nil {
			d.svc.warn("deletion not imported", "path", d.rel, "err", err)
			return
		}
		d.disk = diskState{version: v, min: v}
		d.appendMarkLocked(diskMark{version: v})
		return
	}
	sum := crcOf(content)
	for v := d.latest; ; v-- {
		if d.versions[v].crc == sum {
			d.disk = diskState{version: v, exists: true, crc: sum}
			if v < d.latest {
				d.dirtySince = time.Now()
			}
			return
		}
		if v == mark.version {
			break
		}
	}
	if err := d.importLocked(content); err != nil {
		// Leave the file alone until the document changes.
		d.svc.warn("change made while the daemon was away not imported", "path", d.rel, "err", err)
		d.disk = diskState{version: d.latest, exists: true, min: d.latest, crc: sum}
	}
}
