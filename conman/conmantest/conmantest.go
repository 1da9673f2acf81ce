// Package conmantest starts real conman daemons for tests: in-process on a
// loopback port (Start), or as the built binary in its own process
// (StartProcess) when a test must kill it. Either way clients speak the real
// protocol over real websockets.
package conmantest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/conman-dev/conman/conman"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
)

// Timeout is the bound tests wait for any one event.
const Timeout = 20 * time.Second

// Context returns a context that ends after Timeout or with the test.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

// Daemon is an in-process daemon serving a temporary workspace.
type Daemon struct {
	*conman.Daemon
	Workspace string
	DataDir   string
}

// Start starts a daemon on 127.0.0.1 with a fresh workspace and data dir;
// configure may adjust the configuration first. The daemon is shut down when
// the test ends.
func Start(t testing.TB, configure ...func(*conman.Config)) *Daemon {
	t.Helper()
	ws := t.TempDir()
	cfg := conman.Config{
		Listen:    "127.0.0.1:0",
		Workspace: ws,
		Logger:    TestLogger(t),
	}
	for _, fn := range configure {
		fn(&cfg)
	}
	d, err := conman.New(cfg)
	if err != nil {
		t.Fatalf("conman.New: %v", err)
	}
	if err := d.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &Daemon{Daemon: d, Workspace: d.Config().Workspace, DataDir: d.Config().DataDir}
}

// TestLogger logs to the test's log at warning level and above (set
// CONMAN_TEST_LOG=debug for everything).
func TestLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("CONMAN_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// User is the default identity of Dial.
var User = auth.Claims{UserID: 7, UserName: "ada"}

// Token mints a token for claims (a zero Expires means an hour).
func (d *Daemon) Token(t testing.TB, claims auth.Claims) string {
	t.Helper()
	tok, err := d.MintToken(claims)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return tok
}

// URL is the websocket address for token.
func (d *Daemon) URL(token string) string { return client.URL(d.Addr(), token) }

// HTTP is the daemon's base http URL.
func (d *Daemon) HTTP() string { return "http://" + d.Addr() }

// Dial connects as User.
func (d *Daemon) Dial(t testing.TB) *client.Client {
	t.Helper()
	return d.DialAs(t, User)
}

// DialAs connects with a token for claims; the client is closed when the
// test ends.
func (d *Daemon) DialAs(t testing.TB, claims auth.Claims) *client.Client {
	t.Helper()
	return DialURL(t, d.URL(d.Token(t, claims)), client.Options{})
}

// DialURL connects to url; the client is closed when the test ends.
func DialURL(t testing.TB, url string, opts client.Options) *client.Client {
	t.Helper()
	c, err := client.Dial(Context(t), url, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the path of the conman binary: $CONMAN_TEST_BINARY when
// set (the test script builds it once for every package), else cmd/conman
// built once per test binary.
func Binary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("CONMAN_TEST_BINARY"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("CONMAN_TEST_BINARY: %v", err)
		}
		return bin
	}
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "conman-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "conman")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/conman")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Process is the daemon binary running in its own process.
type Process struct {
	Cmd       *exec.Cmd
	Addr      string
	Workspace string
	DataDir   string
	exited    chan struct{}

	mu  sync.Mutex
	log strings.Builder
}

var listenLine = regexp.MustCompile(`msg="conman ready" listen=(\S+)`)

// StartProcess runs `conman serve` on workspace (a fresh one when empty)
// with extra args, and waits until it is ready. It is killed when the test
// ends.
func StartProcess(t testing.TB, workspace string, args ...string) *Process {
	t.Helper()
	if workspace == "" {
		workspace = t.TempDir()
	}
	bin := Binary(t)
	full := append([]string{"serve", "--workspace", workspace}, args...)
	if !hasFlag(args, "--listen") {
		full = append(full, "--listen", "127.0.0.1:0")
	}
	cmd := exec.Command(bin, full...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Process{Cmd: cmd, Workspace: workspace, DataDir: filepath.Join(workspace, conman.DefaultDataDirName), exited: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listenLine.FindStringSubmatch(line); m != nil {
				select {
				case ready <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Signal(syscall.SIGKILL)
		<-p.exited
	})
	select {
	case p.Addr = <-ready:
	case <-p.exited:
		t.Fatalf("conman exited before it was ready:\n%s", p.Log())
	case <-time.After(Timeout):
		t.Fatalf("conman not ready in time:\n%s", p.Log())
	}
	return p
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// Log is everything the process has written to stderr so far.
func (p *Process) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) {
	if p.Cmd.Process != nil {
		p.Cmd.Process.Signal(sig)
	}
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Wait waits for the process to exit, up to Timeout, and returns its exit
// code.
func (p *Process) Wait(t testing.TB) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(Timeout):
		t.Fatalf("conman did not exit in time:\n%s", p.Log())
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Token mints a token with the process's data dir (through the binary's
// token command, as an operator would).
func (p *Process) Token(t testing.TB, user string, extra ...string) string {
	t.Helper()
	out, err := exec.Command(Binary(t), append([]string{"token", "--data-dir", p.DataDir, "--user", user}, extra...)...).Output()
	if err != nil {
		t.Fatalf("conman token: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// Metrics scrapes addr's /metrics and returns every sample keyed by its
// name and sorted labels, as `name{a="x",b="y"}` (histograms by their
// _count and _sum).
func Metrics(t testing.TB, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: HTTP %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	out := map[string]float64{}
	for name, fam := range families {
		for _, m := range fam.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(labels)
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Untyped != nil:
				out[key] = m.Untyped.GetValue()
			case m.Histogram != nil:
				out[strings.Replace(key, name, name+"_count", 1)] = float64(m.Histogram.GetSampleCount())
				out[strings.Replace(key, name, name+"_sum", 1)] = m.Histogram.GetSampleSum()
			}
		}
	}
	return out
}
