package ot

import (
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/ot"
)

// document is one file being edited together: its text, its history and
// the sessions following it. Every channel that links the file shares it.
//
// # Concurrency
//
// mu guards the document's state. Lock order: document.mu, then
// instance.mu, then the channel's own lock (taken inside Channel.Send and
// Join). svc.mu is never held together with mu.
//
// Two goroutines belong to a loaded document and end in close:
//
//   - the committer writes the records that requests append to buf and
//     syncs the log, then, under mu, publishes the batch: applies it to
//     pub, broadcasts each packet in version order and answers each
//     request. Nothing leaves the daemon before it is durable, so every
//     session always sees a prefix of the durable history.
//   - the flusher writes the text to the file (after Debounce, or at once
//     for a flush) and imports changes other processes make to it.
//
// Handle never waits for the disk: it transforms and applies the op to
// text, appends its record to buf and returns; the reply follows the
// commit. While one batch is being synced the next one gathers.
type document struct {
	svc     *Service
	rel     string // canonical workspace-relative path
	host    string // host path, for the watcher
	logPath string

	ready   chan struct{} // closed when loading has finished
	loadErr error         // set before ready is closed
	closed  chan struct{} // closed once unloaded
	dead    atomic.Bool   // failed is set: unload as soon as nobody holds it

	// svc.mu guards these.
	refs      int       // instances and writers holding the document
	idleSince time.Time // when refs last dropped to 0
	closing   bool      // being unloaded

	file *os.File // the log: the committer appends, anyone may ReadAt

	kickCommit chan struct{} // capacity 1
	kickFlush  chan struct{} // capacity 1
	stopCommit chan struct{}
	stopFlush  chan struct{}
	wg         sync.WaitGroup

	// mu guards the following.
	mu          sync.Mutex
	text        *ot.Doc // at version latest, the newest op applied
	pub         *ot.Doc // at version published, the newest op made durable and sent
	latest      uint32
	published   uint32
	versions    []versionInfo // versions[v] for v in 0…latest
	recent      []*entry      // the packets of versions recentFirst…latest
	recentFirst uint32
	nextOffset  int64        // where the next record will land in the log
	buf         []byte       // records not yet handed to the committer
	batch       []commitItem // the requests whose records are in buf
	instances   map[*instance]struct{}
	cursors     map[string]*cursor
	failed      error // set when the log cannot be written; the document is dead
	disk        diskState
	waiters     []flushWaiter
	dirtySince  time.Time // when published moved past disk.version; zero if not
	writeAfter  time.Time // no disk write before this (after a failed one)
	changes     diskEvents
}

// versionInfo is what the document keeps about every version.
type versionInfo struct {
	offset int64  // of the packet's record in the log (-1 for version 0)
	crc    uint32 // CRC-32 of the text after it
	runes  int    // length of the text after it, in code points
}

// entry is a packet of the history, decoded.
type entry struct {
	op  ot.Op
	pkt *api.OTPacket
}

// commitItem is a packet waiting for its batch to be durable.
type commitItem struct {
	e         *entry
	done      func(error) // called with mu held once published, or on failure; may be nil
	submitted time.Time
}

// flushWaiter waits for the file to hold version target or later.
type flushWaiter struct {
	target uint32
	done   func(error) // called with mu held
}

// diskState is what the document knows about the file on disk.
type diskState struct {
	// version is the version the file is up to date with: nothing needs
	// writing until published passes it.
	version uint32
	exists  bool
	// min is the oldest version that may be written: an outside change
	// imported as version min is already on disk, and writing an older
	// text would undo it for a moment.
	min uint32
	// crc is the CRC-32 of what the file is known to hold (the daemon's
	// own last write, or the last outside change imported); the watcher
	// does not import it again.
	crc uint32
}

// diskEvents are reports from the watcher not yet acted upon.
type diskEvents struct {
	pending     bool
	first, last time.Time
}

// cursor is one cursor a session placed.
type cursor struct {
	inst    *instance
	session *channels.Session
	msg     *api.OTCursor
}

var (
	errClosed   = errors.New("document closed")
	errNotFound = errors.New("no such version")
)

// startLocked starts the document's goroutines.
func (d *document) start() {
	d.kickCommit = make(chan struct{}, 1)
	d.kickFlush = make(chan struct{}, 1)
	d.stopCommit = make(chan struct{})
	d.stopFlush = make(chan struct{})
	d.wg.Add(2)
	go d.commitLoop()
	go d.flushLoop()
}

func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// entryLocked returns the packet of version v (1 ≤ v ≤ latest), from memory
// or from the log.
func (d *document) entryLocked(v uint32) (*entry, error) {
	if v == 0 || v > d.latest {
		return nil, fmt.Errorf("%w %d", errNotFound, v)
	}
	if v >= d.recentFirst {
		return d.recent[v-d.recentFirst], nil
	}
	kind, body, err := readRecordAt(d.file, d.versions[v].offset)
	if err != nil {
		return nil, err
	}
	if kind != kindPacket {
		return nil, fmt.Errorf("%w: version %d is not a packet", errBadRecord, v)
	}
	pkt, err := parsePacket(body)
	if err != nil {
		return nil, err
	}
	op, err := ot.Normalize(fromWire(pkt.Ops))
	if err != nil {
		return nil, fmt.Errorf("%w: version %d: %v", errBadRecord, v, err)
	}
	return &entry{op: op, pkt: pkt}, nil
}

// submission is an op to append, with where it comes from.
type submission struct {
	base   uint32 // the version the op was made on
	op     ot.Op
	userID uint32
	nonce  uint32
	done   func(error) // called with mu held once durable and sent; may be nil
}

// submitLocked transforms sub.op against the history after sub.base,
// applies it to text, numbers it and appends its record for the committer.
// On error nothing has changed.
func (d *document) submitLocked(sub submission) (uint32, error) {
	if d.failed != nil {
		return 0, d.failed
	}
	if sub.base > d.latest {
		return 0, fmt.Errorf("version %d is newer than the document (version %d)", sub.base, d.latest)
	}
	// The span counts a trailing skip, which normalising drops: an op
	// that skips past the end does not fit either.
	if err := sub.op.Validate(); err != nil {
		return 0, err
	}
	if need, have := span(sub.op), d.versions[sub.base].runes; need > have {
		return 0, fmt.Errorf("op does not fit: it spans %d code points but version %d has %d", need, sub.base, have)
	}
	op, err := ot.Normalize(sub.op)
	if err != nil {
		return 0, err
	}
	for v := sub.base + 1; v <= d.latest; v++ {
		other, err := d.entryLocked(v)
		if err != nil {
			return 0, fmt.Errorf("history: %w", err)
		}
		if op, err = ot.Transform(op, other.op, ot.Right); err != nil {
			return 0, err
		}
	}
	// Every code point deleted frees at least a byte.
	inserted := insertedBytes(op)
	if d.text.Size()-deletedRunes(op)+inserted > d.svc.opts.MaxDocBytes {
		return 0, fmt.Errorf("op would make the document larger than %d bytes", d.svc.opts.MaxDocBytes)
	}
	if inserted > maxRecordBody-4096 {
		return 0, fmt.Errorf("op inserts more than %d bytes", maxRecordBody-4096)
	}
	if err := d.text.Apply(op); err != nil {
		return 0, fmt.Errorf("op does not fit: %w", err)
	}
	v := d.latest + 1
	pkt := &api.OTPacket{
		SpookyVersion: v,
		Version:       v,
		Ops:           toWire(op),
		Crc32:         d.text.CRC32(),
		Committed:     timestamppb.Now(),
		Nonce:         sub.nonce,
		UserId:        sub.userID,
	}
	start := len(d.buf)
	buf, err := appendPacket(d.buf, pkt)
	if err != nil {
		// text has the op and cannot give it back. The size checks
		// above leave nothing that gets here.
		return 0, d.failLocked(fmt.Errorf("encode version %d: %w", v, err))
	}
	d.buf = buf
	e := &entry{op: op, pkt: pkt}
	d.versions = append(d.versions, versionInfo{offset: d.nextOffset, crc: pkt.Crc32, runes: d.text.Len()})
	d.nextOffset += int64(len(d.buf) - start)
	d.recent = append(d.recent, e)
	d.latest = v
	d.batch = append(d.batch, commitItem{e: e, done: sub.done, submitted: time.Now()})
	kick(d.kickCommit)
	return v, nil
}

// appendMarkLocked records what the file holds now.
func (d *document) appendMarkLocked(m diskMark) {
	if d.failed != nil {
		return
	}
	start := len(d.buf)
	d.buf = appendDiskMark(d.buf, m)
	d.nextOffset += int64(len(d.buf) - start)
	kick(d.kickCommit)
}

// commitLoop is the committer goroutine.
func (d *document) commitLoop() {
	defer d.wg.Done()
	var spare []byte
	for {
		stopping := false
		select {
		case <-d.kickCommit:
		case <-d.stopCommit:
			stopping = true
		}
		for {
			d.mu.Lock()
			if d.failed != nil || len(d.buf) == 0 {
				d.mu.Unlock()
				break
			}
			buf, batch := d.buf, d.batch
			d.buf, d.batch = spare[:0], nil
			d.mu.Unlock()

			began := time.Now()
			err := d.appendLog(buf)
			d.svc.metrics.commitSeconds.Observe(time.Since(began).Seconds())

			d.mu.Lock()
			if err != nil {
				d.failBatchLocked(batch, err)
				d.failLocked(fmt.Errorf("write history: %w", err))
				d.mu.Unlock()
				break
			}
			d.publishLocked(batch)
			d.mu.Unlock()
			spare = buf
		}
		if stopping {
			return
		}
	}
}

// appendLog writes records at the end of the log and syncs it.
func (d *document) appendLog(buf []byte) error {
	if _, err := d.file.Write(buf); err != nil {
		return err
	}
	return d.file.Sync()
}

// publishLocked makes a durable batch visible: each packet is applied to
// pub and sent to every linked session in version order, and then its
// request is answered.
func (d *document) publishLocked(batch []commitItem) {
	for i, it := range batch {
		if err := d.pub.Apply(it.e.op); err != nil {
			// text took the same ops in the same order: this is a bug.
			// Reloading from the log is the way back.
			err = fmt.Errorf("published version %d does not apply: %w", it.e.pkt.Version, err)
			d.failBatchLocked(batch[i:], err)
			d.failLocked(err)
			return
		}
		d.published = it.e.pkt.Version
		d.moveCursorsLocked(it.e.op)
		pkt := it.e.pkt
		d.broadcastLocked(func() *api.Command { return &api.Command{Body: &api.Command_Ot{Ot: pkt}} }, nil)
		if it.done != nil {
			it.done(nil)
			d.svc.metrics.ackSeconds.Observe(time.Since(it.submitted).Seconds())
		}
	}
	d.svc.metrics.ops.Add(float64(len(batch)))
	if len(batch) > 0 && d.dirtySince.IsZero() && d.published > d.disk.version {
		d.dirtySince = time.Now()
	}
	d.trimRecentLocked()
	if len(batch) > 0 {
		kick(d.kickFlush)
	}
}

// trimRecentLocked keeps about Window published packets in memory; older
// ones are read from the log when needed.
func (d *document) trimRecentLocked() {
	window := d.svc.opts.Window
	if len(d.recent) <= 2*window {
		return
	}
	// Keep everything not yet durable, and window more.
	if d.published <= uint32(window) {
		return
	}
	keepFrom := d.published - uint32(window)
	if keepFrom <= d.recentFirst {
		return
	}
	drop := int(keepFrom - d.recentFirst)
	clear(d.recent[:drop])
	d.recent = append(d.recent[:0:0], d.recent[drop:]...)
	d.recentFirst = keepFrom
}

// failBatchLocked answers a batch that could not be made durable.
func (d *document) failBatchLocked(batch []commitItem, err error) {
	for _, it := range batch {
		if it.done != nil {
			it.done(fmt.Errorf("history not saved: %w", err))
		}
	}
}

// failLocked kills the document after its log could not be written: text
// may hold ops that are not durable, so nothing more may be sent or
// accepted. Waiting requests fail, every channel following it ends (its
// clients re-open and get the document as reloaded from the log), and it
// is unloaded as soon as nobody holds it. It returns err.
func (d *document) failLocked(err error) error {
	if d.failed != nil {
		return d.failed
	}
	d.failed = err
	d.dead.Store(true)
	d.svc.warn("document failed", "path", d.rel, "err", err)
	d.failBatchLocked(d.batch, err)
	d.batch, d.buf = nil, nil
	for _, w := range d.waiters {
		w.done(err)
	}
	d.waiters = nil
	// The reaper ends the channels following it (that takes the hub's
	// locks, which must not be taken under mu) and unloads it.
	d.svc.kickReaper()
	return err
}

// broadcastLocked sends a command to every linked session of every
// instance following the document, except the session except (nil: none).
// mk makes a fresh command each time (Channel.Send takes ownership); the
// body it wraps may be shared.
func (d *document) broadcastLocked(mk func() *api.Command, except *channels.Session) {
	for inst := range d.instances {
		inst.sendLocked(mk, except)
	}
}

// statusLocked is the otstatus of the published document.
func (d *document) statusLocked(linkPath string) *api.Command {
	return &api.Command{Body: &api.Command_Otstatus{Otstatus: &api.OTStatus{
		Contents:   d.pub.String(),
		Version:    d.published,
		LinkedFile: &api.File{Path: linkPath},
		Cursors:    d.cursorListLocked(),
	}}}
}

// cursorListLocked lists the cursors, as otstatus carries them.
func (d *document) cursorListLocked() []*api.OTCursor {
	if len(d.cursors) == 0 {
		return nil
	}
	out := make([]*api.OTCursor, 0, len(d.cursors))
	for _, c := range d.cursors {
		out = append(out, c.msg)
	}
	return out
}

// moveCursorsLocked moves every cursor over a published op.
func (d *document) moveCursorsLocked(op ot.Op) {
	if len(op) == 0 {
		return
	}
	for _, c := range d.cursors {
		m := c.msg
		// The stored message may be inside a command being encoded
		// elsewhere only under mu; replace it rather than edit it.
		c.msg = &api.OTCursor{
			Position:       uint32(ot.TransformPosition(int(m.Position), op)),
			SelectionStart: uint32(ot.TransformPosition(int(m.SelectionStart), op)),
			SelectionEnd:   uint32(ot.TransformPosition(int(m.SelectionEnd), op)),
			User:           m.User,
			Id:             m.Id,
		}
	}
}

// dropCursorsLocked deletes the cursors of session s on inst (every
// session's when s is nil) and tells the others.
func (d *document) dropCursorsLocked(inst *instance, s *channels.Session) {
	for id, c := range d.cursors {
		if c.inst != inst || s != nil && c.session != s {
			continue
		}
		delete(d.cursors, id)
		msg := &api.OTCursor{Id: id, User: c.msg.User}
		d.broadcastLocked(func() *api.Command {
			return &api.Command{Body: &api.Command_OtDeleteCursor{OtDeleteCursor: msg}}
		}, c.session)
	}
}

// flushLocked asks for the file to hold the latest version; done is called
// with mu held once it does, or with the error that kept it from it.
func (d *document) flushLocked(done func(error)) {
	if d.failed != nil {
		done(d.failed)
		return
	}
	target := d.latest
	if d.flushedLocked(target) {
		done(nil)
		return
	}
	d.waiters = append(d.waiters, flushWaiter{target: target, done: done})
	kick(d.kickFlush)
}

// crcOf returns the CRC-32 of content as the protocol computes it.
func crcOf(content []byte) uint32 { return crc32.ChecksumIEEE(content) }

// shutdown ends a loaded document: its goroutines stop, a change the
// watcher reported is looked at, the file is written, every record is
// committed and the log is closed.
func (d *document) shutdown() {
	d.svc.fs.Interceptors().Unregister(d.rel, d)
	close(d.stopFlush)
	close(d.stopCommit)
	d.wg.Wait()
	for range 3 {
		d.mu.Lock()
		change := d.failed == nil && d.changes.pending
		write := d.failed == nil && d.published >= d.disk.min && d.published > d.disk.version
		d.mu.Unlock()
		switch {
		case change:
			d.importDisk()
		case write:
			d.writeDisk()
		}
		d.commitNow()
		if !change && !write {
			break
		}
	}
	d.mu.Lock()
	for _, w := range d.waiters {
		w.done(errClosed)
	}
	d.waiters = nil
	d.mu.Unlock()
	d.file.Close()
}

// commitNow writes and publishes what is in buf, in the caller's
// goroutine, once the committer has ended.
func (d *document) commitNow() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failed != nil || len(d.buf) == 0 {
		return
	}
	if err := d.appendLog(d.buf); err != nil {
		d.failBatchLocked(d.batch, err)
		d.batch = nil
		d.failLocked(fmt.Errorf("write history: %w", err))
		return
	}
	batch := d.batch
	d.buf, d.batch = nil, nil
	d.publishLocked(batch)
}
