package channels

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/conman-dev/conman/api"
)

// A Service makes a [Handler] for every new channel that names it. Services
// are registered by wire name in a [Registry].
type Service interface {
	// Open starts the instance behind a new channel. An error is reported to
	// the opening session as openChanRes{ERROR}, which the official client
	// treats as fatal: prefer to open and answer the first request with an
	// error.
	Open(ch *Channel) (Handler, error)
}

// ServiceFunc adapts a function to [Service].
type ServiceFunc func(ch *Channel) (Handler, error)

// Open calls f.
func (f ServiceFunc) Open(ch *Channel) (Handler, error) { return f(ch) }

// A Handler is one service instance: the thing behind a channel.
type Handler interface {
	// Handle processes one command sent on the channel. Calls come from the
	// channel's goroutine, one at a time, in arrival order.
	//
	// A non-nil reply is sent to the requesting session carrying the
	// request's ref; an error becomes an `error` reply with the ref. When both
	// are nil the handler either needs no reply or sends it later with
	// [Request.Reply] or [Request.Fail] (for example after a process exits).
	Handle(ctx context.Context, req *Request) (*api.Command, error)

	// Close ends the instance. It is called once, after the last Handle
	// returned; ctx bounds how long it may take to flush.
	Close(ctx context.Context) error
}

// Attacher is implemented by handlers that send a joining session some
// initial state (a scrollback, a document, a roster).
//
// Attach is called after the session's openChanRes is queued and before it
// receives anything on the channel. It must call [Channel.Join] with the
// initial messages; the session starts receiving broadcasts at that moment.
// Taking the same lock around the snapshot and Join as around the handler's
// broadcasts makes the hand-over exact: every broadcast is either in the
// snapshot or delivered live, never both, never neither.
type Attacher interface {
	Attach(s *Session)
}

// Detacher is implemented by handlers that react to a session leaving (to
// broadcast a part, drop its cursors). Detach is called after the session
// has stopped receiving messages from the channel.
type Detacher interface {
	Detach(s *Session)
}

// Lingerer is implemented by handlers of named channels that outlive their
// last session for a while (a shell that survives a page reload). A
// disconnected or vanished last session leaves the channel running for
// Linger(); a TRY_CLOSE or CLOSE still ends it at once.
type Lingerer interface {
	Linger() time.Duration
}

// MutationPolicy is implemented by handlers whose idea of which commands
// mutate state differs from [IsMutation]. Read-only sessions are refused
// every command for which Mutates reports true.
type MutationPolicy interface {
	Mutates(cmd *api.Command) bool
}

// Errors a handler may return; they become the texts clients match on.
var (
	// ErrPermissionDenied refuses a command to a session that lacks the
	// permission for it.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnsupported is wrapped by [Unsupported].
	ErrUnsupported = errors.New("unsupported command")
)

// Unsupported reports that a handler does not handle cmd's body. The channel
// turns it into `error "unsupported command <body> on service <name>"`.
func Unsupported(cmd *api.Command) error {
	return &unsupportedError{body: BodyName(cmd)}
}

type unsupportedError struct{ body string }

func (e *unsupportedError) Error() string { return "unsupported command " + e.body }
func (e *unsupportedError) Unwrap() error { return ErrUnsupported }

// Registry maps wire names to services.
type Registry struct {
	services map[string]Service
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{services: make(map[string]Service)}
}

// Register adds a service under its wire name. Registering a name twice is a
// programming error and panics, so it is caught at start-up.
func (r *Registry) Register(name string, svc Service) {
	if name == "" {
		panic("channels: service registered without a name")
	}
	if svc == nil {
		panic(fmt.Sprintf("channels: service %q registered as nil", name))
	}
	if _, dup := r.services[name]; dup {
		panic(fmt.Sprintf("channels: service %q registered twice", name))
	}
	r.services[name] = svc
}

// Lookup returns the service registered under name.
func (r *Registry) Lookup(name string) (Service, bool) {
	svc, ok := r.services[name]
	return svc, ok
}

// Names lists the registered names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.services))
	for name := range r.services {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
