// Package chat is the chat service: named rooms whose members talk to each
// other, with a short history that survives restarts.
//
// On a chat channel (each channel name is one room):
//
//   - a joining session first receives chatScrollback{scrollback} with the
//     room's last [DefaultHistory] messages, oldest first (empty for a new
//     room);
//   - chatMessage{text} is sent to every other session on the channel as
//     chatMessage{username, text}, and kept in the history; with a ref it
//     is answered ok once the message is durable;
//   - chatTyping{typing} is sent to every other session as
//     chatTyping{username, typing} and not kept;
//   - the username is always the sender's, from its token: what a client
//     puts there is ignored.
//
// A message is at most [DefaultMaxMessageBytes] bytes of text ("chat
// message too long" otherwise). Each session has a token bucket for
// messages and another for typing notices, shared by every room it is in;
// a command that finds its bucket empty is not relayed and the sender gets
// `error "chat: too many messages; slow down"` (or "... typing notices
// ..."), with its ref when it had one.
//
// A named room's history lives in the data dir, DataDir/chat/<hash of the
// name>.log, appended and fsynced message by message and compacted when it
// grows (see store.go); a torn tail from a crash is cut off when the room
// is next loaded. At most [DefaultMaxRooms] rooms keep a history on disk;
// a message that would start one more is refused ("chat: too many rooms
// with a history"). An anonymous channel's room is private to its session
// and kept in memory only.
//
// The package owns its rooms' logs and nothing else; it never imports
// another service.
//
// # Concurrency
//
// Rooms are shared by the channels that name them (a channel that is ending
// and a new one of the same name may overlap) and counted by reference. A
// room's mutex is held across its history, its log and every broadcast and
// Join of its channels, so a joining session's scrollback and the live
// messages fit exactly. The service's mutex (rooms, senders, the count of
// logs) is taken after a room's, never before.
package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services"
)

// Name is the service's wire name.
const Name = "chat"

// Defaults.
const (
	DefaultHistory         = 100
	DefaultMaxMessageBytes = 8 << 10
	DefaultMessageRate     = 5.0 // messages per second, sustained
	DefaultMessageBurst    = 20
	DefaultTypingRate      = 10.0
	DefaultTypingBurst     = 20
	DefaultMaxRooms        = 1000
)

// Options configures the service. Zero values mean the defaults above.
type Options struct {
	// History is how many messages a room keeps and replays.
	History int
	// MaxMessageBytes bounds the text of one message.
	MaxMessageBytes int
	// MessageRate and MessageBurst shape each session's bucket for
	// messages; TypingRate and TypingBurst the one for typing notices.
	MessageRate  float64
	MessageBurst int
	TypingRate   float64
	TypingBurst  int
	// MaxRooms bounds the rooms with a history on disk (default
	// DefaultMaxRooms); a message that would start one more is refused.
	MaxRooms int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.History <= 0 {
		o.History = DefaultHistory
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.MessageRate <= 0 {
		o.MessageRate = DefaultMessageRate
	}
	if o.MessageBurst <= 0 {
		o.MessageBurst = DefaultMessageBurst
	}
	if o.TypingRate <= 0 {
		o.TypingRate = DefaultTypingRate
	}
	if o.TypingBurst <= 0 {
		o.TypingBurst = DefaultTypingBurst
	}
	if o.MaxRooms <= 0 {
		o.MaxRooms = DefaultMaxRooms
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

var configured struct {
	mu   sync.Mutex
	opts Options
}

// Configure sets the options of the services built from now on (the
// daemon's flags call it before the daemon is built).
func Configure(opts Options) {
	configured.mu.Lock()
	defer configured.mu.Unlock()
	configured.opts = opts
}

func init() {
	services.Register(Name, func(env services.Env) (channels.Service, error) {
		configured.mu.Lock()
		opts := configured.opts
		configured.mu.Unlock()
		return New(env, opts), nil
	})
}

// Service is the chat service of one daemon.
type Service struct {
	opts       Options
	dir        string
	loadFailed atomic.Bool // a room failed to load (and it was logged)

	// mu guards the following. Lock order: a room's mutex, then this one.
	mu       sync.Mutex
	rooms    map[string]*room  // named rooms in use, by channel name
	senders  map[int32]*sender // sessions on any chat channel, by id
	logFiles int               // room logs in dir; -1 until counted
}

// sender is one session's rate limits, shared by every room it is in, so
// that spreading a flood over many rooms does not multiply it.
type sender struct {
	refs             int // chat channels the session is attached to
	messages, typing bucket
}

var (
	_ channels.Service  = (*Service)(nil)
	_ channels.Attacher = (*instance)(nil)
	_ channels.Detacher = (*instance)(nil)
)

// New returns the service; rooms keep their logs in env.DataDir/chat.
func New(env services.Env, opts Options) *Service {
	opts.setDefaults()
	return &Service{
		opts:     opts,
		dir:      filepath.Join(env.DataDir, Name),
		rooms:    make(map[string]*room),
		senders:  make(map[int32]*sender),
		logFiles: -1,
	}
}

// room is one chat room and its history.
type room struct {
	name string // "" for an anonymous channel's room
	refs int    // channels using the room; Service.mu guards it

	// mu guards the following; it is held across broadcasts and joins.
	mu      sync.Mutex
	history []*api.ChatMessage
	log     *roomLog // nil for an anonymous room
	logErr  bool     // a log failure was logged already
}

// logPath names a room's log: channel names are the clients' choice, so
// the file is named by a hash of the name.
func (svc *Service) logPath(name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(svc.dir, hex.EncodeToString(sum[:16])+".log")
}

// recordLimit bounds one record of a log when it is read and written:
// generous, so that a log written with a larger message limit still loads
// whole after the limit is lowered.
func (svc *Service) recordLimit() int {
	return max(1<<20, svc.opts.MaxMessageBytes+64<<10)
}

// acquire returns the room a channel named name uses, loading it on first
// use.
func (svc *Service) acquire(name string) (*room, error) {
	if name == "" {
		return &room{}, nil
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if r := svc.rooms[name]; r != nil {
		r.refs++
		return r, nil
	}
	log, history, err := loadLog(svc.logPath(name), svc.opts.History, svc.recordLimit())
	if err != nil {
		return nil, err
	}
	log.reserve = svc.reserveLog
	r := &room{name: name, refs: 1, history: history, log: log}
	svc.rooms[name] = r
	return r, nil
}

// ErrTooManyRooms refuses a message that would start a room's log when
// MaxRooms logs exist.
var ErrTooManyRooms = errors.New("chat: too many rooms with a history")

// reserveLog counts a new room log, refusing it beyond MaxRooms. It is
// called with the room's mutex held.
func (svc *Service) reserveLog() error {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if svc.logFiles < 0 {
		matches, _ := filepath.Glob(filepath.Join(svc.dir, "*.log"))
		svc.logFiles = len(matches)
	}
	if svc.logFiles >= svc.opts.MaxRooms {
		return ErrTooManyRooms
	}
	svc.logFiles++
	return nil
}

// release drops a channel's reference to r, closing its log after the last.
func (svc *Service) release(r *room) error {
	if r.name == "" {
		return nil
	}
	svc.mu.Lock()
	r.refs--
	last := r.refs == 0
	if last {
		delete(svc.rooms, r.name)
	}
	svc.mu.Unlock()
	if !last {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.close()
}

// Open starts a chat channel on its room.
func (svc *Service) Open(ch *channels.Channel) (channels.Handler, error) {
	r, err := svc.acquire(ch.Name())
	if err != nil {
		// Open anyway and answer with the error: openChanRes{ERROR} ends
		// the official client.
		if svc.loadFailed.CompareAndSwap(false, true) { // once, not per client
			ch.Logger().Error("chat room unavailable", "err", err)
		}
		return &instance{svc: svc, ch: ch, err: fmt.Errorf("chat: room unavailable: %w", err), members: make(map[int32]bool)}, nil
	}
	return &instance{svc: svc, ch: ch, room: r, members: make(map[int32]bool)}, nil
}

// join counts s as a sender on one more channel.
func (svc *Service) join(session int32) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	sd := svc.senders[session]
	if sd == nil {
		sd = new(sender)
		svc.senders[session] = sd
	}
	sd.refs++
}

// leave counts s on one channel less, forgetting it after the last.
func (svc *Service) leave(session int32) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if sd := svc.senders[session]; sd != nil {
		if sd.refs--; sd.refs <= 0 {
			delete(svc.senders, session)
		}
	}
}

// take spends one token of the session's bucket for messages or typing
// notices. A session on no chat channel (its commands still queued after
// it left) gets none.
func (svc *Service) take(session int32, typing bool) bool {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	sd := svc.senders[session]
	if sd == nil {
		return false
	}
	now := svc.opts.Now()
	if typing {
		return sd.typing.take(now, svc.opts.TypingRate, svc.opts.TypingBurst)
	}
	return sd.messages.take(now, svc.opts.MessageRate, svc.opts.MessageBurst)
}

// instance is one chat channel.
type instance struct {
	svc  *Service
	ch   *channels.Channel
	room *room // nil when err is set
	err  error

	// mu guards the following.
	mu      sync.Mutex
	members map[int32]bool // sessions attached, each counted as a sender
}

// Attach hands s the room's history.
func (in *instance) Attach(s *channels.Session) {
	in.mu.Lock()
	if !in.members[s.ID()] {
		in.members[s.ID()] = true
		in.svc.join(s.ID())
	}
	in.mu.Unlock()
	if in.room == nil {
		in.ch.Join(s)
		return
	}
	r := in.room
	r.mu.Lock()
	defer r.mu.Unlock()
	scrollback := make([]*api.ChatMessage, len(r.history))
	for i, msg := range r.history {
		scrollback[i] = proto.Clone(msg).(*api.ChatMessage)
	}
	in.ch.Join(s, &api.Command{Body: &api.Command_ChatScrollback{ChatScrollback: &api.ChatScrollback{Scrollback: scrollback}}})
}

// Detach stops counting s as a sender here.
func (in *instance) Detach(s *channels.Session) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.members[s.ID()] {
		delete(in.members, s.ID())
		in.svc.leave(s.ID())
	}
}

var errTooFast = errors.New("chat: too many messages; slow down")
var errTypingTooFast = errors.New("chat: too many typing notices; slow down")

// Handle serves chatMessage and chatTyping.
func (in *instance) Handle(_ context.Context, req *channels.Request) (*api.Command, error) {
	switch body := req.Command.Body.(type) {
	case *api.Command_ChatMessage:
		if in.err != nil {
			return nil, in.err
		}
		text := body.ChatMessage.GetText()
		if max := in.svc.opts.MaxMessageBytes; len(text) > max {
			return nil, fmt.Errorf("chat message too long (%d bytes; at most %d)", len(text), max)
		}
		if !in.svc.take(req.Session.ID(), false) {
			return nil, errTooFast
		}
		msg := &api.ChatMessage{Username: req.Session.Identity().UserName, Text: text}
		if err := in.post(req.Session, msg); err != nil {
			return nil, err
		}
	case *api.Command_ChatTyping:
		if in.err != nil {
			return nil, in.err
		}
		if !in.svc.take(req.Session.ID(), true) {
			return nil, errTypingTooFast
		}
		in.ch.Send(&api.Command{Session: -req.Session.ID(), Body: &api.Command_ChatTyping{ChatTyping: &api.ChatTyping{
			Username: req.Session.Identity().UserName,
			Typing:   body.ChatTyping.GetTyping(),
		}}})
	default:
		return nil, channels.Unsupported(req.Command)
	}
	if req.Command.Ref == "" {
		return nil, nil
	}
	return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}}, nil
}

// post stores msg durably, then relays it to everyone on the channel but
// the sender.
func (in *instance) post(sender *channels.Session, msg *api.ChatMessage) error {
	r := in.room
	r.mu.Lock()
	defer r.mu.Unlock()
	history := append(r.history, msg)
	if len(history) > in.svc.opts.History {
		history = history[len(history)-in.svc.opts.History:]
	}
	if r.log != nil {
		if err := r.log.append(msg, history); err != nil {
			if errors.Is(err, ErrTooManyRooms) {
				return err
			}
			if !r.logErr {
				r.logErr = true
				in.ch.Logger().Error("chat room log failed", "err", err)
			}
			return errors.New("chat: the message could not be stored")
		}
	}
	// Trimming from the front keeps the backing array only until append
	// next reallocates it, so memory stays bounded by the history.
	r.history = history
	in.ch.Send(&api.Command{Session: -sender.ID(), Body: &api.Command_ChatMessage{ChatMessage: proto.Clone(msg).(*api.ChatMessage)}})
	return nil
}

// Close releases the room and the sessions still counted here (a channel
// ended by its last session's closeChan never detaches it).
func (in *instance) Close(context.Context) error {
	in.mu.Lock()
	for id := range in.members {
		in.svc.leave(id)
	}
	clear(in.members)
	in.mu.Unlock()
	if in.room == nil {
		return nil
	}
	return in.svc.release(in.room)
}

// bucket is a token bucket: it holds up to burst tokens and gains rate
// tokens a second. The zero bucket is full.
type bucket struct {
	tokens  float64
	last    time.Time
	started bool
}

func (b *bucket) take(now time.Time, rate float64, burst int) bool {
	if !b.started {
		b.tokens, b.last, b.started = float64(burst), now, true
	}
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(float64(burst), b.tokens+elapsed*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
