package channels_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/channels/channelstest"
	"github.com/conman-dev/conman/services"
	_ "github.com/conman-dev/conman/services/debug"
	_ "github.com/conman-dev/conman/services/sink"
)

// splitFrames cuts fuzz input into frames: each frame is a length byte
// followed by that many bytes (the last one takes what is left).
func splitFrames(data []byte) [][]byte {
	var frames [][]byte
	for len(data) > 0 {
		n := int(data[0])
		data = data[1:]
		if n > len(data) {
			n = len(data)
		}
		frames = append(frames, data[:n])
		data = data[n:]
	}
	return frames
}

// joinFrames is the inverse of splitFrames, for building seeds.
func joinFrames(frames ...[]byte) []byte {
	var out []byte
	for _, f := range frames {
		if len(f) > 255 {
			panic("seed frame too long")
		}
		out = append(out, byte(len(f)))
		out = append(out, f...)
	}
	return out
}

func newFuzzHub(t testing.TB) *channels.Hub {
	reg := channels.NewRegistry()
	hub := channels.NewHub(channels.Options{Registry: reg, PingInterval: -1, Logger: discardLogger()})
	if _, err := services.Build(services.Env{Workspace: t.TempDir(), DataDir: t.TempDir(), Logger: discardLogger(), Hub: hub}, reg); err != nil {
		t.Fatal(err)
	}
	return hub
}

// FuzzHandleFrame feeds arbitrary frames to a session: the daemon must
// never panic, and once the session and hub are closed no goroutine may be
// left behind.
func FuzzHandleFrame(f *testing.F) {
	open := func(service, name string, action api.OpenChannel_Action, ref string) []byte {
		return channelstest.Encode(&api.Command{Ref: ref, Body: &api.Command_OpenChan{OpenChan: &api.OpenChannel{Service: service, Name: name, Action: action}}})
	}
	on := func(ch int32, cmd *api.Command) []byte {
		cmd.Channel = ch
		return channelstest.Encode(cmd)
	}
	f.Add(joinFrames(channelstest.Encode(&api.Command{Ref: "p", Body: &api.Command_Ping{Ping: &api.Ping{}}})))
	f.Add(joinFrames(open("conman.debug", "n", api.OpenChannel_ATTACH_OR_CREATE, "o"), on(1, &api.Command{Ref: "d", Body: &api.Command_Debug{Debug: &api.Debug{Text: "hi"}}})))
	f.Add(joinFrames(open("conman.debug", "", api.OpenChannel_CREATE, "o"), on(1, &api.Command{Session: -2, Body: &api.Command_Debug{Debug: &api.Debug{Text: "flood 3 10"}}}),
		channelstest.Encode(&api.Command{Body: &api.Command_CloseChan{CloseChan: &api.CloseChannel{Id: 1, Action: api.CloseChannel_CLOSE}}})))
	f.Add(joinFrames(open("conman.sink", "s", api.OpenChannel_ATTACH, "o"), open("nope", "", api.OpenChannel_CREATE, "x")))
	f.Add(joinFrames([]byte{0xff, 0xff}, []byte{0x08}))
	f.Add(joinFrames(on(7, &api.Command{Body: &api.Command_Write{Write: &api.File{Path: "x"}}})))

	f.Fuzz(func(t *testing.T, data []byte) {
		before := runtime.NumGoroutine()
		hub := newFuzzHub(t)
		for _, ident := range []channels.Identity{{UserName: "rw"}, {UserName: "ro", ReadOnly: true}} {
			conn := channelstest.NewConn()
			s, err := hub.NewSession(conn, ident)
			if err != nil {
				t.Fatal(err)
			}
			for _, frame := range splitFrames(data) {
				s.HandleFrame(frame)
			}
			s.Close(channels.ReasonClientClosed)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hub.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Fatalf("%d goroutines left behind:\n%s", runtime.NumGoroutine()-before, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(time.Millisecond)
		}
	})
}
