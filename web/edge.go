// Package web is the daemon's HTTP edge: the websocket endpoint clients
// connect to (upgrade, origin and host checks, token, read limits, pings)
// and, in time, the browser IDE.
//
// It hands every accepted connection to a channels.Hub as a session and
// never looks inside services.
package web

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/conman-dev/conman/channels"
)

// Defaults.
const (
	DefaultReadLimit = 16 << 20
	DefaultWriteWait = 10 * time.Second
	DefaultPongWait  = 60 * time.Second
	closeWait        = time.Second // how long a close handshake may take
)

// VerifyFunc checks a token and returns who it is for. A failure's error
// may implement Reason() string, a short label that is counted.
type VerifyFunc func(token string) (channels.Identity, error)

// Metrics receives the edge's counts.
type Metrics interface {
	AuthFailed(reason string)
	Rejected(reason string) // origin or host check
}

// Options configures an [Edge]. Zero values mean the documented defaults.
type Options struct {
	Hub    *channels.Hub
	Verify VerifyFunc
	// AllowOrigins are the browser origins allowed besides the daemon's own
	// host:port, each exactly scheme://host[:port].
	AllowOrigins []string
	// LoopbackOnly makes every request's Host header name a loopback host
	// (set when the daemon listens on loopback: DNS-rebinding defence).
	LoopbackOnly bool
	// ReadLimit bounds one frame (default 16 MiB).
	ReadLimit int64
	// WriteWait bounds writing one frame (default 10 s).
	WriteWait time.Duration
	// PongWait is how long a peer may stay silent to pings before it is
	// considered dead (default 60 s; with the hub's 25 s pings a dead peer
	// is closed within 75 s).
	PongWait time.Duration
	Logger   *slog.Logger
	Metrics  Metrics
}

// Edge serves /wsv2/{token}.
type Edge struct {
	opts     Options
	log      *slog.Logger
	refusals *refusalLog
	origins  map[string]bool
	upgrader websocket.Upgrader
	bufs     sync.Pool // read buffers, shared by all connections
	conns    sync.WaitGroup
}

type nopMetrics struct{}

func (nopMetrics) AuthFailed(string) {}
func (nopMetrics) Rejected(string)   {}

// NewEdge validates opts and returns the edge.
func NewEdge(opts Options) (*Edge, error) {
	if opts.Hub == nil || opts.Verify == nil {
		return nil, errors.New("web: Options.Hub and Options.Verify are required")
	}
	if opts.ReadLimit <= 0 {
		opts.ReadLimit = DefaultReadLimit
	}
	if opts.WriteWait <= 0 {
		opts.WriteWait = DefaultWriteWait
	}
	if opts.PongWait <= 0 {
		opts.PongWait = DefaultPongWait
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = nopMetrics{}
	}
	e := &Edge{opts: opts, log: opts.Logger, refusals: newRefusalLog(opts.Logger), origins: make(map[string]bool)}
	for _, o := range opts.AllowOrigins {
		norm, err := NormalizeOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("allow-origin %q: %w", o, err)
		}
		e.origins[norm] = true
	}
	e.upgrader = websocket.Upgrader{
		// No read buffer of its own: gorilla then reads through the
		// HTTP server's 4 KiB bufio.Reader, which the hijack hands
		// over, instead of keeping both. Write buffers come from a pool
		// and are held only while a frame is written.
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
		// Origins are checked before the upgrade, in ServeHTTP.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return e, nil
}

// Wait blocks until every connection the edge accepted has ended.
func (e *Edge) Wait() { e.conns.Wait() }

// NormalizeOrigin returns origin as scheme://host:port, lower-case, with the
// scheme's default port made explicit. It rejects anything that is not
// exactly an origin (paths, queries, user info, opaque "null").
func NormalizeOrigin(origin string) (string, error) {
	u, err := url.Parse(origin)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New("scheme must be http or https")
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", errors.New("not an origin (scheme://host[:port])")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return "", errors.New("no host")
	}
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(host), port), nil
}

// hostPort returns the request's Host as host:port, lower-case, with the
// default port of its scheme.
func hostPort(r *http.Request) string {
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = strings.Trim(r.Host, "[]")
		port = "80"
		if r.TLS != nil {
			port = "443"
		}
	}
	return net.JoinHostPort(strings.ToLower(host), port)
}

// originAllowed applies the browser-origin rule: no Origin header (a
// non-browser client) is allowed; the daemon's own host:port is allowed;
// anything else only when it is exactly one of AllowOrigins.
func (e *Edge) originAllowed(r *http.Request) (bool, string) {
	values := r.Header.Values("Origin")
	if len(values) == 0 {
		return true, ""
	}
	if len(values) > 1 {
		return false, "origin_malformed"
	}
	norm, err := NormalizeOrigin(values[0])
	if err != nil {
		return false, "origin_malformed"
	}
	if strings.SplitN(norm, "://", 2)[1] == hostPort(r) {
		return true, ""
	}
	if e.origins[norm] {
		return true, ""
	}
	return false, "origin_not_allowed"
}

// IsLoopbackHost reports whether host (a Host header, port optional) names
// the loopback interface: localhost, *.localhost or a loopback address.
func IsLoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckHost wraps next with the DNS-rebinding defence: when the daemon
// listens on loopback only, a request whose Host header names anything else
// is refused with 403.
func (e *Edge) CheckHost(next http.Handler) http.Handler {
	if !e.opts.LoopbackOnly {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !IsLoopbackHost(r.Host) {
			e.opts.Metrics.Rejected("host_not_loopback")
			e.refusals.Warn("request refused: Host is not a loopback name", "host", truncate(r.Host, 100), "path", redactPath(r.URL.Path))
			http.Error(w, "forbidden: this daemon only answers to a loopback Host", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tokenFromPath extracts the token from /wsv2/<token>[/...]; the token may
// be percent-encoded.
func tokenFromPath(r *http.Request) string {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/wsv2/")
	if !ok {
		return ""
	}
	rest, _, _ = strings.Cut(rest, "/")
	token, err := url.PathUnescape(rest)
	if err != nil {
		return ""
	}
	return token
}

// ServeHTTP upgrades /wsv2/{token} and runs the session until it ends.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ok, reason := e.originAllowed(r); !ok {
		e.opts.Metrics.Rejected(reason)
		e.refusals.Warn("websocket refused", "reason", reason, "origin", truncate(r.Header.Get("Origin"), 200))
		http.Error(w, "forbidden: origin not allowed", http.StatusForbidden)
		return
	}
	ident, authErr := e.opts.Verify(tokenFromPath(r))

	e.conns.Add(1)
	defer e.conns.Done()
	ws, err := e.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered the request
	}
	conn := &wsConn{ws: ws, writeWait: e.opts.WriteWait}
	if authErr != nil {
		reason := "invalid"
		var labeled interface{ Reason() string }
		if errors.As(authErr, &labeled) {
			reason = labeled.Reason()
		}
		e.opts.Metrics.AuthFailed(reason)
		e.refusals.Warn("token refused", "reason", reason, "remote", r.RemoteAddr)
		conn.Close(channels.ClosePolicyViolation, authErr.Error())
		drain(ws)
		ws.Close()
		return
	}
	sess, err := e.opts.Hub.NewSession(conn, ident)
	if err != nil {
		conn.Close(channels.CloseGoingAway, err.Error())
		drain(ws)
		ws.Close()
		return
	}
	// The read loop gets a goroutine of its own and the HTTP handler
	// returns: the server then drops everything it kept for the request
	// (its buffered writer, the request, a deep stack), which would
	// otherwise stay for the life of the connection. The edge owns the
	// goroutine and waits for it in Wait.
	e.conns.Add(1)
	go func() {
		defer e.conns.Done()
		reason := e.readLoop(ws, sess)
		sess.Close(reason)
		ws.Close()
	}()
}

// drain reads until the peer's close frame or the close deadline, so the
// close frame sent before it is not lost to a reset.
func drain(ws *websocket.Conn) {
	for {
		if _, _, err := ws.NextReader(); err != nil {
			return
		}
	}
}

// readLoop feeds frames to the session until the connection fails, and
// says why it ended.
func (e *Edge) readLoop(ws *websocket.Conn, sess *channels.Session) channels.CloseReason {
	ws.SetReadLimit(0) // the limit is enforced below, with a protocolError
	ws.SetReadDeadline(time.Now().Add(e.opts.PongWait))
	ws.SetPongHandler(func(string) error {
		return ws.SetReadDeadline(time.Now().Add(e.opts.PongWait))
	})
	limit := e.opts.ReadLimit
	for {
		kind, r, err := ws.NextReader()
		if err != nil {
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				return channels.ReasonPingTimeout
			}
			return channels.ReasonClientClosed
		}
		if kind != websocket.BinaryMessage {
			io.Copy(io.Discard, io.LimitReader(r, limit))
			sess.Reject(channels.ReasonTextFrame)
			continue
		}
		buf := e.getBuf()
		_, err = buf.ReadFrom(io.LimitReader(r, limit+1))
		switch {
		case err != nil:
			e.putBuf(buf)
			return channels.ReasonClientClosed
		case int64(buf.Len()) > limit:
			e.putBuf(buf)
			reason := channels.ReasonTooBig
			reason.Text = fmt.Sprintf("frame exceeds the read limit of %d bytes", limit)
			sess.Reject(reason)
			continue
		}
		sess.HandleFrame(buf.Bytes())
		e.putBuf(buf)
	}
}

// truncate shortens client-supplied text before it is logged.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
