package ot

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
)

// instance is one ot channel. It follows at most one document, from the
// moment it is linked (at open, for a channel named after a file with a
// history, or by otLinkFile) until it closes.
//
// Each attached session is linked or not: a linked session has received
// the document (otstatus with linkedFile, or otLinkFileResponse) and from
// then on every packet and cursor change, in order. A session that
// attached before the channel was linked receives nothing of the document
// until it links too.
type instance struct {
	svc *Service
	ch  *channels.Channel

	// mu guards the following. It is taken after the document's mu (see
	// document); doc changes only from nil to a document, under both.
	mu       sync.Mutex
	doc      *document
	linkPath string            // the path as the client spelled it
	sessions map[int32]*member // attached sessions
	closed   bool
}

type member struct {
	s      *channels.Session
	linked bool
}

var (
	_ channels.Handler  = (*instance)(nil)
	_ channels.Attacher = (*instance)(nil)
	_ channels.Detacher = (*instance)(nil)
)

var errNotLinked = errors.New("no file is linked to this channel: send otLinkFile first")

// lock takes the document's lock (if the instance follows one) and then
// the instance's, and returns the document.
func (inst *instance) lock() *document {
	for {
		inst.mu.Lock()
		d := inst.doc
		inst.mu.Unlock()
		if d != nil {
			d.mu.Lock()
		}
		inst.mu.Lock()
		if inst.doc == d {
			return d
		}
		inst.mu.Unlock()
		if d != nil {
			d.mu.Unlock()
		}
	}
}

// document returns the document the instance follows, or nil.
func (inst *instance) document() *document {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	return inst.doc
}

// Attach sends the joining session otstatus: the published document, or an
// empty status without linkedFile before anyone linked the channel.
func (inst *instance) Attach(s *channels.Session) {
	d := inst.lock()
	defer func() {
		inst.mu.Unlock()
		if d != nil {
			d.mu.Unlock()
		}
	}()
	m := &member{s: s}
	inst.sessions[s.ID()] = m
	if d == nil {
		inst.ch.Join(s, &api.Command{Body: &api.Command_Otstatus{Otstatus: &api.OTStatus{}}})
		return
	}
	m.linked = true
	inst.ch.Join(s, d.statusLocked(inst.linkPath))
}

// Detach forgets the session and deletes its cursors.
func (inst *instance) Detach(s *channels.Session) {
	d := inst.lock()
	if m := inst.sessions[s.ID()]; m != nil && m.s == s {
		delete(inst.sessions, s.ID())
	}
	inst.mu.Unlock()
	if d != nil {
		d.dropCursorsLocked(inst, s)
		d.mu.Unlock()
	}
}

// Close stops following the document; the cursors of the channel's
// sessions are deleted.
func (inst *instance) Close(context.Context) error {
	d := inst.lock()
	inst.closed = true
	inst.mu.Unlock()
	if d == nil {
		return nil
	}
	delete(d.instances, inst)
	d.dropCursorsLocked(inst, nil)
	d.mu.Unlock()
	inst.svc.release(d)
	return nil
}

// sendLocked sends what mk makes to the instance's linked sessions, except
// the session except. The document's mu must be held, the instance's not.
func (inst *instance) sendLocked(mk func() *api.Command, except *channels.Session) {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	if inst.closed {
		return
	}
	linked, all := 0, true
	for _, m := range inst.sessions {
		if m.linked {
			linked++
		} else {
			all = false
		}
	}
	if linked == 0 {
		return
	}
	var skip int32
	if except != nil {
		if m := inst.sessions[except.ID()]; m != nil && m.s == except && m.linked {
			skip = except.ID()
		}
	}
	if all {
		if skip != 0 && linked == 1 {
			return
		}
		cmd := mk()
		cmd.Session = -skip
		inst.ch.Send(cmd)
		return
	}
	for id, m := range inst.sessions {
		if m.linked && id != skip {
			cmd := mk()
			cmd.Session = id
			inst.ch.Send(cmd)
		}
	}
}

// Handle implements channels.Handler. Requests that change the document
// are answered once the change is durable, by the document's committer.
func (inst *instance) Handle(ctx context.Context, req *channels.Request) (*api.Command, error) {
	reply, err := inst.handle(req)
	if err != nil {
		inst.ch.Logger().Debug("request failed", "body", channels.BodyName(req.Command), "err", err)
	}
	return reply, err
}

func (inst *instance) handle(req *channels.Request) (*api.Command, error) {
	switch body := req.Command.Body.(type) {
	case *api.Command_OtLinkFile:
		return nil, inst.link(req, body.OtLinkFile.GetFile().GetPath())
	case *api.Command_Ot:
		return nil, inst.edit(req, body.Ot)
	case *api.Command_OtFetchRequest:
		return nil, inst.fetch(req, body.OtFetchRequest)
	case *api.Command_OtNewCursor:
		return inst.newCursor(req, body.OtNewCursor)
	case *api.Command_OtDeleteCursor:
		return inst.deleteCursor(req, body.OtDeleteCursor)
	case *api.Command_Flush:
		d := inst.document()
		if d == nil {
			return nil, errNotLinked
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		d.flushLocked(func(err error) { answer(req, err) })
		return nil, nil
	}
	return nil, channels.Unsupported(req.Command)
}

// answer replies ok, or error.
func answer(req *channels.Request, err error) {
	if err != nil {
		req.Fail(err)
		return
	}
	req.Reply(okCommand())
}

// link links the channel (and the requesting session) to the file p,
// creating its history if it has none, and answers otLinkFileResponse with
// the published document.
func (inst *instance) link(req *channels.Request, p string) error {
	if p == "" {
		return errors.New("otLinkFile without a path")
	}
	rel, err := inst.svc.fs.Resolve(p)
	if err != nil {
		return err
	}
	d := inst.document()
	if d == nil {
		nd, err := inst.svc.acquire(rel, true)
		if err != nil {
			return fmt.Errorf("link %s: %w", p, err)
		}
		nd.mu.Lock()
		inst.mu.Lock()
		// Only Handle links, one request at a time: doc is still nil.
		inst.doc, inst.linkPath = nd, p
		nd.instances[inst] = struct{}{}
		inst.mu.Unlock()
		nd.mu.Unlock()
	} else if d.rel != rel {
		return fmt.Errorf("link %s: this channel is linked to %s", p, inst.linkPath)
	}
	d = inst.lock()
	defer func() {
		inst.mu.Unlock()
		d.mu.Unlock()
	}()
	if d.failed != nil {
		return d.failed
	}
	if m := inst.sessions[req.Session.ID()]; m != nil && m.s == req.Session {
		m.linked = true
	}
	req.Reply(&api.Command{Body: &api.Command_OtLinkFileResponse{OtLinkFileResponse: &api.OTLinkFileResponse{
		Version:    d.published,
		LinkedFile: &api.File{Path: p, Content: []byte(d.pub.String())},
	}}})
	return nil
}

// edit submits an op; the committer answers it.
func (inst *instance) edit(req *channels.Request, pkt *api.OTPacket) error {
	d := inst.document()
	if d == nil {
		return errNotLinked
	}
	base := pkt.GetSpookyVersion()
	if v := pkt.GetVersion(); v != 0 {
		if base != 0 && base != v {
			return fmt.Errorf("spookyVersion %d and version %d disagree", base, v)
		}
		base = v
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, err := d.submitLocked(submission{
		base:   base,
		op:     fromWire(pkt.GetOps()),
		userID: req.Session.Identity().UserID,
		nonce:  pkt.GetNonce(),
		done:   func(err error) { answer(req, err) },
	})
	return err
}

// fetch answers otFetchRequest with the published packets in the range,
// from versionFrom to versionTo inclusive, as far as MaxFetchBytes allows.
func (inst *instance) fetch(req *channels.Request, r *api.OTFetchRequest) error {
	d := inst.document()
	if d == nil {
		return errNotLinked
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	from, to := max(r.GetVersionFrom(), 1), min(r.GetVersionTo(), d.published)
	var packets []*api.OTPacket
	size := 0
	for v := from; v <= to; v++ {
		e, err := d.entryLocked(v)
		if err != nil {
			return fmt.Errorf("history: %w", err)
		}
		if size += 16 + len(e.pkt.Ops)*8 + insertedBytes(e.op); size > inst.svc.opts.MaxFetchBytes && len(packets) > 0 {
			break
		}
		packets = append(packets, e.pkt)
	}
	// Replied under mu: a packet published after this answer reaches the
	// session after it.
	req.Reply(&api.Command{Body: &api.Command_OtFetchResponse{OtFetchResponse: &api.OTFetchResponse{Packets: packets}}})
	return nil
}

// newCursor stores a cursor of the requesting session and forwards it to
// the others; the user in it is the session's.
func (inst *instance) newCursor(req *channels.Request, c *api.OTCursor) (*api.Command, error) {
	d := inst.document()
	if d == nil {
		return nil, errNotLinked
	}
	if c.GetId() == "" {
		return nil, errors.New("otNewCursor without an id")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.cursors[c.Id]
	switch {
	case old != nil && old.session != req.Session:
		return nil, fmt.Errorf("cursor %q belongs to another session", c.Id)
	case old == nil && len(d.cursors) >= inst.svc.opts.MaxCursors:
		return nil, fmt.Errorf("too many cursors (%d)", len(d.cursors))
	}
	clamp := func(p uint32) uint32 { return uint32(min(int(p), d.pub.Len())) }
	id := req.Session.Identity()
	msg := &api.OTCursor{
		Position:       clamp(c.Position),
		SelectionStart: clamp(c.SelectionStart),
		SelectionEnd:   clamp(c.SelectionEnd),
		User:           &api.User{Id: id.UserID, Name: id.UserName, Session: req.Session.ID()},
		Id:             c.Id,
	}
	d.cursors[c.Id] = &cursor{inst: inst, session: req.Session, msg: msg}
	d.broadcastLocked(func() *api.Command {
		return &api.Command{Body: &api.Command_OtNewCursor{OtNewCursor: msg}}
	}, req.Session)
	return replyIfAsked(req), nil
}

// deleteCursor deletes a cursor of the requesting session and tells the
// others.
func (inst *instance) deleteCursor(req *channels.Request, c *api.OTCursor) (*api.Command, error) {
	d := inst.document()
	if d == nil {
		return nil, errNotLinked
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.cursors[c.GetId()]
	if old != nil && old.session == req.Session {
		delete(d.cursors, c.Id)
		msg := &api.OTCursor{Id: c.Id, User: old.msg.User}
		d.broadcastLocked(func() *api.Command {
			return &api.Command{Body: &api.Command_OtDeleteCursor{OtDeleteCursor: msg}}
		}, req.Session)
	}
	return replyIfAsked(req), nil
}

// replyIfAsked is ok for a request that carries a ref; cursor messages
// are often sent without one and then need no answer.
func replyIfAsked(req *channels.Request) *api.Command {
	if req.Command.Ref == "" {
		return nil
	}
	return okCommand()
}
