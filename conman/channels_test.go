package conman_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/debug"
)

// open opens a channel and fails the test on error.
func open(t *testing.T, c *client.Client, service, name string, action api.OpenChannel_Action) *client.Channel {
	t.Helper()
	ch, err := c.Open(conmantest.Context(t), service, name, action)
	if err != nil {
		t.Fatalf("open %s %q: %v", service, name, err)
	}
	return ch
}

// recv returns the next streamed message on ch.
func recv(t *testing.T, ch *client.Channel) *api.Command {
	t.Helper()
	cmd, err := ch.Recv(conmantest.Context(t))
	if err != nil {
		t.Fatalf("recv on channel %d: %v", ch.ID(), err)
	}
	return cmd
}

// recvUntil skips streamed messages until match accepts one.
func recvUntil(t *testing.T, ch *client.Channel, what string, match func(*api.Command) bool) *api.Command {
	t.Helper()
	ctx := conmantest.Context(t)
	for {
		cmd, err := ch.Recv(ctx)
		if err != nil {
			t.Fatalf("waiting for %s on channel %d: %v", what, ch.ID(), err)
		}
		if match(cmd) {
			return cmd
		}
	}
}

// noViolations fails the test when a client saw a server message that
// breaks a client rule.
func noViolations(t *testing.T, clients ...*client.Client) {
	t.Helper()
	for i, c := range clients {
		for _, v := range c.Violations() {
			t.Errorf("client %d: %s: %v", i, v.Problem, v.Command)
		}
	}
}

func debugText(text string) *api.Command {
	return &api.Command{Body: &api.Command_Debug{Debug: &api.Debug{Text: text}}}
}

func TestOpenActions(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	a, b := d.Dial(t), d.Dial(t)
	ctx := conmantest.Context(t)

	tests := []struct {
		name      string
		c         *client.Client
		service   string
		chanName  string
		action    api.OpenChannel_Action
		wantState api.OpenChannelRes_State
		wantErr   string
	}{
		{"anonymous create", a, debug.Name, "", api.OpenChannel_CREATE, api.OpenChannelRes_CREATED, ""},
		{"anonymous attach-or-create", a, debug.Name, "", api.OpenChannel_ATTACH_OR_CREATE, api.OpenChannelRes_CREATED, ""},
		{"anonymous attach", a, debug.Name, "", api.OpenChannel_ATTACH, api.OpenChannelRes_ERROR, "ATTACH needs a channel name"},
		{"attach missing name", a, debug.Name, "nobody-here", api.OpenChannel_ATTACH, api.OpenChannelRes_ERROR, `no channel named "nobody-here"`},
		{"named create", a, debug.Name, "n1", api.OpenChannel_CREATE, api.OpenChannelRes_CREATED, ""},
		{"named create twice", b, debug.Name, "n1", api.OpenChannel_CREATE, api.OpenChannelRes_ERROR, "already exists"},
		{"named attach", b, debug.Name, "n1", api.OpenChannel_ATTACH, api.OpenChannelRes_ATTACHED, ""},
		{"attach-or-create new", a, debug.Name, "n2", api.OpenChannel_ATTACH_OR_CREATE, api.OpenChannelRes_CREATED, ""},
		{"attach-or-create existing", b, debug.Name, "n2", api.OpenChannel_ATTACH_OR_CREATE, api.OpenChannelRes_ATTACHED, ""},
		{"same session twice", b, debug.Name, "n2", api.OpenChannel_ATTACH_OR_CREATE, api.OpenChannelRes_ERROR, "already holds"},
		{"unknown service", a, "no.such.service", "", api.OpenChannel_ATTACH_OR_CREATE, api.OpenChannelRes_ERROR, "unknown service no.such.service"},
		{"unknown service named", a, "no.such.service", "x", api.OpenChannel_ATTACH, api.OpenChannelRes_ERROR, "unknown service no.such.service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, state, err := tt.c.OpenState(ctx, tt.service, tt.chanName, tt.action)
			if tt.wantErr != "" {
				var oe *client.OpenError
				if !errors.As(err, &oe) || state != api.OpenChannelRes_ERROR {
					t.Fatalf("got %v, state %v; want openChanRes{ERROR}", err, state)
				}
				if !strings.Contains(oe.Text, tt.wantErr) {
					t.Fatalf("error %q does not say %q", oe.Text, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if state != tt.wantState {
				t.Fatalf("state %v, want %v", state, tt.wantState)
			}
			if ch.ID() == 0 {
				t.Fatal("channel id 0")
			}
		})
	}
	noViolations(t, a, b)
}

func TestChannelIDsUniqueAndNonZero(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ctx := conmantest.Context(t)
	seen := map[int32]bool{}
	for i := 0; i < 50; i++ {
		ch := open(t, c, debug.Name, "", api.OpenChannel_CREATE)
		if ch.ID() == 0 || seen[ch.ID()] {
			t.Fatalf("id %d is zero or reused (seen %v)", ch.ID(), seen)
		}
		seen[ch.ID()] = true
		if i%2 == 0 {
			if _, err := ch.Close(ctx, api.CloseChannel_TRY_CLOSE); err != nil {
				t.Fatal(err)
			}
		}
	}
	noViolations(t, c)
}

func TestOpenChanResComesFirst(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	// The debug service greets every joining session with a roster, so a
	// reply that came late would show as a message before openChanRes.
	var mu sync.Mutex
	var order []*api.Command
	c := conmantest.DialURL(t, d.URL(d.Token(t, conmantest.User)), client.Options{Trace: func(cmd *api.Command) {
		mu.Lock()
		order = append(order, cmd)
		mu.Unlock()
	}})
	other := d.Dial(t)
	busy := open(t, other, debug.Name, "busy", api.OpenChannel_ATTACH_OR_CREATE)
	// Keep the channel busy with broadcasts while c attaches.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := busy.Send(debugText("tick")); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for i := 0; i < 20; i++ {
		ch := open(t, c, debug.Name, "busy", api.OpenChannel_ATTACH_OR_CREATE)
		recvUntil(t, ch, "roster", func(cmd *api.Command) bool { return cmd.GetRoster() != nil })
		if _, err := ch.Close(conmantest.Context(t), api.CloseChannel_DISCONNECT); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	open := map[int32]bool{}
	for _, cmd := range order {
		if res := cmd.GetOpenChanRes(); res != nil {
			open[res.Id] = true
		}
		if res := cmd.GetCloseChanRes(); res != nil {
			delete(open, res.Id)
		}
		if cmd.Channel != 0 && !open[cmd.Channel] {
			t.Fatalf("message on channel %d outside its openChanRes..closeChanRes window: %v", cmd.Channel, cmd)
		}
	}
	noViolations(t, c, other)
}

func TestCloseActions(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	ctx := conmantest.Context(t)

	type step struct {
		who    int // which client closes
		action api.CloseChannel_Action
		want   api.CloseChannelRes_Status
	}
	tests := []struct {
		name    string
		members int
		steps   []step
		// othersTold: after the steps, do the remaining members get an
		// unsolicited closeChanRes{CLOSE}?
		othersTold bool
	}{
		{"disconnect keeps the channel", 2, []step{{0, api.CloseChannel_DISCONNECT, api.CloseChannelRes_DISCONNECT}}, false},
		{"try-close with others left", 2, []step{{0, api.CloseChannel_TRY_CLOSE, api.CloseChannelRes_DISCONNECT}}, false},
		{"try-close by the last", 2, []step{{0, api.CloseChannel_TRY_CLOSE, api.CloseChannelRes_DISCONNECT}, {1, api.CloseChannel_TRY_CLOSE, api.CloseChannelRes_CLOSE}}, false},
		{"close ends it for all", 3, []step{{0, api.CloseChannel_CLOSE, api.CloseChannelRes_CLOSE}}, true},
		{"disconnect by the last, then attach", 1, []step{{0, api.CloseChannel_DISCONNECT, api.CloseChannelRes_CLOSE}}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("close-%d", i)
			var clients []*client.Client
			var chans []*client.Channel
			for j := 0; j < tt.members; j++ {
				c := d.Dial(t)
				clients = append(clients, c)
				chans = append(chans, open(t, c, debug.Name, name, api.OpenChannel_ATTACH_OR_CREATE))
			}
			closed := map[int]bool{}
			for _, s := range tt.steps {
				got, err := chans[s.who].Close(ctx, s.action)
				if err != nil {
					t.Fatal(err)
				}
				if got != s.want {
					t.Fatalf("client %d %v: status %v, want %v", s.who, s.action, got, s.want)
				}
				closed[s.who] = true
			}
			for j, ch := range chans {
				if closed[j] {
					continue
				}
				if tt.othersTold {
					select {
					case <-ch.Gone():
					case <-ctx.Done():
						t.Fatalf("client %d was not told the channel closed", j)
					}
					continue
				}
				// Still alive: an echo reaches this member.
				if r, err := ch.Request(ctx, debugText("still here")); err != nil || r.GetOk() == nil {
					t.Fatalf("client %d: channel should live on: %v %v", j, r, err)
				}
			}
			noViolations(t, clients...)
		})
	}

	t.Run("unknown id", func(t *testing.T) {
		c := d.Dial(t)
		r, err := c.Request0(ctx, &api.Command{Body: &api.Command_CloseChan{CloseChan: &api.CloseChannel{Id: 99, Action: api.CloseChannel_TRY_CLOSE}}})
		if err != nil {
			t.Fatal(err)
		}
		if res := r.GetCloseChanRes(); res == nil || res.Id != 99 || res.Status != api.CloseChannelRes_NOTHING {
			t.Fatalf("got %v, want closeChanRes{id 99, NOTHING}", r)
		}
	})
}

// TestNothingAfterCloseChanRes closes channels while they stream broadcasts:
// the client must never see a message on an id after its closeChanRes.
func TestNothingAfterCloseChanRes(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	ctx := conmantest.Context(t)
	talker := d.Dial(t)
	talk := open(t, talker, debug.Name, "chatty", api.OpenChannel_ATTACH_OR_CREATE)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			// One message in flight: broadcasts stream without end, at
			// the pace the daemon handles them.
			if _, err := talk.Request(ctx, debugText("chatter")); err != nil {
				return
			}
		}
	}()
	listener := d.Dial(t)
	for i := 0; i < 100; i++ {
		ch := open(t, listener, debug.Name, "chatty", api.OpenChannel_ATTACH_OR_CREATE)
		recvUntil(t, ch, "chatter", func(cmd *api.Command) bool { return cmd.GetDebug() != nil })
		action := []api.CloseChannel_Action{api.CloseChannel_DISCONNECT, api.CloseChannel_TRY_CLOSE}[i%2]
		if _, err := ch.Close(ctx, action); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	// A ping round trip makes sure everything sent before it has arrived.
	if _, err := listener.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	noViolations(t, talker, listener)
}

func TestSessionAddressingAndRefs(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	ctx := conmantest.Context(t)
	var cs []*client.Client
	var chans []*client.Channel
	var ids []int32
	for i := 0; i < 3; i++ {
		c := d.Dial(t)
		cs = append(cs, c)
		ch := open(t, c, debug.Name, "addr", api.OpenChannel_ATTACH_OR_CREATE)
		chans = append(chans, ch)
	}
	// Each member learns its session id from the roster: the first user in
	// its own roster is itself.
	for i, ch := range chans {
		roster := recvUntil(t, ch, "roster", func(c *api.Command) bool { return c.GetRoster() != nil })
		ids = append(ids, roster.GetRoster().User[0].Session)
		if ids[i] < 2 {
			t.Fatalf("session id %d < 2", ids[i])
		}
	}
	// Drain joins.
	for i, ch := range chans {
		for j := i + 1; j < len(chans); j++ {
			recvUntil(t, ch, "join", func(c *api.Command) bool { return c.GetJoin() != nil })
		}
	}
	tests := []struct {
		name    string
		session int32
		want    []bool // which members get the echo
	}{
		{"everyone", 0, []bool{true, true, true}},
		{"one session", ids[1], []bool{false, true, false}},
		{"all but one", -ids[0], []bool{false, true, true}},
		{"all but another", -ids[2], []bool{true, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := "to " + tt.name
			cmd := debugText(text)
			cmd.Session = tt.session
			r, err := chans[0].Request(ctx, cmd)
			if err != nil || r.GetOk() == nil {
				t.Fatalf("reply %v %v, want ok", r, err)
			}
			if r.Ref == "" {
				t.Fatal("final reply has no ref")
			}
			// A marker to everyone bounds the wait: whoever gets the
			// marker without the text did not get the text.
			marker := debugText("marker " + tt.name)
			if r, err := chans[0].Request(ctx, marker); err != nil || r.GetOk() == nil {
				t.Fatal(err)
			}
			for i, ch := range chans {
				got := false
				for {
					m := recv(t, ch)
					if m.Ref != "" {
						t.Fatalf("member %d: broadcast carries a ref: %v", i, m)
					}
					if m.GetDebug().GetText() == text {
						got = true
						continue
					}
					if m.GetDebug().GetText() == "marker "+tt.name {
						break
					}
				}
				if got != tt.want[i] {
					t.Errorf("member %d got the message: %v, want %v", i, got, tt.want[i])
				}
			}
		})
	}
	noViolations(t, cs...)
}

func TestInOrderPerChannel(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	ctx := conmantest.Context(t)
	a, b := d.Dial(t), d.Dial(t)
	cha := open(t, a, debug.Name, "order", api.OpenChannel_ATTACH_OR_CREATE)
	chb := open(t, b, debug.Name, "order", api.OpenChannel_ATTACH_OR_CREATE)
	const n = 2000
	for i := 0; i < n; i++ {
		if err := cha.Send(debugText(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cha.Request(ctx, debugText("done")); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []*client.Channel{cha, chb} {
		next := 0
		for next < n {
			m := recv(t, ch)
			if m.GetDebug() == nil {
				continue
			}
			if got := m.GetDebug().GetText(); got != fmt.Sprint(next) {
				t.Fatalf("channel %d: got %q, want %d", ch.ID(), got, next)
			}
			next++
		}
	}
	noViolations(t, a, b)
}

// TestChannel0BeforeLater checks that a channel-0 command is processed
// before anything the client sent after it: an open followed at once by a
// command on the new id (which the client guesses) works.
func TestChannel0BeforeLater(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ctx := conmantest.Context(t)
	// Ids are handed out from 1 in each session, so the first channel is 1.
	open := &api.Command{Ref: "open-1", Body: &api.Command_OpenChan{OpenChan: &api.OpenChannel{Service: debug.Name, Action: api.OpenChannel_CREATE}}}
	if err := c.Send(open); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(&api.Command{Channel: 1, Ref: "first", Body: &api.Command_Debug{Debug: &api.Debug{Text: "hello"}}}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := c.Chan0(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.GetProtocolError() != nil {
			t.Fatalf("the command after openChan was not routed: %v", m)
		}
		if m.GetOpenChanRes() != nil {
			if m.Ref != "open-1" || m.GetOpenChanRes().Id != 1 {
				t.Fatalf("openChanRes %v, want id 1 with ref open-1", m)
			}
			break
		}
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDetachOnSocketClose(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	ctx := conmantest.Context(t)
	stayer, leaver := d.Dial(t), d.Dial(t)
	stay := open(t, stayer, debug.Name, "room", api.OpenChannel_ATTACH_OR_CREATE)
	open(t, leaver, debug.Name, "room", api.OpenChannel_ATTACH_OR_CREATE)
	open(t, leaver, debug.Name, "", api.OpenChannel_CREATE)
	recvUntil(t, stay, "join", func(c *api.Command) bool { return c.GetJoin() != nil })

	before := channelGauge(t, d, debug.Name)
	if before != 2 {
		t.Fatalf("%v open conman.debug channels, want 2", before)
	}
	leaver.Kill() // no close handshake, as a crashed tab
	part := recvUntil(t, stay, "part", func(c *api.Command) bool { return c.GetPart() != nil })
	if part.GetPart().Name != conmantest.User.UserName {
		t.Fatalf("part %v", part)
	}
	// The anonymous channel ended with its session; the named one lives.
	waitFor(t, "anonymous channel to end", func() bool { return channelGauge(t, d, debug.Name) == 1 })
	if r, err := stay.Request(ctx, debugText("alone")); err != nil || r.GetOk() == nil {
		t.Fatalf("named channel should live on: %v %v", r, err)
	}
	noViolations(t, stayer)
}

// waitFor polls cond until it holds or the test's timeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(conmantest.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDaemonToastAndRedirect(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	ctx := conmantest.Context(t)
	a, b := d.Dial(t), d.Dial(t)
	d.Hub().Toast("hello everyone")
	d.Hub().Redirect("ws://elsewhere.example/wsv2/x")
	for _, c := range []*client.Client{a, b} {
		m, err := c.Chan0(ctx)
		if err != nil || m.GetToast().GetText() != "hello everyone" {
			t.Fatalf("got %v %v, want the toast", m, err)
		}
		m, err = c.Chan0(ctx)
		if err != nil || m.GetRedirect().GetUrl() != "ws://elsewhere.example/wsv2/x" {
			t.Fatalf("got %v %v, want the redirect", m, err)
		}
	}
}

func TestPingPong(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), conmantest.Timeout)
	defer cancel()
	for i := 0; i < 100; i++ {
		if _, err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// channelGauge is the number of open channels of service, from /metrics.
func channelGauge(t *testing.T, d *conmantest.Daemon, service string) float64 {
	t.Helper()
	return conmantest.Metrics(t, d.Addr())[fmt.Sprintf("conman_channels{service=%q}", service)]
}
