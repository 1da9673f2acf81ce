package logs_test

import (
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/logs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// start runs a daemon whose logger is wrapped, as cmd/conman does.
func start(t *testing.T) *conmantest.Daemon {
	t.Helper()
	return conmantest.Start(t, func(c *conman.Config) {
		c.Logger = slog.New(logs.Wrap(conmantest.TestLogger(t).Handler()))
	})
}

func subscribe(t *testing.T, c *client.Client, level string) (*client.Channel, *api.Command) {
	t.Helper()
	ch, err := c.Open(conmantest.Context(t), logs.Name, "", api.OpenChannel_CREATE)
	if err != nil {
		t.Fatalf("open logs: %v", err)
	}
	reply, err := ch.Request(conmantest.Context(t), &api.Command{Body: &api.Command_LogSubscribe{LogSubscribe: &api.LogSubscribe{Level: level}}})
	if err != nil {
		t.Fatalf("logSubscribe: %v", err)
	}
	return ch, reply
}

func nextRecord(t *testing.T, ch *client.Channel) *api.LogRecord {
	t.Helper()
	cmd, err := ch.Recv(conmantest.Context(t))
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	r := cmd.GetLogRecord()
	if r == nil {
		t.Fatalf("unexpected message %v", cmd)
	}
	return r
}

func attrs(r *api.LogRecord) map[string]string {
	out := map[string]string{}
	for _, a := range r.Attrs {
		out[a.Key] = a.Value
	}
	return out
}

func TestPermission(t *testing.T) {
	t.Parallel()
	d := start(t)
	tests := []struct {
		name   string
		claims auth.Claims
		want   string // "" means ok
	}{
		{"no role", auth.Claims{UserName: "ada"}, "permission denied"},
		{"other role", auth.Claims{UserName: "ada", Roles: []string{"viewer"}}, "permission denied"},
		{"debug", auth.Claims{UserName: "ada", Roles: []string{"debug"}}, ""},
		{"admin", auth.Claims{UserName: "ada", Roles: []string{"admin"}}, ""},
		{"read-only debug", auth.Claims{UserName: "ada", ReadOnly: true, Roles: []string{"debug"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, reply := subscribe(t, d.DialAs(t, tt.claims), "info")
			switch {
			case tt.want == "" && reply.GetOk() == nil:
				t.Errorf("reply %v, want ok", reply)
			case tt.want != "" && reply.GetError() != tt.want:
				t.Errorf("reply %v, want error %q", reply, tt.want)
			}
		})
	}
	_, reply := subscribe(t, d.DialAs(t, auth.Claims{UserName: "ada", Roles: []string{"debug"}}), "loud")
	if !strings.HasPrefix(reply.GetError(), "logs: bad level") {
		t.Errorf("bad level: %v", reply)
	}
}

// TestStream: records at the subscribed level and above arrive live,
// secrets redacted; the level can be changed, even below the daemon's own.
func TestStream(t *testing.T) {
	t.Parallel()
	d := start(t)
	log := d.Config().Logger
	c := d.DialAs(t, auth.Claims{UserName: "ops", Roles: []string{"debug"}})
	ch, reply := subscribe(t, c, "warn")
	if reply.GetOk() == nil {
		t.Fatalf("subscribe: %v", reply)
	}

	const token = "v4.public.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl"
	log.Info("quiet")
	log.Warn("loud", "token", token, "note", "uses "+token, "count", 3)
	r := nextRecord(t, ch)
	if r.Message != "loud" || r.Level != "WARN" || r.Time == 0 {
		t.Fatalf("first record %v, want the warning (the info record is below the level)", r)
	}
	if a := attrs(r); a["token"] != logs.Redacted || a["note"] != "uses "+logs.Redacted || a["count"] != "3" {
		t.Errorf("attrs %v", a)
	}

	// Down to debug, below the daemon's own level (warn in tests): the
	// daemon's own records appear, with no token in them.
	if reply, err := ch.Request(conmantest.Context(t), &api.Command{Body: &api.Command_LogSubscribe{LogSubscribe: &api.LogSubscribe{Level: "debug"}}}); err != nil || reply.GetOk() == nil {
		t.Fatalf("re-level: %v %v", reply, err)
	}
	guestToken := d.Token(t, auth.Claims{UserName: "guest"})
	conmantest.DialURL(t, d.URL(guestToken), client.Options{})
	for {
		r := nextRecord(t, ch)
		for _, a := range r.Attrs {
			if strings.Contains(a.Value, guestToken) || strings.Contains(r.Message, guestToken) {
				t.Fatalf("a token in %v", r)
			}
		}
		if r.Message == "session opened" && attrs(r)["user"] == "guest" {
			break
		}
	}
	if violations := c.Violations(); len(violations) > 0 {
		t.Errorf("violations: %v", violations)
	}
}

func TestNotWrapped(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	_, reply := subscribe(t, d.DialAs(t, auth.Claims{UserName: "ops", Roles: []string{"admin"}}), "")
	if !strings.HasPrefix(reply.GetError(), "logs: the daemon's log is not streamed") {
		t.Errorf("reply %v", reply)
	}
}

// TestDaemonBinary: the daemon as cmd/conman builds it streams its log to
// a token with the debug role.
func TestDaemonBinary(t *testing.T) {
	t.Parallel()
	p := conmantest.StartProcess(t, "")
	ops := conmantest.DialURL(t, client.URL(p.Addr, p.Token(t, "ops", "--role", "debug")), client.Options{})
	ch, reply := subscribe(t, ops, "debug")
	if reply.GetOk() == nil {
		t.Fatalf("subscribe: %v", reply)
	}
	plain := conmantest.DialURL(t, client.URL(p.Addr, p.Token(t, "guest")), client.Options{})
	if _, reply := subscribe(t, plain, "debug"); reply.GetError() != "permission denied" {
		t.Errorf("subscribe without the role: %v", reply)
	}
	for {
		if r := nextRecord(t, ch); r.Message == "session opened" && attrs(r)["user"] == "guest" {
			break
		}
	}
}
