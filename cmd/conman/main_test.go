package main

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/debug"
)

func TestKeygenAndToken(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if code := run([]string{"keygen", "--data-dir", dir}, &out, &errOut); code != 0 {
		t.Fatalf("keygen exit %d: %s", code, errOut.String())
	}
	kid := strings.TrimSpace(out.String())
	for suffix, mode := range map[string]os.FileMode{".key": 0o600, ".pub": 0o644} {
		fi, err := os.Stat(filepath.Join(conman.KeysDir(dir), kid+suffix))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", suffix, fi.Mode().Perm(), mode)
		}
	}

	// Flags come from the environment too; the command line wins.
	t.Setenv("CONMAN_USER", "from-env")
	t.Setenv("CONMAN_USER_ID", "41")
	t.Setenv("CONMAN_WORKSPACE_ID", "ws-1")
	out.Reset()
	if code := run([]string{"token", "--data-dir", dir, "--ro", "--role", "debug", "--ttl", "5m"}, &out, &errOut); code != 0 {
		t.Fatalf("token exit %d: %s", code, errOut.String())
	}
	v, err := auth.NewVerifier(auth.VerifierOptions{KeysDir: conman.KeysDir(dir), WorkspaceID: "ws-1"})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("minted token does not verify: %v", err)
	}
	if claims.UserName != "from-env" || claims.UserID != 41 || !claims.ReadOnly || len(claims.Roles) != 1 || claims.Roles[0] != "debug" {
		t.Fatalf("claims %+v", claims)
	}
	out.Reset()
	if code := run([]string{"token", "--data-dir", dir, "--user", "flag-wins"}, &out, &errOut); code != 0 {
		t.Fatal(errOut.String())
	}
	if claims, err := v.Verify(strings.TrimSpace(out.String())); err != nil || claims.UserName != "flag-wins" {
		t.Fatalf("claims %+v %v", claims, err)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		code int
		says string
	}{
		{[]string{"bogus"}, 2, "unknown command"},
		{[]string{"token", "--data-dir", dir}, 2, "--user is required"},
		{[]string{"serve", "--no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"serve", "--workspace", filepath.Join(dir, "missing")}, 1, "no such file or directory"},
		{[]string{"serve", "--workspace", dir, "--read-limit", "lots"}, 2, "bad size"},
		{[]string{"serve", "extra-arg"}, 2, "unexpected argument"},
		{[]string{"help"}, 0, "usage"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Setenv("CONMAN_USER", "")
			os.Unsetenv("CONMAN_USER")
			var out, errOut bytes.Buffer
			code := run(tt.args, &out, &errOut)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stderr %s)", code, tt.code, errOut.String())
			}
			if !strings.Contains(out.String()+errOut.String(), tt.says) {
				t.Fatalf("output does not say %q:\n%s%s", tt.says, out.String(), errOut.String())
			}
		})
	}
}

var urlInLog = regexp.MustCompile(`url="?(http://[^" ]+)`)

func TestServeBinary(t *testing.T) {
	p := conmantest.StartProcess(t, "", "--pprof")
	ctx := conmantest.Context(t)

	// The ready line carries a browser URL whose token works.
	m := urlInLog.FindStringSubmatch(p.Log())
	if m == nil {
		t.Fatalf("no URL in the ready line:\n%s", p.Log())
	}
	u, err := url.Parse(m[1])
	if err != nil {
		t.Fatal(err)
	}
	if u.Host != p.Addr {
		t.Fatalf("URL host %s, want the real address %s", u.Host, p.Addr)
	}
	frag, _ := url.ParseQuery(u.Fragment)
	browser, err := client.Dial(ctx, client.URL(p.Addr, frag.Get("token")), client.Options{})
	if err != nil {
		t.Fatalf("the URL's token: %v", err)
	}
	defer browser.Close()

	// conman token mints for this daemon; --ro is enforced.
	ro, err := client.Dial(ctx, client.URL(p.Addr, p.Token(t, "viewer", "--ro")), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	ch, err := ro.Open(ctx, debug.Name, "", api.OpenChannel_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ch.Request(ctx, &api.Command{Body: &api.Command_Write{Write: &api.File{Path: "x"}}})
	if err != nil || r.GetError() != "permission denied" {
		t.Fatalf("ro write: %v %v", r, err)
	}

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/debug/pprof/": 200} {
		resp, err := http.Get("http://" + p.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: HTTP %d, want %d", path, resp.StatusCode, want)
		}
	}

	// SIGTERM: every websocket is closed with 1001 and the process exits 0.
	p.Signal(syscall.SIGTERM)
	for _, c := range []*client.Client{browser, ro} {
		<-c.Done()
		var ce *client.CloseError
		if !errors.As(c.Err(), &ce) || ce.Code != 1001 {
			t.Errorf("closed with %v, want 1001", c.Err())
		}
	}
	if code := p.Wait(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM:\n%s", code, p.Log())
	}
	if strings.Contains(p.Log(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", p.Log())
	}
}

func TestPprofIsOffByDefault(t *testing.T) {
	p := conmantest.StartProcess(t, "")
	resp, err := http.Get("http://" + p.Addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/debug/pprof/ answered %d without --pprof", resp.StatusCode)
	}
}

func TestListenFromEnvironment(t *testing.T) {
	ws := t.TempDir()
	cmd := exec.Command(conmantest.Binary(t), "serve", "--workspace", ws)
	cmd.Env = append(os.Environ(), "CONMAN_LISTEN=127.0.0.1:0", "CONMAN_LOG_LEVEL=debug")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var log strings.Builder
	ready := make(chan struct{})
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "conman ready") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-scanned:
		t.Fatal("exited before it was ready")
	case <-time.After(conmantest.Timeout):
		t.Fatal("not ready in time")
	}
	cmd.Process.Signal(syscall.SIGINT)
	<-scanned
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGINT: %v", err)
	}
	out := log.String()
	if strings.Contains(out, "listen=127.0.0.1:8283") || !strings.Contains(out, "listen=127.0.0.1:") {
		t.Fatalf("CONMAN_LISTEN not honoured:\n%s", out)
	}
	if !strings.Contains(out, "level=DEBUG") {
		t.Fatalf("CONMAN_LOG_LEVEL not honoured:\n%s", out)
	}
}
