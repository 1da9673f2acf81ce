// Package presence is the presence service: who is connected to the
// workspace, session by session, and which file each session has open.
//
// Clients open it as service `presence` with the channel name `presencer`
// (`presencer` is also accepted as the service name). Every presence
// channel of a daemon, whatever its name, shares one roster: the sessions
// attached to any of them. A user with two tabs is two sessions.
//
// On a presence channel:
//
//   - a joining session first receives roster{user: [...]} listing every
//     session on the roster, itself included, ordered by session id, then
//     one fileOpened for each session that has a file open;
//   - the others receive join{id, name, roles, session} when a session
//     joins the roster, and part{...} when it leaves it (it detaches from
//     its last presence channel, or its connection ends);
//   - openFile{file} records the file the sender has open (an empty file:
//     none) and sends fileOpened{userId, file, session, timestamp} to every
//     other session; with a ref it is answered ok.
//
// A user's identity comes from its token: id, name, and roles made of "rw"
// or "ro" (the token's permission) followed by the token's extra roles
// ("debug", "admin"), as the conman.debug service reports them.
//
// The package owns the roster and nothing else: it does not look at files
// and never imports another service.
//
// # Concurrency
//
// One tracker per daemon holds the roster. Its mutex is held across every
// roster change, every broadcast and every [channels.Channel.Join], so a
// joining session's roster and the live join, part and fileOpened stream
// fit exactly: each change is either in the snapshot or delivered live.
package presence

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services"
)

// Wire names: Name is the service clients open (with the channel name
// ChannelName); Alias is accepted as the service name too.
const (
	Name        = "presence"
	Alias       = "presencer"
	ChannelName = "presencer"
)

// MaxFileBytes bounds the path in an openFile.
const MaxFileBytes = 4096

func init() {
	for _, name := range []string{Name, Alias} {
		services.Register(name, func(env services.Env) (channels.Service, error) {
			return trackerFor(env.Hub), nil
		})
	}
}

// trackers holds the one tracker of each daemon (keyed by its hub), so that
// both wire names share a roster. A tracker leaves it when stopped.
var trackers = struct {
	mu    sync.Mutex
	byHub map[*channels.Hub]*tracker
}{byHub: make(map[*channels.Hub]*tracker)}

func trackerFor(hub *channels.Hub) *tracker {
	trackers.mu.Lock()
	defer trackers.mu.Unlock()
	t := trackers.byHub[hub]
	if t == nil {
		t = newTracker(hub, time.Now)
		trackers.byHub[hub] = t
	}
	return t
}

// tracker is the daemon's roster and the service behind both wire names.
type tracker struct {
	hub *channels.Hub
	now func() time.Time

	// mu guards the following, and is held across broadcasts and joins.
	mu       sync.Mutex
	chans    map[*instance]struct{}
	sessions map[int32]*entry
}

// entry is one session on the roster.
type entry struct {
	user   *api.User
	file   string // the file it has open; empty for none
	opened time.Time
	holds  map[*instance]struct{} // the presence channels it is attached to
}

func newTracker(hub *channels.Hub, now func() time.Time) *tracker {
	return &tracker{hub: hub, now: now, chans: make(map[*instance]struct{}), sessions: make(map[int32]*entry)}
}

var (
	_ channels.Service  = (*tracker)(nil)
	_ services.Stopper  = (*tracker)(nil)
	_ channels.Attacher = (*instance)(nil)
	_ channels.Detacher = (*instance)(nil)
)

// Open starts a presence channel.
func (t *tracker) Open(ch *channels.Channel) (channels.Handler, error) {
	in := &instance{t: t, ch: ch}
	t.mu.Lock()
	t.chans[in] = struct{}{}
	t.mu.Unlock()
	return in, nil
}

// Stop forgets the tracker; it is called once per wire name, after every
// channel has ended.
func (t *tracker) Stop(context.Context) error {
	trackers.mu.Lock()
	defer trackers.mu.Unlock()
	if trackers.byHub[t.hub] == t {
		delete(trackers.byHub, t.hub)
	}
	return nil
}

// userOf describes a session as the roster shows it.
func userOf(s *channels.Session) *api.User {
	id := s.Identity()
	roles := []string{"rw"}
	if id.ReadOnly {
		roles = []string{"ro"}
	}
	return &api.User{Id: id.UserID, Name: id.UserName, Roles: append(roles, id.Roles...), Session: s.ID()}
}

// broadcastLocked sends cmd on every presence channel, addressed by
// cmd.Session. t.mu must be held.
func (t *tracker) broadcastLocked(cmd *api.Command) {
	for in := range t.chans {
		in.ch.Send(proto.Clone(cmd).(*api.Command))
	}
}

// sortedLocked returns the roster ordered by session id. t.mu must be held.
func (t *tracker) sortedLocked() []*entry {
	out := make([]*entry, 0, len(t.sessions))
	for _, e := range t.sessions {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *entry) int { return int(a.user.Session) - int(b.user.Session) })
	return out
}

func (e *entry) fileOpened() *api.Command {
	return &api.Command{Body: &api.Command_FileOpened{FileOpened: &api.FileOpened{
		UserId:    e.user.Id,
		File:      e.file,
		Session:   e.user.Session,
		Timestamp: timestamppb.New(e.opened),
	}}}
}

// leaveLocked takes s off in and, when it holds no other presence channel,
// off the roster, telling everyone left. t.mu must be held.
func (t *tracker) leaveLocked(in *instance, session int32) {
	e := t.sessions[session]
	if e == nil {
		return
	}
	delete(e.holds, in)
	if len(e.holds) > 0 {
		return
	}
	delete(t.sessions, session)
	t.broadcastLocked(&api.Command{Body: &api.Command_Part{Part: proto.Clone(e.user).(*api.User)}})
}

// purgeLocked takes away the channels that have ended but are not closed
// yet. A channel that ends because its last session closed it never
// detaches that session; its Close does the same later, but a session that
// attaches meanwhile must not see the one that left. t.mu must be held.
func (t *tracker) purgeLocked() {
	for in := range t.chans {
		if in.ch.Context().Err() != nil {
			t.dropLocked(in)
		}
	}
}

// dropLocked takes in away with the sessions on the roster through it
// alone. t.mu must be held.
func (t *tracker) dropLocked(in *instance) {
	delete(t.chans, in)
	for id, e := range t.sessions {
		if _, ok := e.holds[in]; ok {
			t.leaveLocked(in, id)
		}
	}
}

// instance is one presence channel.
type instance struct {
	t  *tracker
	ch *channels.Channel
}

// Attach puts s on the roster (if it is not already there through another
// presence channel) and hands it the roster and the open files.
func (in *instance) Attach(s *channels.Session) {
	t := in.t
	t.mu.Lock()
	defer t.mu.Unlock()
	t.purgeLocked()
	e := t.sessions[s.ID()]
	joined := e == nil
	if joined {
		e = &entry{user: userOf(s), holds: make(map[*instance]struct{})}
		t.sessions[s.ID()] = e
	}
	e.holds[in] = struct{}{}

	roster := &api.Roster{}
	var files []*api.Command
	for _, other := range t.sortedLocked() {
		roster.User = append(roster.User, proto.Clone(other.user).(*api.User))
		if other.file != "" {
			files = append(files, other.fileOpened())
		}
	}
	in.ch.Join(s, append([]*api.Command{{Body: &api.Command_Roster{Roster: roster}}}, files...)...)
	if joined {
		t.broadcastLocked(&api.Command{Session: -s.ID(), Body: &api.Command_Join{Join: proto.Clone(e.user).(*api.User)}})
	}
}

// Detach takes s off this channel, and off the roster when it was its last
// presence channel.
func (in *instance) Detach(s *channels.Session) {
	in.t.mu.Lock()
	defer in.t.mu.Unlock()
	in.t.leaveLocked(in, s.ID())
}

// Handle serves openFile.
func (in *instance) Handle(_ context.Context, req *channels.Request) (*api.Command, error) {
	body, ok := req.Command.Body.(*api.Command_OpenFile)
	if !ok {
		return nil, channels.Unsupported(req.Command)
	}
	file := body.OpenFile.GetFile()
	if len(file) > MaxFileBytes {
		return nil, fmt.Errorf("openFile: path too long (%d bytes; at most %d)", len(file), MaxFileBytes)
	}
	if !utf8.ValidString(file) {
		return nil, fmt.Errorf("openFile: path is not valid UTF-8")
	}
	t := in.t
	t.mu.Lock()
	t.purgeLocked()
	if e := t.sessions[req.Session.ID()]; e != nil && e.file != file {
		e.file, e.opened = file, t.now()
		cmd := e.fileOpened()
		cmd.Session = -req.Session.ID()
		t.broadcastLocked(cmd)
	}
	t.mu.Unlock()
	if req.Command.Ref == "" {
		return nil, nil
	}
	return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}}, nil
}

// Close takes the channel away; sessions that were on the roster through
// it alone leave the roster.
func (in *instance) Close(context.Context) error {
	t := in.t
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropLocked(in)
	return nil
}
