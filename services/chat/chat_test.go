package chat_test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/chat"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func open(t *testing.T, c *client.Client, name string) *client.Channel {
	t.Helper()
	ch, err := c.Open(conmantest.Context(t), chat.Name, name, api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		t.Fatalf("open chat %q: %v", name, err)
	}
	return ch
}

func recv(t *testing.T, ch *client.Channel) *api.Command {
	t.Helper()
	cmd, err := ch.Recv(conmantest.Context(t))
	if err != nil {
		t.Fatalf("recv on channel %d: %v", ch.ID(), err)
	}
	return cmd
}

func say(text string) *api.Command {
	return &api.Command{Body: &api.Command_ChatMessage{ChatMessage: &api.ChatMessage{Username: "someone else", Text: text}}}
}

func request(t *testing.T, ch *client.Channel, cmd *api.Command) *api.Command {
	t.Helper()
	r, err := ch.Request(conmantest.Context(t), cmd)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// scrollback reads the chatScrollback a joining session gets first.
func scrollback(t *testing.T, ch *client.Channel) []string {
	t.Helper()
	m := recv(t, ch)
	sb := m.GetChatScrollback()
	if sb == nil {
		t.Fatalf("first message %v, want chatScrollback", m)
	}
	var out []string
	for _, msg := range sb.Scrollback {
		out = append(out, msg.GetUsername()+": "+msg.GetText())
	}
	return out
}

// flush returns once every message sent to ch's session before now has
// arrived: a request on the same channel is answered after them.
func flush(t *testing.T, ch *client.Channel) {
	t.Helper()
	request(t, ch, &api.Command{Body: &api.Command_OpenFile{OpenFile: &api.OpenFile{}}})
}

func noViolations(t *testing.T, clients ...*client.Client) {
	t.Helper()
	for i, c := range clients {
		for _, v := range c.Violations() {
			t.Errorf("client %d: %s: %v", i, v.Problem, v.Command)
		}
	}
}

// withOptions configures the chat services of the daemons the test
// starts; such tests are not parallel.
func withOptions(t *testing.T, opts chat.Options) {
	chat.Configure(opts)
	t.Cleanup(func() { chat.Configure(chat.Options{}) })
}

func TestMessagesGoToTheOthers(t *testing.T) {
	d := conmantest.Start(t)
	a := d.DialAs(t, auth.Claims{UserID: 1, UserName: "ada"})
	b := d.DialAs(t, auth.Claims{UserID: 2, UserName: "bob", ReadOnly: true})
	ca, cb := open(t, a, "room"), open(t, b, "room")
	if sb := scrollback(t, ca); len(sb) != 0 {
		t.Fatalf("new room's scrollback %v", sb)
	}
	scrollback(t, cb)

	if r := request(t, ca, say("hello")); r.GetOk() == nil {
		t.Fatalf("chatMessage: %v", r)
	}
	m := recv(t, cb).GetChatMessage()
	if m.GetUsername() != "ada" || m.GetText() != "hello" {
		t.Fatalf("bob got %v, want ada: hello (the name comes from the token)", m)
	}
	// A read-only session may chat.
	if err := cb.Send(&api.Command{Body: &api.Command_ChatTyping{ChatTyping: &api.ChatTyping{Typing: true}}}); err != nil {
		t.Fatal(err)
	}
	if ty := recv(t, ca).GetChatTyping(); ty.GetUsername() != "bob" || !ty.GetTyping() {
		t.Fatalf("ada got typing %v", ty)
	}
	if r := request(t, cb, say("hi ada")); r.GetOk() == nil {
		t.Fatalf("chatMessage: %v", r)
	}
	if m := recv(t, ca).GetChatMessage(); m.GetText() != "hi ada" {
		t.Fatalf("ada got %v", m)
	}

	// The sender never gets its own message back.
	flush(t, ca)
	if m, ok := ca.TryRecv(); ok {
		t.Fatalf("ada got %v", m)
	}

	// Too long: refused, not relayed.
	r := request(t, ca, say(strings.Repeat("x", chat.DefaultMaxMessageBytes+1)))
	if !client.IsError(r, "chat message too long") {
		t.Fatalf("long message: %v", r)
	}

	// A late joiner gets the history, and another room is another room.
	c := d.Dial(t)
	if got, want := strings.Join(scrollback(t, open(t, c, "room")), "|"), "ada: hello|bob: hi ada"; got != want {
		t.Fatalf("scrollback %q, want %q", got, want)
	}
	if sb := scrollback(t, open(t, c, "other room")); len(sb) != 0 {
		t.Fatalf("other room's scrollback %v", sb)
	}
	flush(t, cb)
	if m, ok := cb.TryRecv(); ok {
		t.Fatalf("bob got %v after the long message", m)
	}
	noViolations(t, a, b, c)
}

func TestFloodIsRateLimited(t *testing.T) {
	// A stopped clock: the buckets never refill, so exactly a burst gets
	// through however slowly the test runs.
	stopped := time.Unix(1e9, 0)
	withOptions(t, chat.Options{Now: func() time.Time { return stopped }})
	d := conmantest.Start(t)
	a, b := d.Dial(t), d.Dial(t)
	ca, cb := open(t, a, "room"), open(t, b, "room")
	scrollback(t, ca)
	scrollback(t, cb)
	const sent = 200
	for i := 0; i < sent; i++ {
		if err := ca.Send(say(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// The last one carries a ref: once it is answered, every one before it
	// was handled, and the errors for the refused ones have arrived.
	last := request(t, ca, say("last"))
	refused := 0
	for {
		m, ok := ca.TryRecv()
		if !ok {
			break
		}
		if !client.IsError(m, "chat: too many messages; slow down") {
			t.Fatalf("sender got %v", m)
		}
		refused++
	}
	if last.GetOk() == nil {
		refused++
	}
	flush(t, cb)
	relayed := 0
	for {
		m, ok := cb.TryRecv()
		if !ok {
			break
		}
		if m.GetChatMessage() == nil {
			t.Fatalf("receiver got %v", m)
		}
		relayed++
	}
	if relayed != chat.DefaultMessageBurst || refused != sent+1-relayed {
		t.Fatalf("%d relayed, %d refused of %d: want a burst of %d through, every other one refused", relayed, refused, sent+1, chat.DefaultMessageBurst)
	}
	// The other session's bucket is its own.
	if r := request(t, cb, say("still here")); r.GetOk() == nil {
		t.Fatalf("bob's message: %v", r)
	}
	noViolations(t, a, b)
}

func TestReplaysTheLastMessages(t *testing.T) {
	withOptions(t, chat.Options{MessageRate: 1e6, MessageBurst: 1e6})
	d := conmantest.Start(t)
	a := d.Dial(t)
	ca := open(t, a, "room")
	scrollback(t, ca)
	for i := 0; i < 2*chat.DefaultHistory+30; i++ {
		if r := request(t, ca, say(fmt.Sprint(i))); r.GetOk() == nil {
			t.Fatalf("message %d: %v", i, r)
		}
	}
	sb := scrollback(t, open(t, d.Dial(t), "room"))
	if len(sb) != chat.DefaultHistory || sb[0] != fmt.Sprintf("ada: %d", chat.DefaultHistory+30) || sb[len(sb)-1] != fmt.Sprintf("ada: %d", 2*chat.DefaultHistory+29) {
		t.Fatalf("scrollback of %d from %q to %q", len(sb), sb[0], sb[len(sb)-1])
	}
	noViolations(t, a)
}

// TestHistorySurvivesACrash kills the daemon binary with SIGKILL after the
// messages were acknowledged: the restarted daemon replays them.
func TestHistorySurvivesACrash(t *testing.T) {
	t.Parallel()
	ws := t.TempDir()
	p := conmantest.StartProcess(t, ws)
	c := conmantest.DialURL(t, client.URL(p.Addr, p.Token(t, "ada")), client.Options{})
	ch := open(t, c, "room")
	scrollback(t, ch)
	var want []string
	for i := 0; i < chat.DefaultMessageBurst; i++ {
		if r := request(t, ch, say(fmt.Sprint(i))); r.GetOk() == nil {
			t.Fatalf("message %d: %v", i, r)
		}
		want = append(want, fmt.Sprintf("ada: %d", i))
	}
	p.Signal(syscall.SIGKILL)
	p.Wait(t)
	c.Close()

	p = conmantest.StartProcess(t, ws)
	c = conmantest.DialURL(t, client.URL(p.Addr, p.Token(t, "bob")), client.Options{})
	if got := scrollback(t, open(t, c, "room")); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("after the restart: %q, want %q", got, want)
	}
	noViolations(t, c)
}

// TestLimitsSpanRooms: a session's bucket is shared by its rooms, and the
// rooms with a history on disk are bounded.
func TestLimitsSpanRooms(t *testing.T) {
	stopped := time.Unix(1e9, 0)
	withOptions(t, chat.Options{Now: func() time.Time { return stopped }, MaxRooms: 2})
	d := conmantest.Start(t)
	a := d.Dial(t)
	oks := 0
	for _, name := range []string{"r1", "r2"} {
		ch := open(t, a, name)
		scrollback(t, ch)
		for i := 0; i < chat.DefaultMessageBurst; i++ {
			r := request(t, ch, say(fmt.Sprint(i)))
			switch {
			case r.GetOk() != nil:
				oks++
			case !client.IsError(r, "chat: too many messages"):
				t.Fatalf("got %v", r)
			}
		}
	}
	if oks != chat.DefaultMessageBurst {
		t.Fatalf("%d messages went through in two rooms, want one burst (%d)", oks, chat.DefaultMessageBurst)
	}
	// Room r2 got no message (the bucket was empty): another session can
	// still start it, then no third room.
	b := d.Dial(t)
	for _, tc := range []struct{ room, want string }{{"r2", ""}, {"r3", "chat: too many rooms with a history"}, {"r1", ""}} {
		ch := open(t, b, tc.room)
		scrollback(t, ch)
		r := request(t, ch, say("hello"))
		if tc.want == "" && r.GetOk() == nil || tc.want != "" && !client.IsError(r, tc.want) {
			t.Fatalf("room %s: %v, want %q", tc.room, r, tc.want)
		}
	}
	noViolations(t, a, b)
}
