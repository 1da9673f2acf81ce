// Package logs is the `logs` service: it streams the daemon's own log
// records to sessions allowed to see them.
//
// It owns [Wrap], the slog.Handler the daemon wraps its log handler in,
// and the subscriptions fed by it. It must never slow the logger down and
// never let a secret through: records fan out without waiting (a
// subscriber that falls behind misses records, and is told how many), and
// attributes whose key looks like a credential (token, secret, password,
// key, …) are redacted, as is anything that looks like a token in a
// message or a value.
//
// On a logs channel:
//
//   - logSubscribe{level} from a session whose token carries the role
//     `debug` or `admin` starts the stream of records at level or above
//     ("debug", "info" — the default —, "warn", "error") to that session and
//     is answered `ok`; sent again, it changes the level. Other sessions are
//     answered `error "permission denied"`;
//   - each record is a logRecord{time, level, message, attrs}; when the
//     session missed records, a logRecord{level WARN, message "N records
//     dropped", dropped N} comes where they would have been;
//   - the stream ends when the session leaves the channel.
//
// A subscriber may ask for records below the daemon's own log level: the
// wrapped handler is then enabled for them, and only the subscriber sees
// them.
//
// # Goroutines
//
// Each subscribed session has a pump goroutine that moves records from its
// buffer to the session at the pace of the session's write queue; the
// channel's instance owns the pumps and waits for them in Close.
package logs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services"
	"github.com/conman-dev/conman/services/logs/lines"
)

// Name is the service's wire name.
const Name = "logs"

// DefaultBuffer is how many records a subscriber may have waiting before
// it misses some.
const DefaultBuffer = 1024

// Roles that may stream the daemon's log.
var allowedRoles = []string{"debug", "admin"}

var errNotWrapped = errors.New("logs: the daemon's log is not streamed (its handler is not wrapped with logs.Wrap)")

func init() {
	services.Register(Name, func(env services.Env) (channels.Service, error) {
		svc := New(env.Logger, DefaultBuffer)
		if env.Metrics != nil {
			if err := env.Metrics.Register(svc.dropped); err != nil {
				return nil, fmt.Errorf("logs metrics: %w", err)
			}
		}
		return svc, nil
	})
}

// Service makes logs instances.
type Service struct {
	broker  *broker // nil when the logger is not wrapped
	buffer  int
	dropped prometheus.Counter
}

// New returns the service streaming the records of logger, whose handler
// must come from [Wrap] (the service refuses every subscription
// otherwise). buffer is each subscriber's room (zero: DefaultBuffer).
func New(logger *slog.Logger, buffer int) *Service {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	svc := &Service{
		buffer: buffer,
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conman_logs_dropped_total",
			Help: "Daemon log records a logs subscriber missed because it read too slowly.",
		}),
	}
	if logger != nil {
		if h, ok := logger.Handler().(*handler); ok {
			svc.broker = h.broker
		}
	}
	return svc
}

// Open returns a new instance for ch.
func (svc *Service) Open(ch *channels.Channel) (channels.Handler, error) {
	ctx, cancel := context.WithCancel(context.Background())
	return &instance{svc: svc, ch: ch, ctx: ctx, cancel: cancel, subs: make(map[*channels.Session]*pump)}, nil
}

// instance is one logs channel.
type instance struct {
	svc    *Service
	ch     *channels.Channel
	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	pumps  sync.WaitGroup

	// mu guards the following.
	mu     sync.Mutex
	subs   map[*channels.Session]*pump
	closed bool
}

// pump is one subscribed session.
type pump struct {
	sub    *subscription
	cancel context.CancelFunc
}

var (
	_ channels.Detacher       = (*instance)(nil)
	_ channels.MutationPolicy = (*instance)(nil)
)

// Mutates reports false: streaming the log changes nothing, and the role,
// not write access, decides who may.
func (in *instance) Mutates(*api.Command) bool { return false }

func (in *instance) Handle(ctx context.Context, req *channels.Request) (*api.Command, error) {
	switch body := req.Command.Body.(type) {
	case *api.Command_LogSubscribe:
		if err := in.subscribe(req.Session, body.LogSubscribe.GetLevel()); err != nil {
			return nil, err
		}
		return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}}, nil
	default:
		return nil, channels.Unsupported(req.Command)
	}
}

// allowed reports whether s may read the daemon's log.
func allowed(s *channels.Session) bool {
	id := s.Identity()
	for _, role := range allowedRoles {
		if id.HasRole(role) {
			return true
		}
	}
	return false
}

// parseLevel reads a level as slog spells it ("debug", "WARN", "INFO+2");
// empty means info.
func parseLevel(text string) (slog.Level, error) {
	var level slog.Level
	if strings.TrimSpace(text) == "" {
		return slog.LevelInfo, nil
	}
	if err := level.UnmarshalText([]byte(text)); err != nil {
		return 0, fmt.Errorf("logs: bad level %q (want debug, info, warn or error)", text)
	}
	return level, nil
}

// subscribe starts s's stream at level, or changes its level.
func (in *instance) subscribe(s *channels.Session, levelText string) error {
	if !allowed(s) {
		return channels.ErrPermissionDenied
	}
	level, err := parseLevel(levelText)
	if err != nil {
		return err
	}
	b := in.svc.broker
	if b == nil {
		return errNotWrapped
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return errors.New("logs: the channel is closing")
	}
	if p := in.subs[s]; p != nil {
		b.setLevel(p.sub, level)
		return nil
	}
	ctx, cancel := context.WithCancel(in.ctx)
	p := &pump{sub: b.subscribe(level, in.svc.buffer, in.svc.dropped.Inc), cancel: cancel}
	in.subs[s] = p
	in.pumps.Add(1)
	go func() {
		defer in.pumps.Done()
		defer b.unsubscribe(p.sub)
		in.run(ctx, s, p.sub)
	}()
	return nil
}

// run moves records to s until ctx ends or s goes away.
func (in *instance) run(ctx context.Context, s *channels.Session, sub *subscription) {
	for {
		q, ok := sub.next(ctx)
		if !ok {
			return
		}
		if q.droppedBefore > 0 {
			notice := &api.LogRecord{
				Time:    nowMilli(q.entry),
				Level:   slog.LevelWarn.String(),
				Message: fmt.Sprintf("%d records dropped", q.droppedBefore),
				Dropped: q.droppedBefore,
			}
			if !lines.Send(ctx, in.ch, s, &api.Command{Body: &api.Command_LogRecord{LogRecord: notice}}) {
				return
			}
		}
		if q.entry == nil {
			continue
		}
		if !lines.Send(ctx, in.ch, s, &api.Command{Body: &api.Command_LogRecord{LogRecord: recordProto(q.entry)}}) {
			return
		}
	}
}

// Detach ends the stream of a session that left.
func (in *instance) Detach(s *channels.Session) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if p := in.subs[s]; p != nil {
		p.cancel()
		delete(in.subs, s)
	}
}

// Close ends every stream and waits for the pumps.
func (in *instance) Close(ctx context.Context) error {
	in.mu.Lock()
	in.closed = true
	in.mu.Unlock()
	in.cancel()
	in.pumps.Wait()
	return nil
}

func recordProto(e *Entry) *api.LogRecord {
	r := &api.LogRecord{
		Time:    e.Time.UnixMilli(),
		Level:   e.Level.String(),
		Message: e.Message,
		Attrs:   make([]*api.LogAttr, len(e.Attrs)),
	}
	for i, a := range e.Attrs {
		r.Attrs[i] = &api.LogAttr{Key: a.Key, Value: a.Value}
	}
	return r
}

// nowMilli is the time of a drop notice: that of the entry after the gap,
// or now when there is none.
func nowMilli(e *Entry) int64 {
	if e != nil {
		return e.Time.UnixMilli()
	}
	return time.Now().UnixMilli()
}
