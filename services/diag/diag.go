// Package diag serves the daemon's diagnostics and operator messages:
// profiles, metrics, a recording of a session's frames, and toasts.
//
// The bodies are served on channel 0 and on channels of the `diag`
// service alike:
//
//   - pprofRequest{id, <kind>} → pprofResponse{id, profile}: the CPU
//     profile over pprofCpuProfileRequest.seconds (0 means 1; at most
//     [MaxCPUSeconds]), or the heap (gc: collect first), allocs, block or
//     mutex profile; debug asks for the text form instead of the gzipped
//     protobuf one. A request with no kind is the goroutine profile (the
//     protocol has no message for it). Block and mutex profiles hold what
//     the runtime samples, nothing unless the process set a rate.
//   - metrics{} → metrics{prometheusMetricFamilies}: every family of the
//     daemon's registry, each a serialized io.prometheus.client.MetricFamily.
//   - startVCR{} → ok: from now on the requesting session's frames, in and
//     out, are recorded in a ring of at most [VCREntries] frames and
//     [VCRBytes] bytes (a frame over [VCRFrameBytes] is kept as a note of
//     its size); a second startVCR starts afresh.
//   - readVCR{} → VCRLog{log: [{timestamp (unix milliseconds), direction
//     IN (from the client) or OUT, command, uid (the user id)}]}, oldest
//     first; without startVCR, an error.
//   - toast{text} → ok, after sending toast{text} on channel 0 to every
//     session (text: 1 to [MaxToastBytes] bytes).
//
// Toasts need the "admin" role in the session's token; everything else the
// "debug" role. Others are answered "permission denied". Any other body is
// answered "unsupported command <body> on service diag", whoever sends it.
//
// On channel 0 a CPU profile runs in a goroutine of its own, so the
// session's read loop goes on meanwhile; its reply comes when it is done.
// On a diag channel it runs in the channel's goroutine.
//
// The package owns those goroutines and the recorders it installs; it
// never imports another service.
//
// # Concurrency
//
// Service.wg counts the CPU profiles started for channel 0; Stop cancels
// them and waits. Only one CPU profile runs at a time in a process (the
// runtime's rule); a second is refused.
package diag

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services"
)

// Name is the wire name of the service.
const Name = "diag"

// Roles the bodies need.
const (
	DebugRole = "debug"
	AdminRole = "admin"
)

// Limits.
const (
	MaxCPUSeconds = 30
	VCREntries    = 2000
	VCRBytes      = 8 << 20
	VCRFrameBytes = 256 << 10
	MaxToastBytes = 1024
)

func init() {
	services.Register(Name, func(env services.Env) (channels.Service, error) {
		return New(env), nil
	})
}

// bodies are the bodies this package serves.
var bodies = []string{"pprofRequest", "metrics", "startVCR", "readVCR", "toast"}

// Service serves diagnostics for one daemon.
type Service struct {
	hub      *channels.Hub
	gatherer prometheus.Gatherer // nil when the daemon's registry cannot gather
	ctx      context.Context     // canceled by Stop
	cancel   context.CancelFunc
	wg       sync.WaitGroup // CPU profiles running for channel 0

	// mu guards the following.
	mu   sync.Mutex
	vcrs map[*channels.Session]*vcr
}

var (
	_ channels.Service = (*Service)(nil)
	_ services.Stopper = (*Service)(nil)
)

// New builds the service and registers its channel-0 bodies with env.Hub
// (when there is one).
func New(env services.Env) *Service {
	ctx, cancel := context.WithCancel(context.Background())
	svc := &Service{hub: env.Hub, ctx: ctx, cancel: cancel, vcrs: make(map[*channels.Session]*vcr)}
	if g, ok := env.Metrics.(prometheus.Gatherer); ok {
		svc.gatherer = g
	}
	if env.Hub != nil {
		for _, body := range bodies {
			env.Hub.HandleChannel0(body, svc.handle0)
		}
	}
	return svc
}

// Stop ends the CPU profiles still running and waits for them.
func (svc *Service) Stop(ctx context.Context) error {
	svc.cancel()
	done := make(chan struct{})
	go func() {
		svc.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Open starts a diag channel.
func (svc *Service) Open(*channels.Channel) (channels.Handler, error) {
	return handler{svc}, nil
}

type handler struct{ svc *Service }

func (h handler) Handle(ctx context.Context, req *channels.Request) (*api.Command, error) {
	// A body the service does not serve is unsupported whoever sends it:
	// the answer names the command rather than the missing role.
	if !slices.Contains(bodies, channels.BodyName(req.Command)) {
		return nil, channels.Unsupported(req.Command)
	}
	if err := authorize(req.Session, req.Command); err != nil {
		return nil, err
	}
	return h.svc.serve(ctx, req.Session, req.Command)
}

func (handler) Close(context.Context) error { return nil }

// authorize checks the role cmd needs.
func authorize(s *channels.Session, cmd *api.Command) error {
	role := DebugRole
	if _, ok := cmd.Body.(*api.Command_Toast); ok {
		role = AdminRole
	}
	if !s.Identity().HasRole(role) {
		return channels.ErrPermissionDenied
	}
	return nil
}

// handle0 serves a body on channel 0. A CPU profile goes to a goroutine
// of its own and replies when it is done.
func (svc *Service) handle0(_ context.Context, s *channels.Session, cmd *api.Command) (*api.Command, error) {
	if err := authorize(s, cmd); err != nil {
		return nil, err
	}
	if pr := cmd.GetPprofRequest(); pr != nil && pr.GetPprofCpuProfileRequest() != nil {
		ref := cmd.Ref
		svc.wg.Add(1)
		go func() {
			defer svc.wg.Done()
			reply, err := svc.serve(svc.ctx, s, cmd)
			if err != nil {
				reply = &api.Command{Body: &api.Command_Error{Error: err.Error()}}
			}
			reply.Ref = ref
			s.Send0(reply)
		}()
		return nil, nil
	}
	return svc.serve(svc.ctx, s, cmd)
}

// serve runs one authorized command for s.
func (svc *Service) serve(ctx context.Context, s *channels.Session, cmd *api.Command) (*api.Command, error) {
	switch body := cmd.Body.(type) {
	case *api.Command_PprofRequest:
		profile, err := takeProfile(ctx, body.PprofRequest)
		if err != nil {
			return nil, err
		}
		return &api.Command{Body: &api.Command_PprofResponse{PprofResponse: &api.PprofResponse{Id: body.PprofRequest.GetId(), Profile: profile}}}, nil
	case *api.Command_Metrics:
		return svc.metrics()
	case *api.Command_StartVCR:
		svc.startVCR(s)
		return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}}, nil
	case *api.Command_ReadVCR:
		log, err := svc.readVCR(s)
		if err != nil {
			return nil, err
		}
		return &api.Command{Body: &api.Command_VCRLog{VCRLog: log}}, nil
	case *api.Command_Toast:
		text := body.Toast.GetText()
		switch {
		case text == "":
			return nil, errors.New("toast: empty text")
		case len(text) > MaxToastBytes:
			return nil, fmt.Errorf("toast: text too long (%d bytes; at most %d)", len(text), MaxToastBytes)
		case !utf8.ValidString(text):
			return nil, errors.New("toast: text is not valid UTF-8")
		}
		if svc.hub != nil {
			svc.hub.Toast(text)
		}
		return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}}, nil
	}
	return nil, channels.Unsupported(cmd)
}

// metrics gathers the daemon's registry.
func (svc *Service) metrics() (*api.Command, error) {
	if svc.gatherer == nil {
		return nil, errors.New("metrics: the daemon's registry cannot be gathered")
	}
	families, err := svc.gatherer.Gather()
	if err != nil && len(families) == 0 {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	// A partial gather (one collector failed) still returns the rest.
	out := &api.Metrics{PrometheusMetricFamilies: make([][]byte, 0, len(families))}
	for _, mf := range families {
		b, err := proto.Marshal(mf)
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		out.PrometheusMetricFamilies = append(out.PrometheusMetricFamilies, b)
	}
	return &api.Command{Body: &api.Command_Metrics{Metrics: out}}, nil
}

// startVCR installs a fresh recorder on s.
func (svc *Service) startVCR(s *channels.Session) {
	v := newVCR(strconv.FormatUint(uint64(s.Identity().UserID), 10), VCREntries, VCRBytes, VCRFrameBytes)
	svc.mu.Lock()
	svc.pruneLocked()
	svc.vcrs[s] = v
	svc.mu.Unlock()
	s.SetRecorder(v)
}

// readVCR returns what s's recorder holds.
func (svc *Service) readVCR(s *channels.Session) (*api.VCRLog, error) {
	svc.mu.Lock()
	svc.pruneLocked()
	v := svc.vcrs[s]
	svc.mu.Unlock()
	if v == nil {
		return nil, errors.New("readVCR: not recording (send startVCR first)")
	}
	return v.log(), nil
}

// pruneLocked forgets the recorders of sessions that have ended (the
// recorder goes with its session; this drops the service's reference).
// svc.mu must be held.
func (svc *Service) pruneLocked() {
	if svc.hub == nil {
		return
	}
	for s := range svc.vcrs {
		if live, ok := svc.hub.Session(s.ID()); !ok || live != s {
			delete(svc.vcrs, s)
		}
	}
}
