package conman_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/debug"
)

// TestBadFramesCloseTheSession covers the inputs after which a session is
// over: the daemon explains on channel 0, then closes with a code.
func TestBadFramesCloseTheSession(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t, func(c *conman.Config) { c.ReadLimit = 4 << 10 })
	tests := []struct {
		name     string
		kind     int
		frame    []byte
		wantText string
		wantCode int
		reason   string
	}{
		{"text frame", websocket.TextMessage, []byte(`{"ping":{}}`), "text frames are not part of the protocol", 1003, "text_frame"},
		{"undecodable", websocket.BinaryMessage, []byte{0xff, 0xff, 0xff}, "undecodable frame", 1002, "undecodable_frame"},
		{"truncated field", websocket.BinaryMessage, []byte{0x0a, 0x10, 'a'}, "undecodable frame", 1002, "undecodable_frame"},
		{"over the read limit", websocket.BinaryMessage, mustMarshal(t, debugText(strings.Repeat("x", 5<<10))), "frame exceeds the read limit of 4096 bytes", 1009, "frame_too_big"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := d.Dial(t)
			ctx := conmantest.Context(t)
			if err := c.WriteRaw(tt.kind, tt.frame); err != nil {
				t.Fatal(err)
			}
			m, err := c.Chan0(ctx)
			if err != nil {
				t.Fatalf("want a protocolError first, got %v", err)
			}
			if pe := m.GetProtocolError(); pe == nil || !strings.Contains(pe.Text, tt.wantText) {
				t.Fatalf("got %v, want protocolError containing %q", m, tt.wantText)
			}
			select {
			case <-c.Done():
			case <-ctx.Done():
				t.Fatal("session not closed")
			}
			var ce *client.CloseError
			if !errors.As(c.Err(), &ce) || ce.Code != tt.wantCode {
				t.Fatalf("closed with %v, want code %d", c.Err(), tt.wantCode)
			}
			key := `conman_session_closes_total{reason="` + tt.reason + `"}`
			waitFor(t, key, func() bool { return conmantest.Metrics(t, d.Addr())[key] >= 1 })
		})
	}
}

func mustMarshal(t *testing.T, cmd *api.Command) []byte {
	t.Helper()
	b, err := proto.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadCommandsAreAnswered covers the inputs a session survives: each gets
// a clear reply and the session goes on.
func TestBadCommandsAreAnswered(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.Dial(t)
	ctx := conmantest.Context(t)
	ch := open(t, c, debug.Name, "", api.OpenChannel_CREATE)

	t.Run("channel not held", func(t *testing.T) {
		if err := c.Send(&api.Command{Channel: 4242, Body: &api.Command_Ping{Ping: &api.Ping{}}}); err != nil {
			t.Fatal(err)
		}
		m, err := c.Chan0(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if pe := m.GetProtocolError(); pe == nil || pe.Text != "channel 4242 is not open" {
			t.Fatalf("got %v, want protocolError \"channel 4242 is not open\"", m)
		}
	})
	t.Run("closed channel", func(t *testing.T) {
		gone := open(t, c, debug.Name, "", api.OpenChannel_CREATE)
		if _, err := gone.Close(ctx, api.CloseChannel_TRY_CLOSE); err != nil {
			t.Fatal(err)
		}
		if err := c.Send(&api.Command{Channel: gone.ID(), Body: &api.Command_Debug{Debug: &api.Debug{Text: "late"}}}); err != nil {
			t.Fatal(err)
		}
		m, err := c.Chan0(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.GetProtocolError() == nil || !strings.Contains(m.GetProtocolError().Text, "is not open") {
			t.Fatalf("got %v, want protocolError", m)
		}
	})

	replies := []struct {
		name string
		cmd  *api.Command
		on0  bool
		want string
	}{
		{"channel-0 body on a service", &api.Command{Body: &api.Command_OpenChan{OpenChan: &api.OpenChannel{Service: "x"}}}, false, "unsupported command openChan on service conman.debug"},
		{"empty body on a service", &api.Command{}, false, "unsupported command empty on service conman.debug"},
		{"service body on channel 0", &api.Command{Body: &api.Command_Write{Write: &api.File{Path: "x"}}}, true, "unsupported command write on channel 0"},
		{"empty body on channel 0", &api.Command{}, true, "unsupported command empty on channel 0"},
	}
	for _, tt := range replies {
		t.Run(tt.name, func(t *testing.T) {
			var r *api.Command
			var err error
			if tt.on0 {
				r, err = c.Request0(ctx, tt.cmd)
			} else {
				r, err = ch.Request(ctx, tt.cmd)
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.GetError() != tt.want {
				t.Fatalf("got %v, want error %q", r, tt.want)
			}
		})
	}

	t.Run("body from a newer protocol", func(t *testing.T) {
		// A ref and an unknown field 4999 (bytes), as a newer client would
		// send.
		frame := protowire.AppendTag(nil, 1000, protowire.BytesType)
		frame = protowire.AppendString(frame, "newer")
		frame = protowire.AppendTag(frame, 4999, protowire.BytesType)
		frame = protowire.AppendBytes(frame, []byte{0x08, 0x01})
		if err := c.WriteRaw(websocket.BinaryMessage, frame); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := c.Chan0(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m.Ref == "newer" {
				if m.GetError() != "unsupported command #4999 on channel 0" {
					t.Fatalf("got %v", m)
				}
				break
			}
		}
	})

	t.Run("invalid UTF-8 is repaired", func(t *testing.T) {
		// debug{text: "a\xffb"} on the channel: Go's decoder refuses the
		// string; the daemon repairs it instead of dropping the session.
		inner := protowire.AppendTag(nil, 1, protowire.BytesType)
		inner = protowire.AppendBytes(inner, []byte("a\xffb"))
		frame := protowire.AppendTag(nil, 1, protowire.VarintType)
		frame = protowire.AppendVarint(frame, uint64(ch.ID()))
		frame = protowire.AppendTag(frame, 1000, protowire.BytesType)
		frame = protowire.AppendString(frame, "utf8")
		frame = protowire.AppendTag(frame, 230, protowire.BytesType)
		frame = protowire.AppendBytes(frame, inner)
		if err := c.WriteRaw(websocket.BinaryMessage, frame); err != nil {
			t.Fatal(err)
		}
		echo := recvUntil(t, ch, "echo", func(m *api.Command) bool { return m.GetDebug() != nil })
		if got := echo.GetDebug().GetText(); got != "a\uFFFDb" {
			t.Fatalf("echo %q, want %q", got, "a\uFFFDb")
		}
	})

	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("session should survive: %v", err)
	}
	noViolations(t, c)
}
