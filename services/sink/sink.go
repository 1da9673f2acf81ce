// Package sink is the conman.sink service: it accepts every command and
// does nothing with it, answering ok when the command carries a ref. It is
// the no-op end of routing benchmarks and load tests.
package sink

import (
	"context"
	"sync/atomic"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services"
)

// Name is the service's wire name.
const Name = "conman.sink"

func init() {
	services.Register(Name, func(services.Env) (channels.Service, error) {
		return New(), nil
	})
}

// Sink is the service; Received counts the commands it has taken.
type Sink struct {
	received atomic.Int64
}

// New returns a sink.
func New() *Sink { return &Sink{} }

// Received is how many commands the sink's channels have taken.
func (s *Sink) Received() int64 { return s.received.Load() }

// Open implements channels.Service.
func (s *Sink) Open(*channels.Channel) (channels.Handler, error) { return handler{s}, nil }

type handler struct{ s *Sink }

// Mutates reports false: the sink changes nothing, so read-only sessions may
// use it too.
func (handler) Mutates(*api.Command) bool { return false }

func (h handler) Handle(_ context.Context, req *channels.Request) (*api.Command, error) {
	h.s.received.Add(1)
	if req.Command.Ref == "" {
		return nil, nil
	}
	return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}}, nil
}

func (handler) Close(context.Context) error { return nil }
