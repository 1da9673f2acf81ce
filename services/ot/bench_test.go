package ot_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
	"github.com/conman-dev/conman/conman/conmantest"
	"github.com/conman-dev/conman/ot"
)

// latencies collects durations from several goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// report adds p50 and p99 in milliseconds to b's results.
func (l *latencies) report(b *testing.B) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	at := func(q float64) float64 {
		return float64(l.d[min(len(l.d)-1, int(q*float64(len(l.d))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// benchEditors starts a daemon with a 10 KB document and n editors on it,
// and returns the daemon's address. With CONMAN_BENCH_PROCESS=1 the daemon
// is the binary in a process of its own, so that the editors' work (in
// this process) does not share its scheduler and garbage collector.
func benchEditors(b *testing.B, n int) ([]*editor, *latencies, string) {
	const text = "some text to edit, é💃\n"
	var dial dialer
	var addr string
	if os.Getenv("CONMAN_BENCH_PROCESS") == "1" {
		ws := b.TempDir()
		put(b, ws, "bench.txt", strings.Repeat(text, 450))
		p := conmantest.StartProcess(b, ws)
		addr = p.Addr
		tokens := make(map[uint32]string)
		for i := range n {
			u := user(i)
			tokens[u.UserID] = p.Token(b, u.UserName, "--user-id", fmt.Sprint(u.UserID))
		}
		dial = func(t testing.TB, claims auth.Claims) *client.Client {
			return conmantest.DialURL(t, client.URL(addr, tokens[claims.UserID]), client.Options{})
		}
	} else {
		d := startIn(b, "")
		put(b, d.Workspace, "bench.txt", strings.Repeat(text, 450))
		addr, dial = d.Addr(), daemonDialer(d)
	}
	lat := &latencies{}
	eds := make([]*editor, n)
	for i := range eds {
		eds[i] = newEditor(b, dial, fmt.Sprintf("e%d", i), "bench.txt", user(i), uint64(i))
		eds[i].latency = lat.add
	}
	b.Cleanup(func() {
		for _, e := range eds {
			e.close()
		}
	})
	return eds, lat, addr
}

// reportCommits adds the daemon's group commit figures: ops per batch and
// the mean time to write and sync one.
func reportCommits(b *testing.B, addr string) {
	m := conmantest.Metrics(b, addr)
	commits, seconds, ops := m["conman_ot_commit_seconds_count"], m["conman_ot_commit_seconds_sum"], m["conman_ot_ops_total"]
	if commits > 0 {
		b.ReportMetric(ops/commits, "ops/commit")
		b.ReportMetric(seconds/commits*1000, "commit-ms")
	}
	if n := m["conman_ot_ack_seconds_count"]; n > 0 {
		b.ReportMetric(m["conman_ot_ack_seconds_sum"]/n*1000, "server-ack-ms")
	}
	if p99, ok := histogramQuantile(b, addr, "conman_ot_ack_seconds", 0.99); ok {
		b.ReportMetric(p99*1000, "server-ack-p99-ms")
	}
}

// BenchmarkEditors: n editors over websockets, each sending random ops as
// fast as it can with one op in flight (each op waits for its ok). b.N is
// the total of acknowledged ops; reports their rate and ack latency.
func BenchmarkEditors(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("editors=%d", n), func(b *testing.B) {
			eds, lat, addr := benchEditors(b, n)
			b.ResetTimer()
			var wg sync.WaitGroup
			for i, e := range eds {
				quota := b.N / n
				if i < b.N%n {
					quota++
				}
				wg.Go(func() {
					for range quota {
						e.typeOne()
						e.settle()
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "acked-ops/s")
			lat.report(b)
			reportCommits(b, addr)
		})
	}
}

// BenchmarkPaced: n editors typing at an aggregate 1,000 edits a second
// (edits typed while an op is in flight are composed into the next one,
// as the official client does); reports ack latency. b.N is the total of
// edits typed.
func BenchmarkPaced(b *testing.B) {
	const rate = 1000
	for _, n := range []int{10, 50} {
		b.Run(fmt.Sprintf("editors=%d/rate=%d", n, rate), func(b *testing.B) {
			eds, lat, addr := benchEditors(b, n)
			interval := time.Duration(n) * time.Second / rate
			b.ResetTimer()
			var wg sync.WaitGroup
			for i, e := range eds {
				quota := b.N / n
				if i < b.N%n {
					quota++
				}
				wg.Go(func() {
					// Start the editors out of step, as people are.
					time.Sleep(time.Duration(i) * interval / time.Duration(n))
					ticker := time.NewTicker(interval)
					defer ticker.Stop()
					for typed := 0; typed < quota; {
						select {
						case <-ticker.C:
							e.typeOne()
							typed++
						case cmd, ok := <-e.in:
							if !ok {
								e.fatalf("channel ended")
							}
							e.handle(cmd)
						}
					}
					e.settle()
				})
			}
			wg.Wait()
			b.StopTimer()
			sent := 0
			for _, e := range eds {
				sent += e.sent
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "edits/s")
			b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "acked-ops/s")
			lat.report(b)
			reportCommits(b, addr)
		})
	}
}

// trace is an editing trace of josephg/editing-traces.
type trace struct {
	StartContent string `json:"startContent"`
	EndContent   string `json:"endContent"`
	Txns         []struct {
		Patches [][3]json.RawMessage `json:"patches"`
	} `json:"txns"`
}

// loadTrace reads a trace and turns every patch into an op. Positions in
// these traces count code points, as ops do.
func loadTrace(b *testing.B, name string) (start, end string, ops []ot.Op) {
	dir := os.Getenv("CONMAN_EDITING_TRACES")
	if dir == "" {
		dir = "/work/shared/data/editing-traces"
	}
	f, err := os.Open(filepath.Join(dir, name+".json.gz"))
	if err != nil {
		b.Skipf("trace not available (set CONMAN_EDITING_TRACES): %v", err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		b.Fatal(err)
	}
	var tr trace
	if err := json.NewDecoder(z).Decode(&tr); err != nil {
		b.Fatal(err)
	}
	for _, txn := range tr.Txns {
		for _, p := range txn.Patches {
			var pos, del int
			var ins string
			if json.Unmarshal(p[0], &pos) != nil || json.Unmarshal(p[1], &del) != nil || json.Unmarshal(p[2], &ins) != nil {
				b.Fatalf("bad patch %s", p)
			}
			op, err := ot.Normalize(ot.Op{ot.Skip(pos), ot.Delete(del), ot.Insert(ins)})
			if err != nil {
				b.Fatal(err)
			}
			ops = append(ops, op)
		}
	}
	return tr.StartContent, tr.EndContent, ops
}

// BenchmarkTrace replays the automerge-paper trace (259,778 edits) into one
// file through one client, every edit its own version; reports the total
// time. In lockstep the client waits for each ok before the next edit (as
// the official client does when typing is slower than a round trip); in
// pipelined it keeps up to 64 ops in flight, each based on the version its
// predecessor will get (it is the only editor), so group commit batches
// them. CONMAN_TRACE_OPS limits the edits replayed.
func BenchmarkTrace(b *testing.B) {
	start, end, ops := loadTrace(b, "automerge-paper")
	if n := os.Getenv("CONMAN_TRACE_OPS"); n != "" {
		var limit int
		fmt.Sscan(n, &limit)
		if limit > 0 && limit < len(ops) {
			ops, end = ops[:limit], ""
		}
	}
	for _, window := range []int{1, 64} {
		name := "lockstep"
		if window > 1 {
			name = fmt.Sprintf("pipelined=%d", window)
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				replay(b, start, end, ops, window)
			}
		})
	}
}

// replay sends ops into a fresh document, up to window at a time, and
// checks every echo and the final text.
func replay(b *testing.B, start, end string, ops []ot.Op, window int) {
	b.StopTimer()
	d := startIn(b, "")
	put(b, d.Workspace, "trace.txt", start)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	c := d.Dial(b)
	ch := openOT(b, ctx, c, "trace.txt")
	recv(b, ctx, ch)
	res := request(b, ctx, ch, linkCmd("trace.txt")).GetOtLinkFileResponse()
	server, err := ot.NewDoc(start)
	if err != nil {
		b.Fatal(err)
	}
	base := res.GetVersion()
	lat := &latencies{}
	sentAt := make(map[string]time.Time, window)
	b.StartTimer()
	began := time.Now()
	next, acked := 0, 0
	for acked < len(ops) {
		for next < len(ops) && next-acked < window {
			cmd := otCmd(base+uint32(next), ops[next], uint32(next))
			cmd.Ref = fmt.Sprint(next)
			sentAt[cmd.Ref] = time.Now()
			if err := ch.Send(cmd); err != nil {
				b.Fatal(err)
			}
			next++
		}
		msg, err := ch.Recv(ctx)
		if err != nil {
			b.Fatal(err)
		}
		switch body := msg.Body.(type) {
		case *api.Command_Ot:
			p := body.Ot
			want := base + uint32(acked) + 1
			if p.Version != want || p.Nonce != want-base-1 {
				b.Fatalf("echo %d (nonce %d), want %d", p.Version, p.Nonce, want)
			}
			if err := server.Apply(unwire(p.Ops)); err != nil {
				b.Fatal(err)
			}
			if server.CRC32() != p.Crc32 {
				b.Fatalf("version %d: crc mismatch", p.Version)
			}
		case *api.Command_Ok:
			lat.add(time.Since(sentAt[msg.Ref]))
			delete(sentAt, msg.Ref)
			acked++
		default:
			b.Fatalf("unexpected %v", msg)
		}
	}
	elapsed := time.Since(began)
	b.StopTimer()
	if end != "" && server.String() != end {
		b.Fatalf("the replay ends with %d bytes, the trace with %d", server.Size(), len(end))
	}
	mustOK(b, request(b, ctx, ch, flushCmd()))
	if got := onDisk(b, d.Workspace, "trace.txt"); crc32.ChecksumIEEE([]byte(got)) != server.CRC32() {
		b.Fatal("the file differs from the document")
	}
	b.ReportMetric(elapsed.Seconds(), "total-s")
	b.ReportMetric(float64(len(ops))/elapsed.Seconds(), "ops/s")
	lat.report(b)
	c.Close()
	b.StartTimer()
}

// histogramQuantile scrapes addr's /metrics and returns the upper bound of
// the bucket of histogram name that holds quantile q.
func histogramQuantile(b *testing.B, addr, name string, q float64) (float64, bool) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	fam := families[name]
	if fam == nil || len(fam.GetMetric()) == 0 {
		return 0, false
	}
	h := fam.GetMetric()[0].GetHistogram()
	want := q * float64(h.GetSampleCount())
	for _, bucket := range h.GetBucket() {
		if float64(bucket.GetCumulativeCount()) >= want {
			return bucket.GetUpperBound(), true
		}
	}
	return 0, false
}
