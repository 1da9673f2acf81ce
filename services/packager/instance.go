package packager

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services/packager/backend"
)

// Bounds of one request.
const (
	// maxPackages bounds the packages of one add or remove.
	maxPackages = 64
	// readTimeout bounds a search or an info, registry round trips
	// included.
	readTimeout = 30 * time.Second
)

// instance is one packager3 channel.
type instance struct {
	svc *Service
	ch  *channels.Channel
}

var _ channels.Handler = (*instance)(nil)

// Handle implements channels.Handler. Reads are answered here; mutations
// are checked here and queued, and answered when they have run.
func (in *instance) Handle(ctx context.Context, req *channels.Request) (*api.Command, error) {
	reply, err := in.handle(ctx, req)
	if err != nil {
		in.logFailure(channels.BodyName(req.Command), err)
		return nil, wireError(err)
	}
	return reply, nil
}

func (in *instance) handle(ctx context.Context, req *channels.Request) (*api.Command, error) {
	switch body := req.Command.Body.(type) {
	case *api.Command_PackageSearch:
		return in.search(ctx, body.PackageSearch.GetQuery())
	case *api.Command_PackageInfo:
		return in.info(ctx, body.PackageInfo.GetPkg().GetName())
	case *api.Command_PackageListSpecfile:
		return in.list(ctx)
	case *api.Command_PackageAdd:
		return nil, in.mutate(req, "add", body.PackageAdd.GetPkgs(), func(b backend.Backend, pkgs []backend.Package) runFunc {
			return func(ctx context.Context, r backend.Runner) error { return b.Add(ctx, r, pkgs) }
		})
	case *api.Command_PackageRemove:
		return nil, in.mutate(req, "remove", body.PackageRemove.GetPkgs(), func(b backend.Backend, pkgs []backend.Package) runFunc {
			return func(ctx context.Context, r backend.Runner) error { return b.Remove(ctx, r, pkgs) }
		})
	case *api.Command_PackageInstall:
		return nil, in.mutate(req, "install", nil, installAll)
	case *api.Command_EnsurePackages:
		if body.EnsurePackages.GetInstall() {
			return nil, in.mutate(req, "install", nil, installAll)
		}
		return nil, in.mutate(req, "check", nil, func(b backend.Backend, _ []backend.Package) runFunc {
			return func(ctx context.Context, _ backend.Runner) error {
				_, err := b.List(ctx)
				return err
			}
		})
	}
	return nil, channels.Unsupported(req.Command)
}

type runFunc = func(ctx context.Context, r backend.Runner) error

func installAll(b backend.Backend, _ []backend.Package) runFunc {
	return func(ctx context.Context, r backend.Runner) error { return b.Install(ctx, r) }
}

func (in *instance) search(ctx context.Context, query string) (*api.Command, error) {
	if err := backend.CheckQuery(query); err != nil {
		return nil, err
	}
	b, err := in.svc.detect()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	start := time.Now()
	res, err := b.Search(ctx, query)
	if err != nil {
		return nil, err
	}
	if len(res.Packages) > backend.MaxResults {
		res.Packages = res.Packages[:backend.MaxResults]
	}
	attrs := []any{"language", b.Name(), "results", len(res.Packages), "took", time.Since(start).Round(time.Millisecond)}
	if res.Note != "" {
		attrs = append(attrs, "note", res.Note)
	}
	in.svc.logInfo("package search", attrs...)
	resp := &api.PackageSearchResp{Results: make([]*api.Package, 0, len(res.Packages))}
	for _, p := range res.Packages {
		resp.Results = append(resp.Results, toAPI(p))
	}
	return &api.Command{Body: &api.Command_PackageSearchResp{PackageSearchResp: resp}}, nil
}

func (in *instance) info(ctx context.Context, name string) (*api.Command, error) {
	if err := backend.CheckName(name); err != nil {
		return nil, err
	}
	b, err := in.svc.detect()
	if err != nil {
		return nil, err
	}
	if err := b.CheckPackage(backend.Package{Name: name}); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	p, err := b.Info(ctx, name)
	if err != nil {
		return nil, err
	}
	return &api.Command{Body: &api.Command_PackageInfoResp{PackageInfoResp: &api.PackageInfoResp{Pkg: toAPI(p)}}}, nil
}

func (in *instance) list(ctx context.Context) (*api.Command, error) {
	b, err := in.svc.detect()
	if err != nil {
		return nil, err
	}
	pkgs, err := b.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	resp := &api.PackageListSpecfileResp{Pkgs: make([]*api.Package, 0, len(pkgs))}
	for _, p := range pkgs {
		resp.Pkgs = append(resp.Pkgs, toAPI(p))
	}
	return &api.Command{Body: &api.Command_PackageListSpecfileResp{PackageListSpecfileResp: resp}}, nil
}

// mutate checks a mutation's packages and queues it; its reply comes when
// it has run.
func (in *instance) mutate(req *channels.Request, op string, wire []*api.Package, makeRun func(backend.Backend, []backend.Package) runFunc) error {
	pkgs, err := fromAPI(op, wire)
	if err != nil {
		return err
	}
	b, err := in.svc.detect()
	if err != nil {
		return err
	}
	if g, ok := b.(backend.Gate); ok && op != "check" {
		if err := g.MutationsAllowed(); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		if err := b.CheckPackage(p); err != nil {
			return err
		}
		names = append(names, p.Name)
	}
	what := op
	if len(names) > 0 {
		what += " " + strings.Join(names, " ")
	}
	return in.svc.queue.push(&job{owner: in, req: req, what: b.Name() + ": " + what, run: makeRun(b, pkgs)})
}

// fromAPI checks the packages of an add or remove against the rules every
// backend shares.
func fromAPI(op string, wire []*api.Package) ([]backend.Package, error) {
	if op != "add" && op != "remove" {
		return nil, nil
	}
	if len(wire) == 0 {
		return nil, backend.Errorf(backend.KindInvalid, nil, "%s: no packages given", op)
	}
	if len(wire) > maxPackages {
		return nil, backend.Errorf(backend.KindInvalid, nil, "%s: more than %d packages at once", op, maxPackages)
	}
	seen := map[string]bool{}
	out := make([]backend.Package, 0, len(wire))
	for _, w := range wire {
		p := backend.Package{Name: w.GetName(), Spec: w.GetSpec()}
		if op == "remove" {
			p.Spec = ""
		}
		if err := backend.CheckName(p.Name); err != nil {
			return nil, err
		}
		if err := backend.CheckSpec(p.Name, p.Spec); err != nil {
			return nil, err
		}
		if !seen[p.Name] {
			seen[p.Name] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// runJob runs one mutation when its turn comes, streaming its progress to
// the channel and answering the request last.
func (s *Service) runJob(ctx context.Context, j *job) {
	ch := j.owner.ch
	start := time.Now()
	ch.Send(stateCommand(api.State_Running))
	r := &backend.Exec{Output: func(text string) { ch.Send(outputCommand(text)) }}
	err := j.run(ctx, r)
	ch.Send(stateCommand(api.State_Stopped))
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		j.owner.logFailure(j.what, err, "took", took)
		j.req.Fail(wireError(err))
		return
	}
	s.logInfo("package operation done", "op", j.what, "took", took)
	j.req.Reply(&api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}})
}

// logFailure logs a failed request: at debug level for what the client
// got wrong or a channel that went away, else (paced) at info.
func (in *instance) logFailure(what string, err error, attrs ...any) {
	attrs = append([]any{"op", what, "err", err}, attrs...)
	if backend.KindOf(err) == backend.KindInvalid || errors.Is(err, channels.ErrUnsupported) {
		in.svc.log.Debug("package request refused", attrs...)
		return
	}
	if in.ch.Context().Err() != nil {
		in.svc.log.Debug("package operation ended with its channel", attrs...)
		return
	}
	in.svc.logInfo("package operation failed", attrs...)
}

// Close implements channels.Handler: the channel's waiting mutations are
// dropped and its running one (killed as the channel's context ended) is
// waited for, within ctx.
func (in *instance) Close(ctx context.Context) error {
	select {
	case <-in.svc.queue.dropOwner(in):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("packager: close: %w", ctx.Err())
	}
}
