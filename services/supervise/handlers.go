package supervise

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services/logs/lines"
)

// Open returns an instance for ch.
func (svc *Service) Open(ch *channels.Channel) (channels.Handler, error) {
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{svc: svc, ch: ch, ctx: ctx, cancel: cancel, pumps: make(map[*channels.Session]context.CancelFunc)}
	if name, ok := strings.CutPrefix(ch.Name(), LogChannelPrefix); ok {
		in.following, in.follow = true, name
		return in, nil
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	svc.instances[in] = struct{}{}
	return in, nil
}

// Stop stops the services one after the other, the one started last
// first, and waits for every supervising goroutine. When ctx ends first,
// what is left is stopped all at once.
func (svc *Service) Stop(ctx context.Context) error {
	svc.mu.Lock()
	svc.stopped = true
	var running []*unit
	for _, u := range svc.units {
		if u.run != nil {
			running = append(running, u)
		}
	}
	slices.SortFunc(running, func(a, b *unit) int { return cmp.Compare(b.startSeq, a.startSeq) })
	runners := make([]*runner, len(running))
	for i, u := range running {
		runners[i] = u.run
	}
	svc.mu.Unlock()

	var err error
	for _, r := range runners {
		svc.mu.Lock()
		r.stopLocked()
		svc.mu.Unlock()
		select {
		case <-r.done:
		case <-ctx.Done():
			err = fmt.Errorf("services: stop: %w", ctx.Err())
		}
		if err != nil {
			break
		}
	}
	svc.cancel()
	svc.wg.Wait() // the groups get SIGKILL after the kill grace
	return err
}

// errNoService is the error for an unknown name.
func (svc *Service) errNoService(name string) error {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return svc.errNoServiceLocked(name)
}

func (svc *Service) errNoServiceLocked(name string) error {
	if svc.replitErr != nil {
		return fmt.Errorf("services: no service %q (and %v)", name, svc.replitErr)
	}
	return fmt.Errorf("services: no service %q", name)
}

// enable defines or picks a service and starts it; it answers req.
func (svc *Service) enable(req *channels.Request, sp *api.ServiceSpec) error {
	name := sp.GetName()
	if err := checkName(name); err != nil {
		return err
	}
	if len(sp.GetArgs()) > 0 && sp.Args[0] == "" {
		return errors.New("services: no command given")
	}
	svc.refreshReplit()
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if svc.stoppingLocked() {
		return errStopping
	}
	u := svc.units[name]
	redefined := false
	if len(sp.GetArgs()) > 0 {
		def := spec{Args: slices.Clone(sp.Args), Env: maps.Clone(sp.GetEnv()), Restart: sp.GetRestart()}
		switch {
		case u == nil:
			u = svc.newUnit(name, sourceAPI)
			u.spec = def
			svc.units[name] = u
		case u.source == sourceReplit:
			return fmt.Errorf("services: %q is declared in .replit: change it there, or enable it by name", name)
		case !u.spec.equal(def):
			u.spec, redefined = def, true
		}
	} else {
		if u == nil {
			return svc.errNoServiceLocked(name)
		}
		if u.defErr != nil {
			return u.defErr
		}
		if u.source == sourceReplit && !u.declared {
			return fmt.Errorf("services: %q is no longer declared in .replit", name)
		}
	}
	if !u.enabled {
		svc.enabledSeq++
		u.enabled, u.enabledSeq = true, svc.enabledSeq
	}
	switch {
	case u.run == nil:
		u.restarts, u.reason, u.state = 0, "", api.ServiceStatus_STANDBY
		svc.startRunnerLocked(u, nil, nil)
	case redefined || u.run.canceled:
		// A new definition, or it is being disabled: the next runner
		// starts once this one has stopped.
		old := u.run
		old.stopLocked()
		u.restarts, u.reason = 0, ""
		svc.startRunnerLocked(u, old, nil)
	}
	svc.saveLocked()
	st := u.statusLocked()
	req.Reply(&api.Command{Body: &api.Command_Service{Service: st}})
	svc.broadcastLocked(u.statusLocked())
	return nil
}

// disable marks a service disabled and stops it. It returns the runner
// to wait for before answering, or answers req itself.
func (svc *Service) disable(req *channels.Request, name string) (*unit, *runner, error) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	u := svc.units[name]
	if u == nil {
		return nil, nil, svc.errNoServiceLocked(name)
	}
	u.enabled = false
	if r := u.run; r != nil {
		r.stopLocked()
		svc.saveLocked()
		return u, r, nil
	}
	u.state, u.nextStartAt = api.ServiceStatus_PASSIVE, time.Time{}
	req.Reply(&api.Command{Body: &api.Command_Service{Service: u.statusLocked()}})
	svc.changedLocked(u)
	return nil, nil, nil
}

// destroy forgets a service and stops it. It returns the runner to wait
// for before answering, if any.
func (svc *Service) destroy(name string) (*unit, *runner, error) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	u := svc.units[name]
	if u == nil {
		return nil, nil, svc.errNoServiceLocked(name)
	}
	if u.source == sourceReplit && u.declared {
		return nil, nil, fmt.Errorf("services: %q is declared in .replit: remove it there, or disable it", name)
	}
	delete(svc.units, name)
	u.enabled = false
	svc.saveLocked()
	st := u.statusLocked()
	st.State, st.Reason, st.Pid = api.ServiceStatus_PASSIVE, "destroyed", 0
	svc.broadcastLocked(st)
	if u.run != nil {
		u.run.stopLocked()
	}
	return u, u.run, nil
}

// list answers req with the services filter selects, by name.
func (svc *Service) list(req *channels.Request, filter api.ServiceList_Filter) {
	svc.refreshReplit()
	svc.mu.Lock()
	defer svc.mu.Unlock()
	res := &api.ServiceListRes{}
	for _, name := range slices.Sorted(maps.Keys(svc.units)) {
		u := svc.units[name]
		if (filter == api.ServiceList_ENABLED && !u.enabled) || (filter == api.ServiceList_DISABLED && u.enabled) {
			continue
		}
		res.Services = append(res.Services, u.statusLocked())
	}
	req.Reply(&api.Command{Body: &api.Command_ServiceListRes{ServiceListRes: res}})
}

// instance is one services channel.
type instance struct {
	svc       *Service
	ch        *channels.Channel
	following bool            // the channel is log:<name>: it streams that service's log
	follow    string          // the name
	ctx       context.Context // ends with Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup // pumps and waiters

	// mu guards the following.
	mu     sync.Mutex
	pumps  map[*channels.Session]context.CancelFunc
	closed bool
}

var (
	_ channels.Attacher       = (*instance)(nil)
	_ channels.Detacher       = (*instance)(nil)
	_ channels.MutationPolicy = (*instance)(nil)
)

// Mutates reports whether cmd changes a service: read-only sessions may
// list and follow logs only.
func (in *instance) Mutates(cmd *api.Command) bool {
	switch cmd.GetBody().(type) {
	case *api.Command_ServiceEnable, *api.Command_ServiceDisable, *api.Command_ServiceDestroy:
		return true
	}
	return channels.IsMutation(cmd)
}

func (in *instance) Handle(ctx context.Context, req *channels.Request) (*api.Command, error) {
	switch body := req.Command.Body.(type) {
	case *api.Command_ServiceEnable:
		return nil, in.svc.enable(req, body.ServiceEnable)
	case *api.Command_ServiceDisable:
		u, r, err := in.svc.disable(req, body.ServiceDisable.GetName())
		if err != nil || r == nil {
			return nil, err
		}
		in.afterStop(r, func() {
			in.svc.mu.Lock()
			defer in.svc.mu.Unlock()
			req.Reply(&api.Command{Body: &api.Command_Service{Service: u.statusLocked()}})
		})
		return nil, nil
	case *api.Command_ServiceDestroy:
		u, r, err := in.svc.destroy(body.ServiceDestroy.GetName())
		if err != nil {
			return nil, err
		}
		done := func() {
			u.ring.Append(lines.System("destroyed"))
			u.ring.Close()
			req.Reply(&api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}})
		}
		if r == nil {
			done()
		} else {
			in.afterStop(r, done)
		}
		return nil, nil
	case *api.Command_ServiceList:
		in.svc.list(req, body.ServiceList.GetFilter())
		return nil, nil
	default:
		return nil, channels.Unsupported(req.Command)
	}
}

// afterStop runs fn once r has ended, in a goroutine the instance waits
// for; fn is not run when the instance closes first.
func (in *instance) afterStop(r *runner, fn func()) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return
	}
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		select {
		case <-r.done:
			fn()
		case <-in.ctx.Done():
		}
	}()
}

// Attach joins s; on a log:<name> channel it starts s's pump.
func (in *instance) Attach(s *channels.Session) {
	if !in.following {
		in.ch.Join(s)
		return
	}
	in.svc.mu.Lock()
	u := in.svc.units[in.follow]
	in.svc.mu.Unlock()
	if u == nil {
		in.ch.Join(s, &api.Command{Body: &api.Command_Error{Error: in.svc.errNoService(in.follow).Error()}})
		return
	}
	// Lines before the boundary are history for s: fixed here, before s
	// joins; the pump starts at the oldest line the ring still holds.
	oldest, boundary := u.ring.Bounds()
	in.ch.Join(s)
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed || in.pumps[s] != nil {
		return
	}
	ctx, cancel := context.WithCancel(in.ctx)
	in.pumps[s] = cancel
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		in.pump(ctx, s, u.ring, oldest, boundary)
	}()
}

// pumpBatch is how many lines a pump takes from the ring at once.
const pumpBatch = 256

// pump streams ring to s from line from on, until the ring closes or ctx
// ends.
func (in *instance) pump(ctx context.Context, s *channels.Session, ring *lines.Ring, from, boundary uint64) {
	for {
		batch, skipped, closed, changed := ring.Read(from, pumpBatch)
		if skipped > 0 {
			notice := lines.System(fmt.Sprintf("[%d lines skipped: this session fell behind]", skipped)).Proto(in.follow, false)
			notice.Seq, notice.Skipped = from, skipped
			if !lines.Send(ctx, in.ch, s, &api.Command{Body: &api.Command_ServiceLog{ServiceLog: notice}}) {
				return
			}
			from += skipped
		}
		for _, l := range batch {
			msg := &api.Command{Body: &api.Command_ServiceLog{ServiceLog: l.Proto(in.follow, l.Seq < boundary)}}
			if !lines.Send(ctx, in.ch, s, msg) {
				return
			}
			from = l.Seq + 1
		}
		if len(batch) > 0 {
			continue
		}
		if closed {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// Detach stops the pump of a session that left.
func (in *instance) Detach(s *channels.Session) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if cancel := in.pumps[s]; cancel != nil {
		cancel()
		delete(in.pumps, s)
	}
}

// Close stops the pumps and waiters and waits for them.
func (in *instance) Close(ctx context.Context) error {
	in.svc.mu.Lock()
	delete(in.svc.instances, in)
	in.svc.mu.Unlock()
	in.mu.Lock()
	in.closed = true
	in.mu.Unlock()
	in.cancel()
	in.wg.Wait()
	return nil
}
