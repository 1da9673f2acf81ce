// Package contained is the `contained` service: contained tests.
// runContainedTest runs a project's tests in a scratch directory of their
// own, with the project's test runner, and reports each failing test.
//
// On a contained channel:
//
//   - runContainedTest{suite, project} lays out, in a new scratch
//     directory, every file of project and then suite (so the suite wins a
//     clash), at their workspace-relative paths (a leading "/" means the
//     workspace root). A file with content gets that content; a file
//     without content is copied from the workspace (a directory with
//     everything in it, directory links left out; a path the workspace
//     does not have becomes an empty file). The project is at most
//     Options.MaxProjectBytes;
//   - the runner is chosen by the suite's extension: `.go` runs `go test
//     -json -count=1 ./...` in the suite's module (the nearest directory
//     with a go.mod; when the project brings none, the scratch directory
//     after `go mod init contained`), `.py` runs `python3 -m unittest -v
//     <suite>`, `.js`, `.mjs` and `.cjs` run `node --test
//     --test-reporter=tap <suite>`, both from the scratch directory. A suite with another extension is run
//     by the runner of the language pid1Config set (see [proc.Defaults]),
//     else refused;
//   - it is answered, once the runner has exited, with testResult{passed,
//     stderr, fails}: passed when the runner exited with status 0 and no
//     test failed; stderr the end of what the runner wrote to its stderr
//     (at most Options.StderrBytes); fails one testFailure{name, trace} for
//     each failing test, leaves only (a Go test whose subtests failed is
//     represented by them; a Node subtest is named "parent > child"). A
//     runner that failed without naming a test (a build error) is one
//     failure named after the package, or after the runner;
//   - errors: `contained: no test suite given`, `contained: <path>:
//     <reason>` for a file that cannot be laid out, `contained: cannot
//     tell how to run <suite> ...`, `contained: exec: "go": executable file
//     not found in $PATH`, `contained: the tests did not finish within 5m0s`.
//
// runContainedTest is a mutation: read-only sessions are refused it by the
// channel layer ("permission denied"). The runner starts with the
// environment and settings of every workspace process (the daemon's
// environment minus its secrets, plus pid1Config's env, see [proc.Environ])
// but in the scratch directory, never in the workspace, which it cannot
// change through its working directory. It is started through
// [proc.StartProcess]: it leads its own process group, the PID 1 reaper
// never takes its exit status, and the whole group is stopped (SIGTERM,
// then SIGKILL after the grace) when the channel ends, the session leaves
// or Options.Timeout passes. The scratch directory is removed afterwards.
//
// Requests on one channel run one at a time, in the channel's goroutine.
// The package owns its scratch directories and nothing else; it never
// imports another service.
package contained

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/pty"
	"github.com/conman-dev/conman/services"
	"github.com/conman-dev/conman/services/proc"
	"github.com/conman-dev/conman/services/workspace"
)

// Name is the service's wire name.
const Name = "contained"

// Defaults for the zero values of Options.
const (
	DefaultTimeout         = 5 * time.Minute
	DefaultKillGrace       = 2 * time.Second
	DefaultOutputBytes     = 8 << 20
	DefaultStderrBytes     = 64 << 10
	DefaultMaxProjectBytes = 256 << 20
)

// Options configures the service. Zero values mean the defaults.
type Options struct {
	// Timeout bounds one run, the runner's preparation included (default
	// 5 min).
	Timeout time.Duration
	// KillGrace is the time between SIGTERM and SIGKILL when a runner is
	// stopped (default 2 s).
	KillGrace time.Duration
	// OutputBytes bounds what is kept of each of the runner's streams to
	// find the failures in (default 8 MiB); the rest is read and dropped.
	OutputBytes int
	// StderrBytes bounds the stderr of a testResult (default 64 KiB): the
	// end of the stream is kept.
	StderrBytes int
	// MaxProjectBytes bounds the files laid out for one run (default
	// 256 MiB).
	MaxProjectBytes int64
	// ScratchDir is where the scratch directories are made (default
	// os.TempDir()).
	ScratchDir string
}

func (o *Options) setDefaults() {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.KillGrace <= 0 {
		o.KillGrace = DefaultKillGrace
	}
	if o.OutputBytes <= 0 {
		o.OutputBytes = DefaultOutputBytes
	}
	if o.StderrBytes <= 0 {
		o.StderrBytes = DefaultStderrBytes
	}
	if o.MaxProjectBytes <= 0 {
		o.MaxProjectBytes = DefaultMaxProjectBytes
	}
}

func init() {
	services.Register(Name, func(env services.Env) (channels.Service, error) {
		return New(env, Options{})
	})
}

// Service runs contained tests for one daemon.
type Service struct {
	fs   *workspace.FS
	opts Options
	log  *slog.Logger
}

var (
	_ channels.Service = (*Service)(nil)
	_ services.Stopper = (*Service)(nil)
)

// New returns the service for env.
func New(env services.Env, opts Options) (*Service, error) {
	opts.setDefaults()
	fsys, err := workspace.Open(workspace.Options{Root: env.Workspace, DataDir: env.DataDir})
	if err != nil {
		return nil, fmt.Errorf("contained: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Service{fs: fsys, opts: opts, log: log.With("service", Name)}, nil
}

// Stop releases the workspace.
func (svc *Service) Stop(context.Context) error { return svc.fs.Close() }

// Open starts a contained channel.
func (svc *Service) Open(ch *channels.Channel) (channels.Handler, error) {
	return &instance{svc: svc}, nil
}

type instance struct{ svc *Service }

// Handle runs one runContainedTest to its end. ctx ends with the channel,
// which stops the runner.
func (in *instance) Handle(ctx context.Context, req *channels.Request) (*api.Command, error) {
	body, ok := req.Command.Body.(*api.Command_RunContainedTest)
	if !ok {
		return nil, channels.Unsupported(req.Command)
	}
	res, err := in.svc.Run(ctx, body.RunContainedTest)
	if err != nil {
		return nil, err
	}
	return &api.Command{Body: &api.Command_TestResult{TestResult: res}}, nil
}

func (in *instance) Close(context.Context) error { return nil }

// Errors of the service.
var (
	errNoSuite = errors.New("contained: no test suite given")
)

// Run lays out ct's files in a scratch directory, runs the tests there and
// reports them.
func (svc *Service) Run(ctx context.Context, ct *api.ContainedTest) (*api.TestResult, error) {
	suite := ct.GetSuite()
	if suite.GetPath() == "" {
		return nil, errNoSuite
	}
	ctx, cancel := context.WithTimeout(ctx, svc.opts.Timeout)
	defer cancel()
	scratch, err := os.MkdirTemp(svc.opts.ScratchDir, "conman-contained-")
	if err != nil {
		return nil, fmt.Errorf("contained: %w", err)
	}
	defer os.RemoveAll(scratch)

	l := &layout{fs: svc.fs, dir: scratch, budget: svc.opts.MaxProjectBytes}
	for _, f := range ct.GetProject() {
		if _, err := l.place(f); err != nil {
			return nil, err
		}
	}
	suiteRel, err := l.place(suite)
	if err != nil {
		return nil, err
	}
	r, err := chooseRunner(suiteRel, proc.CurrentDefaults().Language)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	res, err := svc.runTests(ctx, r, scratch, suiteRel)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("contained: the tests did not finish within %v", svc.opts.Timeout)
		}
		return nil, err
	}
	svc.log.Debug("contained tests ran", "runner", r.name, "suite", suiteRel, "passed", res.Passed,
		"failures", len(res.Fails), "took", time.Since(start).Round(time.Millisecond))
	return res, nil
}

// runTests prepares the scratch directory for r, runs r and reads the
// result.
func (svc *Service) runTests(ctx context.Context, r *runner, scratch, suite string) (*api.TestResult, error) {
	dir := scratch
	if r.prepare != nil {
		var err error
		if dir, err = r.prepare(ctx, svc, scratch, suite); err != nil {
			return nil, err
		}
	}
	out, err := svc.exec(ctx, dir, r.argv(suite), r.env)
	if err != nil {
		return nil, err
	}
	res := &api.TestResult{
		Stderr: tail(out.stderr.String(), svc.opts.StderrBytes),
		Fails:  r.parse(out.stdout.Bytes(), out.stderr.Bytes()),
	}
	exitedOK := out.status.Code == 0 && !out.status.Signaled()
	res.Passed = exitedOK && len(res.Fails) == 0
	if !res.Passed && len(res.Fails) == 0 {
		// The runner failed without naming a test: say so.
		trace := r.name + ": " + out.status.String()
		if s := strings.TrimSpace(tail(out.stdout.String()+out.stderr.String(), svc.opts.StderrBytes)); s != "" {
			trace += "\n" + s
		}
		res.Fails = []*api.TestFailure{{Name: r.name, Trace: trace}}
	}
	return res, nil
}

// ran is what a finished process left.
type ran struct {
	status         pty.ExitStatus
	stdout, stderr *capped
}

// exec runs argv in dir to its end (or ctx's) with the environment of a
// workspace process plus extra, keeping the start of each stream.
func (svc *Service) exec(ctx context.Context, dir string, argv []string, extra map[string]string) (*ran, error) {
	env := proc.Environ(extra)
	bin, err := proc.LookPath(argv[0], env)
	if err != nil {
		return nil, fmt.Errorf("contained: %w", err)
	}
	cmd := exec.Command(bin)
	cmd.Args = argv
	cmd.Dir = dir
	cmd.Env = env
	out := &ran{stdout: &capped{limit: svc.opts.OutputBytes}, stderr: &capped{limit: svc.opts.OutputBytes}}
	cmd.Stdout, cmd.Stderr = out.stdout, out.stderr
	p, err := proc.StartProcess(ctx, cmd, svc.opts.KillGrace)
	if err != nil {
		return nil, fmt.Errorf("contained: %s: %w", argv[0], err)
	}
	// Wait for the end whatever ctx says: ctx ending stops the group,
	// and its status and output are complete once Done is closed.
	out.status, _ = p.Wait(context.Background())
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("contained: %w", err)
	}
	return out, nil
}

// capped keeps the first limit bytes written to it and drops the rest,
// counting them.
type capped struct {
	limit   int
	buf     []byte
	dropped int64
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.limit - len(c.buf)
	if room >= len(p) {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	if room > 0 {
		c.buf = append(c.buf, p[:room]...)
	}
	c.dropped += int64(len(p) - max(room, 0))
	return len(p), nil
}

func (c *capped) Bytes() []byte { return c.buf }

func (c *capped) String() string {
	s := strings.ToValidUTF8(string(c.buf), "\uFFFD")
	if c.dropped > 0 {
		s += fmt.Sprintf("\n[conman: %d more bytes not kept]\n", c.dropped)
	}
	return s
}

// tail returns the last n bytes of s, cut at a character boundary.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	for i := 0; i < len(s) && i < 4; i++ {
		if s[i]&0xC0 != 0x80 {
			return s[i:]
		}
	}
	return s
}

// layout lays a run's files out in its scratch directory.
type layout struct {
	fs     *workspace.FS
	dir    string
	budget int64 // bytes left
}

// place lays f out and returns its workspace-relative path.
func (l *layout) place(f *api.File) (string, error) {
	p := f.GetPath()
	if p == "" {
		return "", errors.New("contained: a file without a path")
	}
	rel, err := l.fs.Resolve(p)
	if err != nil {
		return "", fmt.Errorf("contained: %w", err)
	}
	if content := f.GetContent(); len(content) > 0 {
		if rel == "." {
			return "", fmt.Errorf("contained: %s: is the workspace root", p)
		}
		return rel, l.write(p, rel, content, 0o644)
	}
	e, exists, err := l.fs.Stat(p)
	switch {
	case err != nil:
		return "", fmt.Errorf("contained: %w", err)
	case !exists:
		return rel, l.write(p, rel, nil, 0o644)
	case e.Dir:
		return rel, l.copyDir(rel)
	}
	return rel, l.copyFile(rel, e.Mode)
}

// write writes content to rel in the scratch directory.
func (l *layout) write(p, rel string, content []byte, mode fs.FileMode) error {
	if l.budget -= int64(len(content)); l.budget < 0 {
		return errors.New("contained: the project is too large")
	}
	host := filepath.Join(l.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		return fmt.Errorf("contained: %s: %w", p, err)
	}
	if err := os.WriteFile(host, content, mode); err != nil {
		return fmt.Errorf("contained: %s: %w", p, err)
	}
	return nil
}

// copyFile copies the workspace file rel.
func (l *layout) copyFile(rel string, mode fs.FileMode) error {
	content, err := l.fs.Read(rel)
	if err != nil {
		return fmt.Errorf("contained: %w", err)
	}
	perm := fs.FileMode(0o644)
	if mode&0o111 != 0 {
		perm = 0o755
	}
	return l.write(rel, rel, content, perm)
}

// copyDir copies the workspace directory rel with everything in it, but
// links to directories (which could loop) and special files.
func (l *layout) copyDir(rel string) error {
	if err := os.MkdirAll(filepath.Join(l.dir, filepath.FromSlash(rel)), 0o755); err != nil {
		return fmt.Errorf("contained: %s: %w", rel, err)
	}
	entries, err := l.fs.List(rel)
	if err != nil {
		return fmt.Errorf("contained: %w", err)
	}
	for _, e := range entries {
		child := path.Join(rel, e.Name)
		switch {
		case e.Dir && e.Mode&fs.ModeSymlink != 0:
			continue
		case e.Dir:
			err = l.copyDir(child)
		case e.Mode.IsRegular():
			err = l.copyFile(child, e.Mode)
		case e.Mode&fs.ModeSymlink != 0:
			// A link to a file inside the workspace is copied as the
			// file; a dangling one is left out.
			if err = l.copyFile(child, e.Mode); workspace.Code(err) == workspace.CodeNotFound {
				err = nil
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
