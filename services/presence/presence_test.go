package presence_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/presence"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func open(t *testing.T, c *client.Client, service string) *client.Channel {
	t.Helper()
	ch, err := c.Open(conmantest.Context(t), service, presence.ChannelName, api.OpenChannel_ATTACH_OR_CREATE)
	if err != nil {
		t.Fatalf("open %s: %v", service, err)
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

// users renders users as "name#session[roles]" in order.
func users(us ...*api.User) string {
	var out []string
	for _, u := range us {
		out = append(out, fmt.Sprintf("%s/%d#%d%v", u.GetName(), u.GetId(), u.GetSession(), u.GetRoles()))
	}
	return strings.Join(out, " ")
}

func noViolations(t *testing.T, clients ...*client.Client) {
	t.Helper()
	for i, c := range clients {
		for _, v := range c.Violations() {
			t.Errorf("client %d: %s: %v", i, v.Problem, v.Command)
		}
	}
}

// expectNothing checks that nothing is waiting on ch, after a round trip
// on the same channel has flushed whatever was sent before it.
func expectNothing(t *testing.T, ch *client.Channel) {
	t.Helper()
	if _, err := ch.Request(conmantest.Context(t), &api.Command{Body: &api.Command_OpenFile{OpenFile: &api.OpenFile{File: ""}}}); err != nil {
		t.Fatal(err)
	}
	if cmd, ok := ch.TryRecv(); ok {
		t.Fatalf("unexpected %v", cmd)
	}
}

func TestRosterJoinPartAndOpenFiles(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	ada := auth.Claims{UserID: 1, UserName: "ada"}
	bob := auth.Claims{UserID: 2, UserName: "bob", Roles: []string{"debug"}, ReadOnly: true}
	a1 := d.DialAs(t, ada)
	b := d.DialAs(t, bob)
	a2 := d.DialAs(t, ada) // ada's second tab
	ctx := conmantest.Context(t)

	pa1 := open(t, a1, presence.Name)
	r := recv(t, pa1).GetRoster()
	if r == nil || len(r.User) != 1 {
		t.Fatalf("first roster: %v", r)
	}
	a1sess := r.User[0].Session
	if want := fmt.Sprintf("ada/1#%d[rw]", a1sess); users(r.User...) != want {
		t.Fatalf("roster %s, want %s", users(r.User...), want)
	}

	// bob joins through the alias service name: one roster for both.
	pb := open(t, b, presence.Alias)
	r = recv(t, pb).GetRoster()
	if r == nil || len(r.User) != 2 {
		t.Fatalf("bob's roster: %v", r)
	}
	bsess := r.User[1].Session
	if want := fmt.Sprintf("ada/1#%d[rw] bob/2#%d[ro debug]", a1sess, bsess); users(r.User...) != want {
		t.Fatalf("roster %s, want %s", users(r.User...), want)
	}
	if j := recv(t, pa1).GetJoin(); users(j) != users(r.User[1]) {
		t.Fatalf("ada saw join %v, want %s", j, users(r.User[1]))
	}

	// ada opens a file: bob sees it, ada gets ok and no echo.
	reply, err := pa1.Request(ctx, &api.Command{Body: &api.Command_OpenFile{OpenFile: &api.OpenFile{File: "src/main.go"}}})
	if err != nil || reply.GetOk() == nil {
		t.Fatalf("openFile: %v %v", reply, err)
	}
	fo := recv(t, pb).GetFileOpened()
	if fo.GetFile() != "src/main.go" || fo.GetUserId() != 1 || fo.GetSession() != a1sess || fo.GetTimestamp() == nil {
		t.Fatalf("fileOpened %v", fo)
	}

	// ada's second tab gets the roster and the open file.
	pa2 := open(t, a2, presence.Name)
	r = recv(t, pa2).GetRoster()
	if r == nil || len(r.User) != 3 {
		t.Fatalf("second tab's roster: %v", r)
	}
	a2sess := r.User[2].Session
	if want := fmt.Sprintf("ada/1#%d[rw] bob/2#%d[ro debug] ada/1#%d[rw]", a1sess, bsess, a2sess); users(r.User...) != want {
		t.Fatalf("roster %s, want %s", users(r.User...), want)
	}
	fo = recv(t, pa2).GetFileOpened()
	if fo.GetFile() != "src/main.go" || fo.GetSession() != a1sess {
		t.Fatalf("open files for a joining session: %v", fo)
	}
	for _, ch := range []*client.Channel{pa1, pb} {
		if j := recv(t, ch).GetJoin(); j.GetSession() != a2sess || j.GetName() != "ada" {
			t.Fatalf("join of the second tab: %v", j)
		}
	}

	// The second tab goes away with its connection: a part for it alone.
	a2.Close()
	for _, ch := range []*client.Channel{pa1, pb} {
		if p := recv(t, ch).GetPart(); p.GetSession() != a2sess {
			t.Fatalf("part: %v, want session %d", p, a2sess)
		}
	}

	// bob closes the channel: ada sees him part.
	if _, err := pb.Close(ctx, api.CloseChannel_TRY_CLOSE); err != nil {
		t.Fatal(err)
	}
	if p := recv(t, pa1).GetPart(); p.GetSession() != bsess || p.GetId() != 2 {
		t.Fatalf("part: %v, want bob's session %d", p, bsess)
	}
	expectNothing(t, pa1)

	// Rejoining shows the roster as it is now.
	pb = open(t, b, presence.Name)
	r = recv(t, pb).GetRoster()
	if got := []int32{r.GetUser()[0].GetSession(), r.GetUser()[1].GetSession()}; len(r.GetUser()) != 2 || !slices.Equal(got, []int32{a1sess, bsess}) {
		t.Fatalf("roster after rejoin: %v", r)
	}
	noViolations(t, a1, a2, b)
}

func TestOpenFileChecks(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ch := open(t, c, presence.Name)
	recv(t, ch) // roster
	ctx := conmantest.Context(t)
	reply, err := ch.Request(ctx, &api.Command{Body: &api.Command_OpenFile{OpenFile: &api.OpenFile{File: strings.Repeat("x", presence.MaxFileBytes+1)}}})
	if err != nil || !client.IsError(reply, "path too long") {
		t.Fatalf("long path: %v %v", reply, err)
	}
	reply, err = ch.Request(ctx, &api.Command{Body: &api.Command_ChatMessage{ChatMessage: &api.ChatMessage{Text: "hi"}}})
	if err != nil || !client.IsError(reply, "unsupported command chatMessage on service presence") {
		t.Fatalf("other body: %v %v", reply, err)
	}
	noViolations(t, c)
}

// TestChannelEndsWithLastSession: when the last session closes the channel
// (which ends it without a detach), the roster forgets it, so the next
// session sees only itself.
func TestChannelEndsWithLastSession(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	a, b := d.Dial(t), d.Dial(t)
	ch := open(t, a, presence.Name)
	recv(t, ch)
	if _, err := ch.Close(conmantest.Context(t), api.CloseChannel_TRY_CLOSE); err != nil {
		t.Fatal(err)
	}
	<-ch.Gone()
	chb := open(t, b, presence.Name)
	if r := recv(t, chb).GetRoster(); len(r.GetUser()) != 1 {
		t.Fatalf("roster %v, want only the new session", r)
	}
	noViolations(t, a, b)
}
