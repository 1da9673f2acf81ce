package ot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"time"
	"unicode/utf8"

	"github.com/conman-dev/conman/services/workspace"
)

// writeRetry is how long the flusher waits after a failed write of the file.
const writeRetry = time.Second

// flushedLocked reports whether the file holds version target or later and
// no outside change is waiting to be looked at.
func (d *document) flushedLocked(target uint32) bool {
	return d.disk.exists && d.disk.version >= target && !d.changes.pending
}

// resolveWaitersLocked answers the flush waiters the file satisfies.
func (d *document) resolveWaitersLocked() {
	kept := d.waiters[:0]
	for _, w := range d.waiters {
		if d.flushedLocked(w.target) {
			w.done(nil)
		} else {
			kept = append(kept, w)
		}
	}
	clear(d.waiters[len(kept):])
	d.waiters = kept
}

// failWaitersLocked answers the flush waiters up to version v with err.
func (d *document) failWaitersLocked(v uint32, err error) {
	kept := d.waiters[:0]
	for _, w := range d.waiters {
		if w.target <= v {
			w.done(err)
		} else {
			kept = append(kept, w)
		}
	}
	clear(d.waiters[len(kept):])
	d.waiters = kept
}

// flushAction is what the flusher does next.
type flushAction int

const (
	flushIdle   flushAction = iota
	flushImport             // look at the file after the watcher saw it change
	flushWrite              // write the published text to the file
)

// nextFlushLocked decides the flusher's next step at now. For flushIdle it
// also returns how long until something is due (0: nothing is).
func (d *document) nextFlushLocked(now time.Time) (flushAction, time.Duration) {
	if d.failed != nil {
		return flushIdle, 0
	}
	var wait time.Duration
	due := func(at time.Time) bool {
		if !at.After(now) {
			return true
		}
		if w := at.Sub(now); wait == 0 || w < wait {
			wait = w
		}
		return false
	}
	if d.changes.pending {
		coalesce := d.svc.opts.Coalesce
		at := d.changes.last.Add(coalesce)
		if latest := d.changes.first.Add(10 * coalesce); latest.Before(at) {
			at = latest
		}
		if due(at) {
			return flushImport, 0
		}
		// Write nothing over a change not yet looked at.
		return flushIdle, wait
	}
	if d.published < d.disk.min || !due(d.writeAfter) {
		return flushIdle, wait
	}
	for _, w := range d.waiters {
		if w.target <= d.published {
			return flushWrite, 0
		}
	}
	if d.published > d.disk.version && !d.dirtySince.IsZero() && due(d.dirtySince.Add(d.svc.opts.Debounce)) {
		return flushWrite, 0
	}
	return flushIdle, wait
}

// flushLoop is the flusher goroutine.
func (d *document) flushLoop() {
	defer d.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-d.kickFlush:
		case <-timer.C:
		case <-d.stopFlush:
			return
		}
		for {
			d.mu.Lock()
			act, wait := d.nextFlushLocked(time.Now())
			d.mu.Unlock()
			if act == flushIdle {
				if wait > 0 {
					timer.Reset(wait)
				}
				break
			}
			switch act {
			case flushImport:
				d.importDisk()
			case flushWrite:
				d.writeDisk()
			}
		}
	}
}

// noteChange records that the watcher saw the file change.
func (d *document) noteChange(now time.Time) {
	d.mu.Lock()
	if !d.changes.pending {
		d.changes.pending, d.changes.first = true, now
	}
	d.changes.last = now
	d.mu.Unlock()
	kick(d.kickFlush)
}

// readDisk reads the file. A missing file is (nil, false, nil).
func (d *document) readDisk() (content []byte, exists bool, err error) {
	content, err = d.svc.fs.Read(d.rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || workspace.Code(err) == workspace.CodeNotFound {
			return nil, false, nil
		}
		return nil, false, err
	}
	return content, true, nil
}

// importDisk looks at the file after an outside change and turns a new
// content into the next version.
func (d *document) importDisk() {
	d.mu.Lock()
	d.changes.pending = false
	d.mu.Unlock()

	content, exists, err := d.readDisk()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.changes.pending {
		return // it changed again; look once it settles
	}
	switch {
	case err != nil:
		d.svc.warn("outside change not read", "path", d.rel, "err", err)
		return
	case !exists:
		// Deleted: keep the document; the file comes back with its next
		// change (as an editor's next save would bring it back).
		d.disk.exists = false
		return
	}
	if err := d.importLocked(content); err != nil {
		d.svc.warn("outside change not imported", "path", d.rel, "err", err)
	}
}

// importLocked makes content, found in the file, the next version. It
// fails for content that cannot be a document, or an op too large.
func (d *document) importLocked(content []byte) error {
	if d.failed != nil {
		return d.failed
	}
	sum := crcOf(content)
	if d.disk.exists && sum == d.disk.crc {
		d.resolveWaitersLocked()
		return nil // the daemon's own write, or a change already imported
	}
	if err := checkText(content, d.svc.opts.MaxDocBytes); err != nil {
		return err
	}
	v := d.latest
	if sum != d.text.CRC32() {
		op := diff(d.text.String(), string(content))
		var err error
		if v, err = d.submitLocked(submission{base: d.latest, op: op}); err != nil {
			return err
		}
		d.svc.metrics.outside.Inc()
	}
	d.disk = diskState{version: v, exists: true, min: v, crc: sum}
	d.appendMarkLocked(diskMark{version: v, crc: sum, exists: true})
	d.resolveWaitersLocked()
	return nil
}

// writeDisk writes the published text to the file, unless the file
// changed behind the daemon's back, in which case that change is imported
// first.
func (d *document) writeDisk() {
	d.mu.Lock()
	v := d.published
	text := d.pub.String()
	sum := d.versions[v].crc
	known := d.disk
	d.mu.Unlock()

	// Compare before writing: a change made since the last look must not
	// be overwritten unseen.
	if known.exists {
		current, exists, err := d.readDisk()
		if err == nil && exists && crcOf(current) != known.crc {
			d.mu.Lock()
			defer d.mu.Unlock()
			if err := d.importLocked(current); err != nil {
				// Neither overwrite it unseen nor spin: look again
				// later.
				d.svc.warn("file changed and not imported; not writing it", "path", d.rel, "err", err)
				d.writeAfter = time.Now().Add(writeRetry)
				d.failWaitersLocked(v, fmt.Errorf("the file changed and was not imported: %w", err))
			}
			return
		}
	}
	err := d.svc.fs.WriteDirect(d.rel, []byte(text))

	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.svc.warn("file not written", "path", d.rel, "err", err)
		d.writeAfter = time.Now().Add(writeRetry)
		d.failWaitersLocked(v, err)
		return
	}
	d.disk = diskState{version: v, exists: true, min: d.disk.min, crc: sum}
	if d.published > v {
		d.dirtySince = time.Now()
	} else {
		d.dirtySince = time.Time{}
	}
	d.appendMarkLocked(diskMark{version: v, crc: sum, exists: true})
	d.resolveWaitersLocked()
}

// checkText refuses content that cannot be a document: not valid UTF-8,
// binary (a NUL byte), or over limit bytes.
func checkText(content []byte, limit int) error {
	if len(content) > limit {
		return errTooLarge
	}
	if !utf8.Valid(content) || bytes.IndexByte(content, 0) >= 0 {
		return errNotText
	}
	return nil
}

var _ workspace.WriteInterceptor = (*document)(nil)

// InterceptWrite implements workspace.WriteInterceptor: a write to the
// file through the files service becomes the next version (the
// difference from the document), and the write succeeds once the document
// is on disk.
func (d *document) InterceptWrite(path string, content []byte) (bool, error) {
	svc := d.svc
	if !svc.hold(d) {
		return false, nil // unloaded meanwhile: write the file as usual
	}
	defer svc.release(d)
	if err := checkText(content, svc.opts.MaxDocBytes); err != nil {
		return true, fmt.Errorf("file is being edited as text: %w", err)
	}
	result := make(chan error, 1)
	d.mu.Lock()
	if d.failed != nil {
		d.mu.Unlock()
		return true, d.failed
	}
	if crcOf(content) != d.text.CRC32() {
		op := diff(d.text.String(), string(content))
		if _, err := d.submitLocked(submission{base: d.latest, op: op}); err != nil {
			d.mu.Unlock()
			return true, err
		}
		svc.metrics.outside.Inc()
	}
	d.flushLocked(func(err error) { result <- err })
	d.mu.Unlock()
	timer := time.NewTimer(svc.opts.WriteTimeout)
	defer timer.Stop()
	select {
	case err := <-result:
		return true, err
	case <-timer.C:
		return true, errors.New("timed out waiting for the edited file to be saved")
	}
}
