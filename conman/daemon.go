// Package conman is the daemon: it wires the session hub, the services, the
// websocket edge, tokens and metrics into one HTTP server, and shuts them
// down in order.
//
// It owns the daemon's data dir (keys, the workspace id, service state) and
// the process-wide lifecycle; it never imports the browser IDE's assets, and
// it never looks inside a service.
//
// # Lifecycle
//
// [New] prepares everything (keys, services, hub); [Daemon.Start] listens
// and serves in the background; [Daemon.Shutdown] stops accepting, lets
// every service flush (bounded by its context), closes every websocket with
// 1001 and stops the services. [Daemon.Run] is Start, wait, Shutdown.
package conman

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/services"
	"github.com/conman-dev/conman/web"
)

// Daemon is one running conman.
type Daemon struct {
	cfg         Config
	log         *slog.Logger
	metrics     *metrics
	verifier    *auth.Verifier
	signer      *auth.Signer // nil when the data dir holds public keys only
	workspaceID string
	hub         *channels.Hub
	edge        *web.Edge
	stoppers    []services.Stopper
	srv         *http.Server
	ln          net.Listener
	serveDone   chan struct{}
	ready       atomic.Bool
	stopped     atomic.Bool
}

// New prepares a daemon: it resolves the workspace and data dir, creates a
// key pair and a workspace id on first start, and builds every registered
// service. Nothing listens until Start.
func New(cfg Config) (*Daemon, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, metrics: newMetrics(cfg.Version)}

	keys := KeysDir(cfg.DataDir)
	if !auth.HasKeys(keys) {
		kid, err := auth.GenerateKey(keys)
		if err != nil {
			return nil, err
		}
		d.log.Info("created a key pair", "dir", keys, "key_id", kid)
	}
	id := cfg.WorkspaceID
	if id == "" {
		var err error
		if id, err = LoadWorkspaceID(cfg.DataDir, true); err != nil {
			return nil, err
		}
	}
	d.workspaceID = id
	verifier, err := auth.NewVerifier(auth.VerifierOptions{KeysDir: keys, WorkspaceID: id})
	if err != nil {
		return nil, err
	}
	d.verifier = verifier
	if signer, err := auth.LoadSigner(keys, ""); err == nil {
		d.signer = signer
	}

	reg := channels.NewRegistry()
	d.hub = channels.NewHub(channels.Options{
		Registry:        reg,
		Logger:          d.log,
		Metrics:         d.metrics,
		WriteQueueBytes: cfg.WriteQueueBytes,
		PingInterval:    cfg.PingInterval,
	})
	stoppers, err := services.Build(services.Env{
		Workspace: cfg.Workspace,
		DataDir:   cfg.DataDir,
		Logger:    d.log,
		Hub:       d.hub,
		Metrics:   d.metrics.reg,
	}, reg)
	if err != nil {
		return nil, err
	}
	d.stoppers = stoppers
	d.log.Debug("services built", "names", reg.Names())

	d.edge, err = web.NewEdge(web.Options{
		Hub:          d.hub,
		Verify:       d.verify,
		AllowOrigins: cfg.AllowOrigins,
		LoopbackOnly: listensOnLoopback(cfg.Listen),
		ReadLimit:    cfg.ReadLimit,
		WriteWait:    cfg.WriteWait,
		PongWait:     cfg.PongWait,
		Logger:       d.log,
		Metrics:      d.metrics,
	})
	if err != nil {
		d.stopServices(context.Background())
		return nil, err
	}
	d.srv = &http.Server{
		Handler:           d.edge.CheckHost(d.routes()),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	return d, nil
}

// listensOnLoopback reports whether addr binds a loopback address only.
func listensOnLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	return web.IsLoopbackHost(host)
}

// verify checks a token and turns its claims into a session identity.
func (d *Daemon) verify(token string) (channels.Identity, error) {
	c, err := d.verifier.Verify(token)
	if err != nil {
		return channels.Identity{}, err
	}
	return channels.Identity{
		UserID:      c.UserID,
		UserName:    c.UserName,
		ReadOnly:    c.ReadOnly,
		Roles:       c.Roles,
		WorkspaceID: c.WorkspaceID,
		TokenID:     c.TokenID,
	}, nil
}

func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/wsv2/", d.edge)
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{Registry: d.metrics.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !d.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready")
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if d.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	if d.cfg.UI != nil {
		// "/" and not "GET /": a method pattern with the catch-all path
		// conflicts with "/wsv2/" (ServeMux panics). The UI answers
		// methods other than GET and HEAD itself.
		mux.Handle("/", d.cfg.UI)
	} else {
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "conman %s: connect a client at ws://%s/wsv2/<token>\n", d.cfg.Version, r.Host)
		})
	}
	return mux
}

// Start listens on the configured address and serves in the background.
func (d *Daemon) Start() error {
	ln, err := net.Listen("tcp", d.cfg.Listen)
	if err != nil {
		d.stopServices(context.Background())
		return fmt.Errorf("listen: %w", err)
	}
	d.ln = ln
	d.serveDone = make(chan struct{})
	go func() {
		defer close(d.serveDone)
		if err := d.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("http server", "err", err)
		}
	}()
	d.ready.Store(true)
	attrs := []any{"listen", d.Addr(), "workspace", d.cfg.Workspace}
	if u, err := d.BrowserURL(); err == nil {
		attrs = append(attrs, "url", u)
	} else {
		attrs = append(attrs, "url", "none: "+err.Error())
	}
	d.log.Info("conman ready", attrs...)
	return nil
}

// Addr is the address the daemon listens on (the real port when the
// configured one was 0).
func (d *Daemon) Addr() string {
	if d.ln == nil {
		return d.cfg.Listen
	}
	return d.ln.Addr().String()
}

// WorkspaceID is the workspace id tokens must carry.
func (d *Daemon) WorkspaceID() string { return d.workspaceID }

// Config is the daemon's configuration, defaults filled in.
func (d *Daemon) Config() Config { return d.cfg }

// Hub is the daemon's session hub.
func (d *Daemon) Hub() *channels.Hub { return d.hub }

// MintToken signs a token with the data dir's newest secret key; the
// workspace id defaults to the daemon's.
func (d *Daemon) MintToken(c auth.Claims) (string, error) {
	if d.signer == nil {
		return "", errors.New("no signing key in the data dir (tokens come from the platform)")
	}
	if c.WorkspaceID == "" {
		c.WorkspaceID = d.workspaceID
	}
	return d.signer.Mint(c)
}

// BrowserURL is the address a person opens: the daemon's page with a fresh
// token in the fragment (never sent to a server, never in a Referer).
func (d *Daemon) BrowserURL() (string, error) {
	tok, err := d.MintToken(auth.Claims{
		UserID:   d.cfg.URLUserID,
		UserName: d.cfg.URLUser,
		Expires:  time.Now().Add(d.cfg.URLTokenTTL),
	})
	if err != nil {
		return "", err
	}
	host := d.Addr()
	if h, port, err := net.SplitHostPort(host); err == nil && (h == "" || h == "0.0.0.0" || h == "::") {
		host = net.JoinHostPort("127.0.0.1", port)
	}
	return "http://" + host + "/#token=" + url.QueryEscape(tok), nil
}

// ShutdownToast is shown to every session when the daemon shuts down.
const ShutdownToast = "The workspace daemon is shutting down; reconnecting when it is back."

// Shutdown stops the daemon: it stops accepting connections, ends every
// channel (services flush within ctx), closes every websocket with 1001,
// then stops the services. When ctx expires first, what is left is cut off.
func (d *Daemon) Shutdown(ctx context.Context) error {
	if !d.stopped.CompareAndSwap(false, true) {
		return nil
	}
	d.ready.Store(false)
	d.log.Info("shutting down")
	var errs []error
	if d.ln != nil {
		// Hijacked websockets are not the server's any more; the hub
		// closes them below.
		if err := d.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			d.srv.Close()
		}
		<-d.serveDone
	}
	// Sessions are told before they are closed: the hub writes what is
	// queued for them before the close frame.
	d.hub.Toast(ShutdownToast)
	if err := d.hub.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("hub shutdown: %w", err))
	}
	d.edge.Wait()
	if err := d.stopServices(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (d *Daemon) stopServices(ctx context.Context) error {
	var errs []error
	for _, s := range d.stoppers {
		if err := s.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop service: %w", err))
		}
	}
	d.stoppers = nil
	return errors.Join(errs...)
}

// Run starts the daemon, serves until ctx ends, then shuts down within the
// configured grace.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownGrace)
	defer cancel()
	if err := d.Shutdown(sctx); err != nil {
		d.log.Warn("shutdown was not clean", "err", err)
	}
	d.log.Info("stopped")
	return nil
}
