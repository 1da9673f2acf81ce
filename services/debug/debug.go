// Package debug is the conman.debug service: a diagnostic echo used to
// exercise the channel machinery end to end.
//
// On a conman.debug channel:
//   - a joining session first receives a roster of the channel's members
//     (itself included), and the others receive a join for it; a leaving
//     session's part goes to those who stay;
//   - any command is echoed, without its ref, to the members its session
//     field addresses (0 everyone including the sender, > 1 that session,
//     < 0 everyone but that session), then answered with ok;
//   - debug{text: "flood N BYTES"} sends the requester N output messages of
//     BYTES bytes each, then ok (N ≤ 1,000,000, BYTES ≤ 1 MiB), at the pace
//     the requester reads them, as a well-behaved producer does;
//   - channel-0 bodies (openChan, closeChanRes, containerState, ...) are
//     not meaningful here and are answered "unsupported command".
//
// The mutating bodies (write, input, exec, ...) are refused to read-only
// sessions by the channel layer before they reach this service.
package debug

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services"
)

// Name is the service's wire name.
const Name = "conman.debug"

// Flood bounds.
const (
	maxFloodCount = 1_000_000
	maxFloodBytes = 1 << 20
)

func init() {
	services.Register(Name, func(services.Env) (channels.Service, error) {
		return channels.ServiceFunc(open), nil
	})
}

func open(ch *channels.Channel) (channels.Handler, error) {
	return &instance{ch: ch}, nil
}

type instance struct {
	ch *channels.Channel
	// mu orders joins against roster snapshots, so every member sees a
	// consistent membership.
	mu sync.Mutex
}

var (
	_ channels.Attacher = (*instance)(nil)
	_ channels.Detacher = (*instance)(nil)
)

func user(s *channels.Session) *api.User {
	id := s.Identity()
	roles := []string{"rw"}
	if id.ReadOnly {
		roles = []string{"ro"}
	}
	return &api.User{Id: id.UserID, Name: id.UserName, Roles: append(roles, id.Roles...), Session: s.ID()}
}

func (in *instance) Attach(s *channels.Session) {
	in.mu.Lock()
	defer in.mu.Unlock()
	roster := &api.Roster{User: []*api.User{user(s)}}
	for _, m := range in.ch.Members() {
		roster.User = append(roster.User, user(m))
	}
	in.ch.Join(s, &api.Command{Body: &api.Command_Roster{Roster: roster}})
	in.ch.Send(&api.Command{Session: -s.ID(), Body: &api.Command_Join{Join: user(s)}})
}

func (in *instance) Detach(s *channels.Session) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.ch.Send(&api.Command{Body: &api.Command_Part{Part: user(s)}})
}

// channel0Only are bodies that belong on channel 0.
var channel0Only = map[string]bool{
	"openChan": true, "openChanRes": true, "closeChan": true, "closeChanRes": true,
	"containerState": true, "bootStatus": true, "redirect": true, "protocolError": true,
}

func (in *instance) Handle(ctx context.Context, req *channels.Request) (*api.Command, error) {
	cmd := req.Command
	if channel0Only[channels.BodyName(cmd)] {
		return nil, channels.Unsupported(cmd)
	}
	if d, ok := cmd.Body.(*api.Command_Debug); ok && strings.HasPrefix(d.Debug.GetText(), "flood") {
		return in.flood(ctx, req, d.Debug.GetText())
	}
	echo := proto.Clone(cmd).(*api.Command)
	echo.Ref = ""
	in.ch.Send(echo)
	return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}}, nil
}

func (in *instance) flood(ctx context.Context, req *channels.Request, text string) (*api.Command, error) {
	var count, size int
	if _, err := fmt.Sscanf(text, "flood %d %d", &count, &size); err != nil {
		return nil, fmt.Errorf("usage: flood COUNT BYTES")
	}
	if count < 0 || count > maxFloodCount || size < 0 || size > maxFloodBytes {
		return nil, fmt.Errorf("flood: at most %d messages of at most %d bytes", maxFloodCount, maxFloodBytes)
	}
	payload := strings.Repeat("x", size)
	highWater := req.Session.QueueLimit() / 2
	for i := 0; i < count; i++ {
		if err := req.Session.WaitQueueBelow(ctx, highWater); err != nil {
			return nil, err
		}
		in.ch.SendTo(req.Session, &api.Command{Body: &api.Command_Output{Output: payload}})
	}
	return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}}, nil
}

func (in *instance) Close(context.Context) error { return nil }
