package diag_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/services/diag"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	debugger = auth.Claims{UserID: 3, UserName: "dee", Roles: []string{"debug"}}
	admin    = auth.Claims{UserID: 4, UserName: "root", Roles: []string{"admin"}}
)

// route sends a command on channel 0 or on a diag channel.
type route struct {
	name    string
	request func(t *testing.T, cmd *api.Command) *api.Command
}

func routes(t *testing.T, c *client.Client) []route {
	ch, err := c.Open(conmantest.Context(t), diag.Name, "", api.OpenChannel_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	return []route{
		{"channel 0", func(t *testing.T, cmd *api.Command) *api.Command {
			t.Helper()
			r, err := c.Request0(conmantest.Context(t), cmd)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}},
		{"diag channel", func(t *testing.T, cmd *api.Command) *api.Command {
			t.Helper()
			r, err := ch.Request(conmantest.Context(t), cmd)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}},
	}
}

func pprofReq(req *api.PprofRequest) *api.Command {
	return &api.Command{Body: &api.Command_PprofRequest{PprofRequest: req}}
}

var (
	metricsReq  = func() *api.Command { return &api.Command{Body: &api.Command_Metrics{Metrics: &api.Metrics{}}} }
	startVCRReq = func() *api.Command { return &api.Command{Body: &api.Command_StartVCR{StartVCR: &api.StartVCR{}}} }
	readVCRReq  = func() *api.Command { return &api.Command{Body: &api.Command_ReadVCR{ReadVCR: &api.ReadVCR{}}} }
	toastReq    = func(text string) *api.Command {
		return &api.Command{Body: &api.Command_Toast{Toast: &api.Toast{Text: text}}}
	}
	heapReq = func() *api.Command {
		return pprofReq(&api.PprofRequest{Id: "h", Body: &api.PprofRequest_PprofHeapProfileRequest{PprofHeapProfileRequest: &api.PprofHeapProfileRequest{}}})
	}
)

func noViolations(t *testing.T, clients ...*client.Client) {
	t.Helper()
	for i, c := range clients {
		for _, v := range c.Violations() {
			t.Errorf("client %d: %s: %v", i, v.Problem, v.Command)
		}
	}
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	for _, who := range []struct {
		name   string
		claims auth.Claims
		denied []*api.Command
	}{
		{"plain", conmantest.User, []*api.Command{heapReq(), metricsReq(), startVCRReq(), readVCRReq(), toastReq("hi")}},
		{"debug", debugger, []*api.Command{toastReq("hi")}},
		{"admin", admin, []*api.Command{heapReq(), metricsReq(), startVCRReq(), readVCRReq()}},
	} {
		c := d.DialAs(t, who.claims)
		for _, r := range routes(t, c) {
			for _, cmd := range who.denied {
				name := proto.Clone(cmd).(*api.Command)
				if got := r.request(t, cmd); !client.IsError(got, "permission denied") {
					t.Errorf("%s on %s: %v: got %v, want permission denied", who.name, r.name, name, got)
				}
			}
		}
		noViolations(t, c)
	}
}

// profileStrings checks that data is a gzipped pprof profile and returns
// its string table.
func profileStrings(t *testing.T, data []byte) []string {
	t.Helper()
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		t.Fatalf("profile does not start with the gzip magic: % x", data[:min(len(data), 8)])
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var stringsTable []string
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			t.Fatalf("not a protobuf profile: %v", protowire.ParseError(n))
		}
		raw = raw[n:]
		if num == 6 && typ == protowire.BytesType { // Profile.string_table
			s, n := protowire.ConsumeBytes(raw)
			if n < 0 {
				t.Fatal(protowire.ParseError(n))
			}
			stringsTable = append(stringsTable, string(s))
			raw = raw[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, raw)
		if n < 0 {
			t.Fatalf("not a protobuf profile: %v", protowire.ParseError(n))
		}
		raw = raw[n:]
	}
	if len(stringsTable) == 0 || stringsTable[0] != "" {
		t.Fatalf("string table %q: want it to start with the empty string", stringsTable)
	}
	return stringsTable
}

func TestProfiles(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.DialAs(t, debugger)
	for _, r := range routes(t, c) {
		t.Run(r.name, func(t *testing.T) {
			for _, tc := range []struct {
				name string
				req  *api.PprofRequest
				want string // a sample type in the string table
			}{
				{"heap", &api.PprofRequest{Id: "1", Body: &api.PprofRequest_PprofHeapProfileRequest{PprofHeapProfileRequest: &api.PprofHeapProfileRequest{Gc: true}}}, "inuse_space"},
				{"allocs", &api.PprofRequest{Id: "2", Body: &api.PprofRequest_PprofAllocsProfileRequest{PprofAllocsProfileRequest: &api.PprofAllocsProfileRequest{}}}, "alloc_space"},
				{"block", &api.PprofRequest{Id: "3", Body: &api.PprofRequest_PprofBlockProfileRequest{PprofBlockProfileRequest: &api.PprofBlockProfileRequest{}}}, "contentions"},
				{"mutex", &api.PprofRequest{Id: "4", Body: &api.PprofRequest_PprofMutexProfileRequest{PprofMutexProfileRequest: &api.PprofMutexProfileRequest{}}}, "contentions"},
				{"goroutine", &api.PprofRequest{Id: "5"}, "goroutine"},
			} {
				resp := r.request(t, pprofReq(tc.req)).GetPprofResponse()
				if resp.GetId() != tc.req.Id {
					t.Fatalf("%s: response %v", tc.name, resp)
				}
				if st := profileStrings(t, resp.Profile); !slices.Contains(st, tc.want) {
					t.Fatalf("%s: string table %q lacks %q", tc.name, st, tc.want)
				}
			}
			text := r.request(t, pprofReq(&api.PprofRequest{Id: "t", Body: &api.PprofRequest_PprofHeapProfileRequest{PprofHeapProfileRequest: &api.PprofHeapProfileRequest{Debug: true}}}))
			if p := text.GetPprofResponse().GetProfile(); !bytes.HasPrefix(p, []byte("heap profile: ")) {
				t.Fatalf("debug heap profile starts %q", p[:min(len(p), 40)])
			}
			for _, seconds := range []int64{-1, diag.MaxCPUSeconds + 1} {
				r := r.request(t, pprofReq(&api.PprofRequest{Body: &api.PprofRequest_PprofCpuProfileRequest{PprofCpuProfileRequest: &api.PprofCpuProfileRequest{Seconds: seconds}}}))
				if !client.IsError(r, "pprof: a cpu profile takes 1 to 30 seconds") {
					t.Fatalf("%d seconds: %v", seconds, r)
				}
			}
		})
	}
	noViolations(t, c)
}

// TestCPUProfileOnChannel0 takes a CPU profile on channel 0: the session's
// channel 0 goes on meanwhile (a ping is answered first), and a second
// CPU profile at the same time is refused.
func TestCPUProfileOnChannel0(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	var mu sync.Mutex
	var arrivals []string
	c := conmantest.DialURL(t, d.URL(d.Token(t, debugger)), client.Options{Trace: func(cmd *api.Command) {
		mu.Lock()
		arrivals = append(arrivals, bodyName(cmd))
		mu.Unlock()
	}})
	ctx := conmantest.Context(t)
	ch, err := c.Open(ctx, diag.Name, "", api.OpenChannel_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	cpu := func(id string, seconds int64) *api.Command {
		return pprofReq(&api.PprofRequest{Id: id, Body: &api.PprofRequest_PprofCpuProfileRequest{PprofCpuProfileRequest: &api.PprofCpuProfileRequest{Seconds: seconds}}})
	}
	// Sent without waiting (its reply comes among the unsolicited
	// channel-0 messages): the ping below is written after it.
	first := cpu("first", 2)
	first.Ref = "first-ref"
	if err := c.Send(first); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if slices.Contains(arrivals, "pprofResponse") || slices.Contains(arrivals, "error") {
		t.Errorf("arrivals %q: the profile held up channel 0", arrivals)
	}
	mu.Unlock()
	second, err := ch.Request(ctx, cpu("second", 1))
	if err != nil {
		t.Fatal(err)
	}
	var firstReply *api.Command
	for firstReply == nil {
		m, err := c.Chan0(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Ref == "first-ref" {
			firstReply = m
		}
	}
	var won, refused []*api.Command
	for _, r := range []*api.Command{firstReply, second} {
		switch {
		case r.GetPprofResponse() != nil:
			won = append(won, r)
		case client.IsError(r, "pprof: a cpu profile is already running"):
			refused = append(refused, r)
		default:
			t.Fatalf("got %v", r)
		}
	}
	if len(won) != 1 || len(refused) != 1 {
		t.Fatalf("first %v, second %v: want one profile and one refusal", firstReply, second)
	}
	if st := profileStrings(t, won[0].GetPprofResponse().GetProfile()); !slices.Contains(st, "cpu") {
		t.Fatalf("cpu profile's string table %q", st)
	}
	noViolations(t, c)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.DialAs(t, debugger)
	for _, r := range routes(t, c) {
		m := r.request(t, metricsReq()).GetMetrics()
		if m == nil || len(m.PrometheusMetricFamilies) == 0 {
			t.Fatalf("%s: metrics %v", r.name, m)
		}
		found := map[string]*dto.MetricFamily{}
		for _, b := range m.PrometheusMetricFamilies {
			mf := new(dto.MetricFamily)
			if err := proto.Unmarshal(b, mf); err != nil {
				t.Fatalf("%s: family: %v", r.name, err)
			}
			found[mf.GetName()] = mf
		}
		sessions := found["conman_sessions"]
		if sessions == nil || sessions.GetType() != dto.MetricType_GAUGE || sessions.Metric[0].GetGauge().GetValue() < 1 {
			t.Fatalf("%s: conman_sessions %v", r.name, sessions)
		}
		if found["conman_channels_opened_total"] == nil {
			t.Fatalf("%s: no conman_channels_opened_total among %d families", r.name, len(found))
		}
	}
	noViolations(t, c)
}

func TestVCR(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	c := d.DialAs(t, debugger)
	other := d.DialAs(t, debugger)
	ctx := conmantest.Context(t)
	for _, r := range routes(t, c) {
		if got := r.request(t, readVCRReq()); !client.IsError(got, "readVCR: not recording") {
			t.Fatalf("%s: readVCR before startVCR: %v", r.name, got)
		}
	}
	before := time.Now().UnixMilli()
	r, err := c.Request0(ctx, startVCRReq())
	if err != nil || r.GetOk() == nil {
		t.Fatalf("startVCR: %v %v", r, err)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Ping(ctx); err != nil { // not this session's
		t.Fatal(err)
	}
	// The writer records a frame once it is written, so the last reply
	// may not be in the log yet when the next request is handled: read
	// until both replies are there (each read adds its own frames).
	var in, out []string
	for try := 0; ; try++ {
		r, err = c.Request0(ctx, readVCRReq())
		if err != nil {
			t.Fatal(err)
		}
		in, out = nil, nil
		for _, e := range r.GetVCRLog().GetLog() {
			if e.Timestamp < uint64(before) || e.Timestamp > uint64(time.Now().UnixMilli()) || e.Uid != "3" {
				t.Fatalf("entry %v: timestamp or uid", e)
			}
			if e.Direction == api.VCREntry_IN {
				in = append(in, bodyName(e.Command))
			} else {
				out = append(out, bodyName(e.Command))
			}
		}
		if (slices.Contains(out, "ok") && slices.Contains(out, "pong")) || try == 100 {
			break
		}
	}
	// (A reply written just before startVCR may show up too: it is
	// recorded after its write.)
	okAt, pongAt := slices.Index(out, "ok"), slices.Index(out, "pong")
	if len(in) < 2 || in[0] != "ping" || in[1] != "readVCR" || okAt < 0 || pongAt < okAt {
		t.Fatalf("recorded in %q, out %q; want in: ping, readVCR...; out: ok, pong...", in, out)
	}
	// The other session has no recording.
	if r, err := other.Request0(ctx, readVCRReq()); err != nil || !client.IsError(r, "not recording") {
		t.Fatalf("other session: %v %v", r, err)
	}
	noViolations(t, c, other)
}

func bodyName(cmd *api.Command) string {
	if fd := cmd.ProtoReflect().WhichOneof(cmd.ProtoReflect().Descriptor().Oneofs().ByName("body")); fd != nil {
		return string(fd.Name())
	}
	return "empty"
}

func TestToast(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	op := d.DialAs(t, admin)
	a, b := d.Dial(t), d.DialAs(t, debugger)
	ctx := conmantest.Context(t)
	r, err := op.Request0(ctx, toastReq("the workspace restarts in 5 minutes"))
	if err != nil || r.GetOk() == nil {
		t.Fatalf("toast: %v %v", r, err)
	}
	for i, c := range []*client.Client{a, b, op} {
		m, err := c.Chan0(ctx)
		if err != nil || m.GetToast().GetText() != "the workspace restarts in 5 minutes" {
			t.Fatalf("client %d: %v %v", i, m, err)
		}
	}
	for _, tc := range []struct{ text, want string }{
		{"", "toast: empty text"},
		{strings.Repeat("t", diag.MaxToastBytes+1), "toast: text too long"},
	} {
		if r, err := op.Request0(ctx, toastReq(tc.text)); err != nil || !client.IsError(r, tc.want) {
			t.Fatalf("toast %.20q: %v %v", tc.text, r, err)
		}
	}
	noViolations(t, op, a, b)
}

// TestToastCommand runs `conman toast` against the daemon binary.
func TestToastCommand(t *testing.T) {
	t.Parallel()
	p := conmantest.StartProcess(t, "")
	c := conmantest.DialURL(t, client.URL(p.Addr, p.Token(t, "ada")), client.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), conmantest.Timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, conmantest.Binary(t), "toast", "deploy finished", "--data-dir", p.DataDir, "--addr", p.Addr).CombinedOutput()
	if err != nil {
		t.Fatalf("conman toast: %v\n%s", err, out)
	}
	if got := nextToast(t, c); got != "deploy finished" {
		t.Fatalf("got toast %q", got)
	}
	// Flags first, text last; and the environment.
	cmd := exec.CommandContext(ctx, conmantest.Binary(t), "toast", "--addr", p.Addr, "second")
	cmd.Env = append(cmd.Environ(), "CONMAN_DATA_DIR="+p.DataDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("conman toast: %v\n%s", err, out)
	}
	if got := nextToast(t, c); got != "second" {
		t.Fatalf("got toast %q", got)
	}
	// Without the daemon's keys there is no token.
	out, err = exec.CommandContext(ctx, conmantest.Binary(t), "toast", "x", "--data-dir", t.TempDir(), "--addr", p.Addr).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "conman: toast: workspace id") {
		t.Fatalf("with an empty data dir: %v\n%s", err, out)
	}
	noViolations(t, c)
}

// nextToast skips other channel-0 messages (the binary reports ports) up
// to the next toast.
func nextToast(t *testing.T, c *client.Client) string {
	t.Helper()
	for {
		m, err := c.Chan0(conmantest.Context(t))
		if err != nil {
			t.Fatal(err)
		}
		if m.GetToast() != nil {
			return m.GetToast().GetText()
		}
	}
}

// TestUnsupportedBodies: a body diag does not serve is unsupported, named
// in the answer, for sessions with or without its roles.
func TestUnsupportedBodies(t *testing.T) {
	t.Parallel()
	d := conmantest.Start(t)
	for _, claims := range []auth.Claims{conmantest.User, debugger, {UserName: "viewer", ReadOnly: true}} {
		c := d.DialAs(t, claims)
		ch, err := c.Open(conmantest.Context(t), diag.Name, "", api.OpenChannel_CREATE)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ch.Request(conmantest.Context(t), &api.Command{Body: &api.Command_Read{Read: &api.File{Path: "x"}}})
		if err != nil || !client.IsError(r, "unsupported command read on service diag") {
			t.Errorf("%s: %v %v", claims.UserName, r, err)
		}
		noViolations(t, c)
	}
}
