package conman_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/debug"
)

// syncBuffer is a log sink tests can read while the daemon writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestTokenMatrix(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	d := conmantest.Start(t, func(c *conman.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	valid := d.Token(t, conmantest.User)

	// A key pair the daemon does not know, and one that reuses the id of
	// the daemon's key with another secret (a forgery).
	strangerDir := t.TempDir()
	if _, err := auth.GenerateKey(strangerDir); err != nil {
		t.Fatal(err)
	}
	stranger, err := auth.LoadSigner(strangerDir, "")
	if err != nil {
		t.Fatal(err)
	}
	fromStranger, err := stranger.Mint(auth.Claims{UserName: "eve", WorkspaceID: d.WorkspaceID()})
	if err != nil {
		t.Fatal(err)
	}
	ownKID := valid[strings.LastIndex(valid, ".")+1:]
	forged := fromStranger[:strings.LastIndex(fromStranger, ".")+1] + ownKID

	tampered := []byte(valid)
	tampered[len("v2.public.")+5] ^= 0x01

	tests := []struct {
		name, token, reason string
	}{
		{"missing", "", "missing"},
		{"malformed", "not-a-token", "malformed"},
		{"v4 header", "v4.public." + valid[len("v2.public."):], "malformed"},
		{"bad footer", valid[:strings.LastIndex(valid, ".")] + ".!!!", "malformed"},
		{"expired", d.Token(t, auth.Claims{UserName: "old", Expires: time.Now().Add(-time.Minute)}), "expired"},
		{"tampered payload", string(tampered), "bad_signature"},
		{"unknown key", fromStranger, "unknown_key"},
		{"forged with the daemon's key id", forged, "bad_signature"},
		{"wrong workspace", d.Token(t, auth.Claims{UserName: "ada", WorkspaceID: "someone-elses"}), "wrong_workspace"},
		{"oversized", "v2.public." + strings.Repeat("A", 9<<10), "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := conmantest.Context(t)
			var seen []*api.Command
			_, err := client.Dial(ctx, d.URL(tt.token), client.Options{Trace: func(c *api.Command) { seen = append(seen, c) }})
			var ce *client.CloseError
			if !errors.As(err, &ce) || ce.Code != 1008 {
				t.Fatalf("dial: %v, want close 1008", err)
			}
			for _, m := range seen {
				if m.GetContainerState() != nil {
					t.Fatal("READY was sent before the refusal")
				}
			}
			key := `conman_auth_failures_total{reason="` + tt.reason + `"}`
			waitFor(t, key, func() bool { return conmantest.Metrics(t, d.Addr())[key] >= 1 })
		})
	}

	t.Run("percent-encoded token", func(t *testing.T) {
		escaped := strings.ReplaceAll(url.PathEscape(valid), ".", "%2E")
		c := conmantest.DialURL(t, "ws://"+d.Addr()+"/wsv2/"+escaped, client.Options{})
		if _, err := c.Ping(conmantest.Context(t)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("rotated key", func(t *testing.T) {
		kid, err := auth.GenerateKey(conman.KeysDir(d.DataDir))
		if err != nil {
			t.Fatal(err)
		}
		signer, err := auth.LoadSigner(conman.KeysDir(d.DataDir), kid)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := signer.Mint(auth.Claims{UserName: "new-key", WorkspaceID: d.WorkspaceID()})
		if err != nil {
			t.Fatal(err)
		}
		// The verifier re-reads its keys at most once a second.
		deadline := time.Now().Add(conmantest.Timeout)
		for {
			c, err := client.Dial(conmantest.Context(t), d.URL(tok), client.Options{})
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("token of a rotated-in key refused: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	if strings.Contains(logs.String(), valid[len("v2.public."):len("v2.public.")+40]) || strings.Contains(logs.String(), fromStranger[10:50]) {
		t.Error("a token appears in the log")
	}
	if !strings.Contains(logs.String(), "token refused") {
		t.Error("refusals are not logged")
	}
}

func TestReadOnlySession(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	ctx := conmantest.Context(t)
	c := d.DialAs(t, auth.Claims{UserID: 9, UserName: "viewer", ReadOnly: true})
	ch := open(t, c, debug.Name, "", api.OpenChannel_CREATE)
	mutations := []*api.Command{
		{Body: &api.Command_Write{Write: &api.File{Path: "a"}}},
		{Body: &api.Command_Exec{Exec: &api.Exec{Args: []string{"true"}}}},
		{Body: &api.Command_Input{Input: "ls\n"}},
		{Body: &api.Command_Ot{Ot: &api.OTPacket{}}},
		{Body: &api.Command_PackageAdd{PackageAdd: &api.PackageAdd{}}},
	}
	for _, cmd := range mutations {
		name := strings.SplitN(cmd.String(), ":", 2)[0]
		r, err := ch.Request(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		if r.GetError() != "permission denied" {
			t.Errorf("%s: got %v, want error \"permission denied\"", name, r)
		}
	}
	// Reading and following are allowed.
	if r, err := ch.Request(ctx, debugText("just looking")); err != nil || r.GetOk() == nil {
		t.Fatalf("non-mutating command refused: %v %v", r, err)
	}
	noViolations(t, c)
}

func TestOriginAndHost(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	loop := conmantest.Start(t, func(c *conman.Config) {
		c.AllowOrigins = []string{"https://trusted.example.com", "http://localhost:5173"}
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	var tokens []string
	open := conmantest.Start(t, func(c *conman.Config) { c.Listen = "0.0.0.0:0" })
	_, loopPort, _ := strings.Cut(loop.Addr(), ":")

	tests := []struct {
		name   string
		d      *conmantest.Daemon
		origin string
		host   string
		ok     bool
	}{
		{"no origin", loop, "", "", true},
		{"same host and port", loop, "http://" + loop.Addr(), "", true},
		{"same host, other port", loop, "http://127.0.0.1:1", "", false},
		{"allowed origin", loop, "https://trusted.example.com", "", true},
		{"allowed origin with default port", loop, "https://trusted.example.com:443", "", true},
		{"allowed origin, other scheme", loop, "http://trusted.example.com", "", false},
		{"allowed origin, other port", loop, "https://trusted.example.com:8443", "", false},
		{"suffix attack", loop, "http://trusted.example.com.evil.com", "", false},
		{"suffix attack https", loop, "https://trusted.example.com.evil.com", "", false},
		{"prefix attack", loop, "https://eviltrusted.example.com", "", false},
		{"allowed dev origin", loop, "http://localhost:5173", "", true},
		{"null origin", loop, "null", "", false},
		{"malformed origin", loop, "http://", "", false},
		{"origin with path", loop, "https://trusted.example.com/x", "", false},
		{"garbage origin", loop, "::::", "", false},
		{"rebinding host", loop, "", "evil.example.com:" + loopPort, false},
		{"localhost host", loop, "", "localhost:" + loopPort, true},
		{"non-loopback bind accepts any host", open, "", "evil.example.com", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			if tt.host != "" {
				h.Set("Host", tt.host)
			}
			addr := tt.d.Addr()
			if strings.HasPrefix(addr, "0.0.0.0:") || strings.HasPrefix(addr, "[::]:") {
				addr = "127.0.0.1:" + addr[strings.LastIndex(addr, ":")+1:]
			}
			ctx, cancel := context.WithTimeout(context.Background(), conmantest.Timeout)
			defer cancel()
			tok := tt.d.Token(t, conmantest.User)
			tokens = append(tokens, tok)
			ws, resp, err := websocket.DefaultDialer.DialContext(ctx, client.URL(addr, tok), h)
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				ws.Close()
				return
			}
			if err == nil {
				ws.Close()
				t.Fatal("accepted")
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("got %v %v, want 403", resp, err)
			}
		})
	}
	for _, tok := range tokens {
		if strings.Contains(logs.String(), tok[10:60]) {
			t.Fatalf("a token appears in the log:\n%s", logs.String())
		}
	}
	m := conmantest.Metrics(t, loop.Addr())
	if m[`conman_http_rejections_total{reason="host_not_loopback"}`] < 1 ||
		m[`conman_http_rejections_total{reason="origin_not_allowed"}`] < 1 || m[`conman_http_rejections_total{reason="origin_malformed"}`] < 1 {
		t.Errorf("origin refusals not counted: %v", m)
	}
}
