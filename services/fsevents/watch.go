package fsevents

import (
	"cmp"
	"errors"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/conman-dev/conman/api"
)

// testGate, when set, holds the event loop until the channel closes (tests
// use it to make the kernel's queue overflow).
var testGate atomic.Pointer[chan struct{}]

// loop is the watcher's goroutine: it gathers raw events into bursts and
// flushes each burst Coalesce after its first event. It ends when the
// watcher is closed.
func (s *Service) loop(w *fsnotify.Watcher, done chan struct{}) {
	defer close(done)
	var (
		batch      []fsnotify.Event
		overflowed bool
		timer      *time.Timer
		flushC     <-chan time.Time
	)
	arm := func() {
		if flushC != nil {
			return
		}
		if timer == nil {
			timer = time.NewTimer(s.opts.Coalesce)
		} else {
			timer.Reset(s.opts.Coalesce)
		}
		flushC = timer.C
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if gate := testGate.Load(); gate != nil {
			select {
			case <-*gate:
			case <-s.stop:
				return
			}
		}
		select {
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			batch = append(batch, ev)
			arm()
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				s.overflows.Inc()
				overflowed = true
				arm()
			} else if ok, suppressed := s.warnings.allow(); ok {
				s.log.Warn("watcher error", "err", err, "suppressed", suppressed)
			}
		case <-flushC:
			flushC = nil
			s.flush(batch, overflowed)
			clear(batch)
			batch, overflowed = batch[:0], false
		case <-s.stop:
			return
		}
	}
}

// loc is a name in a watched directory.
type loc struct {
	dir  *dirWatch
	name string
}

func compareLocs(a, b loc) int {
	return cmp.Or(cmp.Compare(a.dir.rel, b.dir.rel), cmp.Compare(a.name, b.name))
}

// flush turns one burst of raw events (or, after an overflow, a rescan of
// every watched directory) into file events for the channels.
func (s *Service) flush(batch []fsnotify.Event, rescan bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	flags := make(map[loc]int)
	suspects := make(map[*dirWatch]bool) // directories that may be gone
	for _, ev := range batch {
		if d := s.byHost[ev.Name]; d != nil && ev.Has(fsnotify.Remove|fsnotify.Rename) {
			suspects[d] = true
		}
		d := s.byHost[filepath.Dir(ev.Name)]
		if d == nil {
			continue
		}
		l := loc{d, filepath.Base(ev.Name)}
		f := flags[l]
		if ev.Has(fsnotify.Write | fsnotify.Chmod | fsnotify.Create) {
			f |= flagModified
		}
		if ev.Has(fsnotify.Rename) {
			f |= flagRenamed
		}
		flags[l] = f
	}
	var lost []*dirWatch
	for d := range suspects {
		if !s.aliveLocked(d) {
			lost = append(lost, d)
		}
	}
	slices.SortFunc(lost, func(a, b *dirWatch) int { return cmp.Compare(a.rel, b.rel) })
	isLost := func(d *dirWatch) bool { return slices.Contains(lost, d) }

	before := make(snapshot[loc])
	after := make(snapshot[loc])
	var keys []loc
	seen := make(map[loc]bool)
	touch := func(l loc) {
		if seen[l] {
			return
		}
		seen[l] = true
		keys = append(keys, l)
		if e, ok := l.dir.listing[l.name]; ok {
			before[l] = e
		}
	}
	if rescan {
		for _, d := range s.dirs {
			if isLost(d) {
				continue
			}
			entries, err := s.fs.List(d.rel)
			if err != nil {
				lost = append(lost, d)
				continue
			}
			for name := range d.listing {
				touch(loc{d, name})
			}
			for _, e := range entries {
				l := loc{d, e.Name}
				touch(l)
				after[l] = e
			}
		}
	}
	for l := range flags {
		if isLost(l.dir) || seen[l] && rescan {
			continue
		}
		touch(l)
		e, exists, err := s.fs.Lookup(l.dir.rel, l.name)
		switch {
		case err != nil:
			// Unknown state: keep what the listing says.
			if b, ok := before[l]; ok {
				after[l] = b
			}
		case exists:
			after[l] = e
		}
	}
	keys = slices.DeleteFunc(keys, func(l loc) bool { return isLost(l.dir) })

	changes := diff(keys, before, after, flags, compareLocs)
	for _, l := range keys {
		if e, ok := after[l]; ok {
			l.dir.listing[l.name] = e
		} else {
			delete(l.dir.listing, l.name)
		}
	}
	out := newOutbox()
	for _, c := range changes {
		s.routeLocked(out, c)
	}
	for _, d := range lost {
		s.loseLocked(out, d)
	}
	out.sendLocked(s)
}

// aliveLocked reports whether d is still watched and still the directory
// it was.
func (s *Service) aliveLocked(d *dirWatch) bool {
	e, exists, err := s.fs.Stat(d.rel)
	if err != nil || !exists || !e.Dir || e.Ino != d.ino {
		return false
	}
	return slices.Contains(s.watcher.WatchList(), d.host)
}

// loseLocked ends the subscriptions of a directory that is gone: each
// learns of it with a Remove (of the directory, or of the file it watched).
func (s *Service) loseLocked(out *outbox, d *dirWatch) {
	for sub := range d.subs {
		if sub.name == "" && sub.prefix != "" {
			out.add(sub.owner, &api.FileEvent{Op: api.FileEvent_Remove, File: &api.File{Path: sub.prefix, Type: api.File_DIRECTORY}})
		} else if e, ok := d.listing[sub.name]; ok && sub.name != "" {
			out.add(sub.owner, &api.FileEvent{Op: api.FileEvent_Remove, File: file(sub.spell(sub.name), e.Dir)})
		}
		for key, held := range sub.owner.subs {
			if held == sub {
				delete(sub.owner.subs, key)
			}
		}
	}
	clear(d.subs)
	if s.dirs[d.rel] == d {
		s.unwatchLocked(d)
	}
}

func file(p string, dir bool) *api.File {
	t := api.File_REGULAR
	if dir {
		t = api.File_DIRECTORY
	}
	return &api.File{Path: p, Type: t}
}

// viewersLocked returns, for each channel that sees l, the subscription through
// which it does.
func viewersLocked(l loc) map[*instance]*subscription {
	var out map[*instance]*subscription
	for sub := range l.dir.subs {
		if !sub.sees(l.name) {
			continue
		}
		if out == nil {
			out = make(map[*instance]*subscription)
		}
		// Of two spellings, prefer the shorter, then the smaller: the
		// choice must not depend on map order.
		if held, ok := out[sub.owner]; !ok || len(sub.prefix) < len(held.prefix) || len(sub.prefix) == len(held.prefix) && sub.prefix < held.prefix {
			out[sub.owner] = sub
		}
	}
	return out
}

// routeLocked addresses one change to the channels that see it. A move seen from
// one side only is a Remove or a Create there.
func (s *Service) routeLocked(out *outbox, c change[loc]) {
	from := viewersLocked(c.key)
	if c.op != api.FileEvent_Move {
		for owner, sub := range from {
			out.add(owner, &api.FileEvent{Op: c.op, File: file(sub.spell(c.key.name), c.dir)})
		}
		return
	}
	to := viewersLocked(c.dest)
	for owner, sub := range from {
		if dsub, ok := to[owner]; ok {
			out.add(owner, &api.FileEvent{Op: api.FileEvent_Move, File: file(sub.spell(c.key.name), c.dir), Dest: file(dsub.spell(c.dest.name), c.dir)})
		} else {
			out.add(owner, &api.FileEvent{Op: api.FileEvent_Remove, File: file(sub.spell(c.key.name), c.dir)})
		}
	}
	for owner, sub := range to {
		if _, ok := from[owner]; !ok {
			out.add(owner, &api.FileEvent{Op: api.FileEvent_Create, File: file(sub.spell(c.dest.name), c.dir)})
		}
	}
}

// outbox collects each channel's events of one flush, in order, once each
// (a channel watching a directory and its parent hears of the directory's
// removal from both).
type outbox struct {
	order  []*instance
	events map[*instance][]*api.FileEvent
	seen   map[outKey]bool
}

type outKey struct {
	owner      *instance
	op         api.FileEvent_Op
	path, dest string
}

func newOutbox() *outbox {
	return &outbox{events: make(map[*instance][]*api.FileEvent), seen: make(map[outKey]bool)}
}

func (o *outbox) add(owner *instance, ev *api.FileEvent) {
	key := outKey{owner, ev.Op, ev.GetFile().GetPath(), ev.GetDest().GetPath()}
	if o.seen[key] {
		return
	}
	o.seen[key] = true
	if _, ok := o.events[owner]; !ok {
		o.order = append(o.order, owner)
	}
	o.events[owner] = append(o.events[owner], ev)
}

// sendLocked broadcasts the events to every session of each channel, in
// order, with s.mu held so flushes never interleave.
func (o *outbox) sendLocked(s *Service) {
	for _, owner := range o.order {
		for _, ev := range o.events[owner] {
			owner.ch.Send(&api.Command{Body: &api.Command_FileEvent{FileEvent: ev}})
		}
		s.events.Add(float64(len(o.events[owner])))
	}
}
