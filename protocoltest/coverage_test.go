package protocoltest_test

import (
	"context"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services"
	"github.com/conman-dev/conman/services/proc"

	// Every service the daemon serves: the same list as cmd/conman's
	// (TestServicesAreTheDaemons checks it).
	_ "github.com/conman-dev/conman/services/chat"
	_ "github.com/conman-dev/conman/services/contained"
	_ "github.com/conman-dev/conman/services/debug"
	_ "github.com/conman-dev/conman/services/diag"
	_ "github.com/conman-dev/conman/services/exec"
	_ "github.com/conman-dev/conman/services/files"
	_ "github.com/conman-dev/conman/services/fsevents"
	_ "github.com/conman-dev/conman/services/logs"
	_ "github.com/conman-dev/conman/services/meta"
	_ "github.com/conman-dev/conman/services/ot"
	_ "github.com/conman-dev/conman/services/packager"
	_ "github.com/conman-dev/conman/services/pid1"
	_ "github.com/conman-dev/conman/services/ports"
	_ "github.com/conman-dev/conman/services/presence"
	_ "github.com/conman-dev/conman/services/proxy"
	_ "github.com/conman-dev/conman/services/run"
	_ "github.com/conman-dev/conman/services/shell"
	_ "github.com/conman-dev/conman/services/sink"
	_ "github.com/conman-dev/conman/services/snapshot"
	_ "github.com/conman-dev/conman/services/supervise"
	_ "github.com/conman-dev/conman/services/tasks"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// replyWait bounds the wait for the answer to one request.
const replyWait = 5 * time.Second

// channelNames are the names the test opens channels of these services
// with, as clients do; the others are opened anonymously.
var channelNames = map[string]string{
	"ot":        "ot:coverage.txt",
	"presence":  "presencer",
	"presencer": "presencer",
	"chat":      "coverage",
	"shell":     "coverage",
	"shellrun2": "shellrunner",
}

// bodyOneof is Command's body.
var bodyOneof = (&api.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("body")

// unknownBody is a field number no body has: a body of a newer protocol.
const unknownBody = 4999

// probe is one command the test sends everywhere.
type probe struct {
	name string // the body's name, "empty" or "#4999"
	make func() *api.Command
}

// probes returns a minimal instance of every body (its message empty, its
// scalar the zero value), then a command without a body and one whose body
// this build does not know.
func probes(t *testing.T) []probe {
	t.Helper()
	var out []probe
	fields := bodyOneof.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		out = append(out, probe{string(fd.Name()), func() *api.Command { return withBody(fd) }})
	}
	if fields.ByNumber(unknownBody) != nil {
		t.Fatalf("field %d is a body now: pick another unknown number", unknownBody)
	}
	out = append(out,
		probe{"empty", func() *api.Command { return &api.Command{} }},
		probe{"#" + strconv.Itoa(unknownBody), func() *api.Command {
			cmd := &api.Command{}
			cmd.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, unknownBody, protowire.VarintType), 1))
			return cmd
		}},
	)
	return out
}

// TestServicesAreTheDaemons: this package imports exactly the service
// packages the daemon's command imports, so the daemon under test serves
// what the real one serves.
func TestServicesAreTheDaemons(t *testing.T) {
	t.Parallel()
	daemon := serviceImports(t, "../cmd/conman/main.go")
	here := serviceImports(t, "coverage_test.go")
	if !slices.Equal(daemon, here) {
		t.Fatalf("cmd/conman imports the services %q; this test imports %q", daemon, here)
	}
}

// serviceImports lists the service packages file imports, sorted.
func serviceImports(t *testing.T, file string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "github.com/conman-dev/conman/services/"
	var out []string
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if rest, ok := strings.CutPrefix(path, prefix); ok && !strings.Contains(rest, "/") && rest != "proc" {
			out = append(out, rest)
		}
	}
	slices.Sort(out)
	return out
}

// TestDocIsComplete: docs/protocol.md has one row for every body of the
// Command oneof, in field order, and no other; it lists every service the
// daemon registers, and no other; its rows name only those services and,
// as replies, only bodies.
func TestDocIsComplete(t *testing.T) {
	t.Parallel()
	doc := readDoc(t)
	fields := bodyOneof.Fields()
	if len(doc.bodies) != fields.Len() {
		t.Errorf("%d rows for %d bodies", len(doc.bodies), fields.Len())
	}
	for i := range fields.Len() {
		fd := fields.Get(i)
		row := doc.byName[string(fd.Name())]
		if row == nil {
			t.Errorf("body %s (%d) has no row in %s", fd.Name(), fd.Number(), docPath)
			continue
		}
		if row.number != int(fd.Number()) {
			t.Errorf("body %s: row numbered %d, the field is %d", fd.Name(), row.number, fd.Number())
		}
		isMutation := channels.IsMutation(withBody(fd))
		served := row.channel0 || len(row.servedBy) > 0
		switch {
		case isMutation && !row.refusedRO:
			t.Errorf("body %s: the channel layer refuses it to read-only sessions; the row does not say so", row.name)
		case !served && row.refusedRO != isMutation:
			t.Errorf("body %s: no service serves it; the row's read-only column must follow the channel layer (refused: %v)", row.name, isMutation)
		case !served && !strings.HasPrefix(row.notes, "server → client") && !strings.HasPrefix(row.notes, "not supported"):
			t.Errorf("body %s: no service serves it; its notes must start with \"server → client\" or \"not supported\"", row.name)
		case served && len(row.replies) == 0:
			t.Errorf("body %s: served, with no reply", row.name)
		}
	}
	for _, row := range doc.bodies {
		if fields.ByName(protoreflect.Name(row.name)) == nil {
			t.Errorf("a row for %s, which is not a body", row.name)
		}
	}
	for i := 1; i < len(doc.bodies); i++ {
		if doc.bodies[i].number <= doc.bodies[i-1].number {
			t.Errorf("row %s (%d) after %s (%d): keep the rows in field order", doc.bodies[i].name, doc.bodies[i].number, doc.bodies[i-1].name, doc.bodies[i-1].number)
		}
	}

	registered := services.Names()
	documented := slices.Sorted(slices.Values(doc.services))
	if !slices.Equal(registered, documented) {
		t.Errorf("the daemon registers %q; %s lists %q", registered, docPath, documented)
	}
	for _, row := range doc.bodies {
		for _, svc := range row.servedBy {
			if !slices.Contains(registered, svc) {
				t.Errorf("body %s: served by %q, which is not a service", row.name, svc)
			}
		}
		for _, reply := range row.replies {
			if fields.ByName(protoreflect.Name(reply)) == nil {
				t.Errorf("body %s: reply %q is not a body", row.name, reply)
			}
		}
	}
	for name, row := range doc.anyBody {
		if !slices.Contains(registered, name) {
			t.Errorf("%s takes any body, but is not a service", name)
		}
		for _, body := range append([]string{row.reply}, row.except...) {
			if fields.ByName(protoreflect.Name(body)) == nil {
				t.Errorf("%s: %q is not a body", name, body)
			}
		}
	}
}

// withBody returns a command whose body is fd, holding an empty message
// or the zero value.
func withBody(fd protoreflect.FieldDescriptor) *api.Command {
	cmd := &api.Command{}
	m := cmd.ProtoReflect()
	if fd.Kind() == protoreflect.MessageKind {
		m.Set(fd, protoreflect.ValueOfMessage(m.NewField(fd).Message()))
	} else {
		m.Set(fd, fd.Default())
	}
	return cmd
}

// TestEveryBodyIsAnswered sends every body (and a command without one, and
// a body of a newer protocol), each with a ref, on channel 0 and on a
// channel of every registered service, as a read-write session with the
// roles debug and admin and as a read-only session without roles. Each is
// answered within replyWait with what docs/protocol.md documents: one of
// its replies or an error where the service serves the body, and `error
// "unsupported command <body> on ..."` (or, for a read-only session and a
// mutation, "permission denied") where it does not.
func TestEveryBodyIsAnswered(t *testing.T) {
	doc := readDoc(t)
	if t.Failed() {
		t.FailNow()
	}
	// Registered first, so it runs after the daemon has shut down.
	t.Cleanup(func() { noProcessesLeft(t) })
	t.Cleanup(func() { proc.SetDefaults(proc.Defaults{}) })
	d := conmantest.Start(t)
	targets := append([]string{""}, d.Hub().Registry().Names()...)
	probes := probes(t)

	sessions := []struct {
		name   string
		claims auth.Claims
	}{
		{"read-write", auth.Claims{UserID: 1, UserName: "rw", Roles: []string{"debug", "admin"}}},
		{"read-only", auth.Claims{UserID: 2, UserName: "ro", ReadOnly: true}},
	}
	for _, sess := range sessions {
		ro := sess.claims.ReadOnly
		c := d.DialAs(t, sess.claims)
		t.Run(sess.name, func(t *testing.T) {
			for _, target := range targets {
				label := target
				if label == "" {
					label = "channel 0"
				}
				t.Run(label, func(t *testing.T) {
					t.Parallel()
					send := openTarget(t, c, target)
					for _, p := range probes {
						ctx, cancel := context.WithTimeout(conmantest.Context(t), replyWait)
						r, err := send(ctx, p.make())
						cancel()
						if err != nil {
							t.Errorf("%s: no answer within %v: %v", p.name, replyWait, err)
							continue
						}
						if err := judge(doc, target, p.name, ro, r); err != nil {
							t.Errorf("%s: %v", p.name, err)
						}
					}
				})
			}
		})
		if v := c.Violations(); len(v) > 0 {
			t.Errorf("%s: the server broke client rules: %v", sess.name, v)
		}
	}
}

// openTarget opens a channel of service target (channel 0 when empty) and
// returns how to send it a request; the channel is closed for everyone
// when the test ends.
func openTarget(t *testing.T, c *client.Client, target string) func(context.Context, *api.Command) (*api.Command, error) {
	t.Helper()
	if target == "" {
		return c.Request0
	}
	ctx := conmantest.Context(t)
	ch, err := c.Open(ctx, target, channelNames[target], api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		t.Fatalf("open %s: %v", target, err)
	}
	t.Cleanup(func() {
		if _, err := ch.Close(conmantest.Context(t), api.CloseChannel_CLOSE); err != nil && !errors.Is(err, client.ErrClosed) {
			t.Errorf("close %s: %v", target, err)
		}
	})
	return ch.Request
}

// judge holds the answer r to the probe body, sent to target (a wire
// name, or "" for channel 0) by a session that is read-only or not, to
// what doc says.
func judge(doc *protocolDoc, target, body string, readOnly bool, r *api.Command) error {
	text, isError := "", false
	if e, ok := r.Body.(*api.Command_Error); ok {
		text, isError = e.Error, true
	}
	got := channels.BodyName(r)
	unsupported := "unsupported command " + body + " on service " + target
	if target == "" {
		unsupported = "unsupported command " + body + " on channel 0"
	}
	wantUnsupported := func() error {
		if text != unsupported {
			return fmt.Errorf("answered %s %q, want error %q", got, text, unsupported)
		}
		return nil
	}
	row := doc.byName[body]
	if row == nil {
		if bodyOneof.Fields().ByName(protoreflect.Name(body)) != nil {
			return fmt.Errorf("answered %s %q; %s has no row for the body", got, text, docPath)
		}
		return wantUnsupported() // a command without a body, or an unknown one
	}
	mutation := channels.IsMutation(withBody(bodyOneof.Fields().ByName(protoreflect.Name(body))))

	if any := doc.anyBody[target]; any != nil {
		switch {
		case slices.Contains(any.except, body):
			return wantUnsupported()
		case readOnly && !any.acceptsRO && mutation:
			if text != channels.ErrPermissionDenied.Error() {
				return fmt.Errorf("a read-only session's mutation answered %s %q, want permission denied", got, text)
			}
			return nil
		case got != any.reply:
			return fmt.Errorf("answered %s %q, want %s", got, text, any.reply)
		}
		return nil
	}

	if !row.served(target) {
		if readOnly && target != "" && mutation && text == channels.ErrPermissionDenied.Error() {
			return nil // the channel layer refuses mutations first
		}
		return wantUnsupported()
	}
	switch {
	case !isError && readOnly && row.refusedRO:
		return fmt.Errorf("answered %s to a read-only session; the doc says it is refused", got)
	case !isError && !slices.Contains(row.replies, got):
		return fmt.Errorf("answered %s; the doc says %q", got, row.replies)
	case !isError:
		return nil
	case strings.HasPrefix(text, "unsupported command"):
		return fmt.Errorf("answered %q; the doc says %s serves it", text, targetName(target))
	case text == channels.ErrPermissionDenied.Error():
		if readOnly && (row.refusedRO || strings.Contains(row.notes, "permission denied")) {
			return nil
		}
		return fmt.Errorf("answered permission denied, which the doc does not say")
	case text == "":
		return errors.New("answered an error without a text")
	case readOnly && row.refusedRO:
		return fmt.Errorf("answered %q to a read-only session; the doc says permission denied", text)
	}
	return nil
}

func targetName(target string) string {
	if target == "" {
		return "channel 0"
	}
	return target
}

// noProcessesLeft checks that every process group the daemon started has
// ended and been reaped.
func noProcessesLeft(t *testing.T) {
	deadline := time.Now().Add(conmantest.Timeout)
	for {
		left := proc.Supervised()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			pids := make([]int, len(left))
			for i, g := range left {
				pids[i] = g.Pid()
			}
			t.Errorf("process groups still running: %v", pids)
			return
		}
		select {
		case <-left[0].Done():
		case <-time.After(time.Until(deadline)):
		}
	}
}
