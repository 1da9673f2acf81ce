// Package proxy is the socket proxy service: a channel becomes a TCP
// stream to a port inside the container.
//
// On a `proxy` channel (usually anonymous: one channel, one stream):
//
//   - connect{proto: "tcp" (or "tcp4", "tcp6", empty), addr: "host:port"}
//     → ok once connected, or an error;
//   - from then on the bytes the server sends arrive as recv{buff} messages
//     (no ref), and send{buff} writes buff to the server (ok when it had a
//     ref);
//   - disconnect{} (from the client) closes the connection, answers ok and
//     ends the channel;
//   - when the server closes the connection (or it fails) the client gets
//     disconnect{error} (empty error for a clean close) and the channel
//     ends; when the channel ends (closeChan, or the client goes away) the
//     connection is closed.
//
// One connect per channel; the stream belongs to the session that
// connected (others on a named channel are refused "permission denied").
//
// Where a connect may go: loopback addresses only, unless addr (as
// host:port) is in the allow-list, [AllowEnv]
// (CONMAN_PROXY_ALLOW=host:port,...). Names are resolved first and every
// address they resolve to must pass; the daemon then dials those addresses,
// never the name again (so a name cannot change its answer between the
// check and the dial). Unspecified addresses (0.0.0.0, ::) are always
// refused. Refusals read `proxy: refusing <addr>: <ip> is not a loopback
// address (...)`.
//
// connect, send and disconnect count as mutations, so read-only sessions
// are refused them ("permission denied") by the channel layer; any other
// body is "unsupported command <body> on service proxy".
//
// # Backpressure
//
// Bytes from the server go to the session no faster than it reads them:
// the reader waits with [channels.Session.WaitQueueBelow] before each
// recv. Bytes to the server are written in the channel's goroutine; while
// the server does not read, the channel's inbox fills and the session's
// read loop waits, which stops the client.
//
// # Goroutines
//
// A connection has two goroutines, a reader and a watcher that closes the
// connection when the channel ends (which unblocks a write in progress);
// the instance's Close waits for both. The package never imports another
// service.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services"
)

// Name is the service's wire name.
const Name = "proxy"

// Defaults.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultReadBuffer  = 32 << 10
)

// Options configures the service. Zero values mean the defaults.
type Options struct {
	// Allow lists host:port pairs that may be reached although they are
	// not loopback addresses (default: the AllowEnv variable, split at
	// commas).
	Allow []string
	// Resolver looks names up (default net.DefaultResolver).
	Resolver Resolver
	// DialTimeout bounds resolving and connecting (default
	// DefaultDialTimeout).
	DialTimeout time.Duration
	// ReadBuffer is the most bytes one recv carries (default
	// DefaultReadBuffer).
	ReadBuffer int
}

var configured struct {
	mu   sync.Mutex
	opts Options
}

// Configure sets the options of the services built from now on.
func Configure(opts Options) {
	configured.mu.Lock()
	defer configured.mu.Unlock()
	configured.opts = opts
}

func init() {
	services.Register(Name, func(env services.Env) (channels.Service, error) {
		configured.mu.Lock()
		opts := configured.opts
		configured.mu.Unlock()
		return New(opts)
	})
}

// Service is the socket proxy.
type Service struct {
	opts   Options
	policy policy
}

// New builds the service; a malformed allow-list is an error.
func New(opts Options) (*Service, error) {
	if opts.Allow == nil {
		if env := os.Getenv(AllowEnv); env != "" {
			opts.Allow = strings.Split(env, ",")
		}
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.ReadBuffer <= 0 {
		opts.ReadBuffer = DefaultReadBuffer
	}
	allow, err := parseAllow(opts.Allow)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", AllowEnv, err)
	}
	return &Service{opts: opts, policy: policy{allow: allow, resolver: opts.Resolver}}, nil
}

var (
	_ channels.Service        = (*Service)(nil)
	_ channels.MutationPolicy = (*instance)(nil)
)

// Open starts a proxy channel, not yet connected.
func (svc *Service) Open(ch *channels.Channel) (channels.Handler, error) {
	return &instance{svc: svc, ch: ch, stop: make(chan struct{})}, nil
}

type state int

const (
	idle state = iota
	connected
	ended
)

// instance is one proxy channel.
type instance struct {
	svc  *Service
	ch   *channels.Channel
	wg   sync.WaitGroup // the reader and the watcher
	stop chan struct{}  // closed by end

	// mu guards the following.
	mu    sync.Mutex
	state state
	conn  net.Conn
	owner *channels.Session
}

// Mutates reports the service's own commands (and the channel layer's
// mutations): a read-only session may not open connections or write to
// them. Other bodies are answered "unsupported command", whoever sends them.
func (*instance) Mutates(cmd *api.Command) bool {
	switch cmd.GetBody().(type) {
	case *api.Command_Connect, *api.Command_Send, *api.Command_Disconnect:
		return true
	}
	return channels.IsMutation(cmd)
}

var (
	errNotConnected = errors.New("proxy: not connected (send connect first)")
	errEnded        = errors.New("proxy: the connection has ended")
)

func okReply() *api.Command { return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}} }

// Handle serves connect, send and disconnect.
func (in *instance) Handle(ctx context.Context, req *channels.Request) (*api.Command, error) {
	switch body := req.Command.Body.(type) {
	case *api.Command_Connect:
		return in.connect(ctx, req, body.Connect)
	case *api.Command_Send:
		conn, err := in.connFor(req.Session)
		if err != nil {
			return nil, err
		}
		if _, err := conn.Write(body.Send.GetBuff()); err != nil {
			if in.end(describe(err), true) {
				return nil, fmt.Errorf("proxy: send: %w", cause(err))
			}
			return nil, errEnded
		}
	case *api.Command_Disconnect:
		if _, err := in.connFor(req.Session); err != nil {
			return nil, err
		}
		if req.Command.Ref != "" {
			req.Reply(okReply())
		}
		in.end("", false)
		return nil, nil
	default:
		return nil, channels.Unsupported(req.Command)
	}
	if req.Command.Ref == "" {
		return nil, nil
	}
	return okReply(), nil
}

// connFor returns the connection if s may use it.
func (in *instance) connFor(s *channels.Session) (net.Conn, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	switch {
	case in.state == idle:
		return nil, errNotConnected
	case in.state == ended:
		return nil, errEnded
	case in.owner != s:
		return nil, channels.ErrPermissionDenied
	}
	return in.conn, nil
}

func (in *instance) connect(ctx context.Context, req *channels.Request, c *api.Connect) (*api.Command, error) {
	in.mu.Lock()
	st := in.state
	in.mu.Unlock()
	switch st {
	case connected:
		return nil, errors.New("proxy: already connected")
	case ended:
		return nil, errEnded
	}
	ctx, cancel := context.WithTimeout(ctx, in.svc.opts.DialTimeout)
	defer cancel()
	addrs, err := in.svc.policy.resolve(ctx, c.GetProto(), c.GetAddr())
	if err != nil {
		return nil, err
	}
	var dialer net.Dialer
	var conn net.Conn
	for _, ap := range addrs {
		conn, err = dialer.DialContext(ctx, "tcp", ap.String())
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("proxy: connect %s: %w", c.GetAddr(), cause(err))
	}
	in.mu.Lock()
	in.state, in.conn, in.owner = connected, conn, req.Session
	in.mu.Unlock()
	// The ok goes out before the first recv.
	req.Reply(okReply())
	in.wg.Add(2)
	go in.watch(conn)
	go in.read(conn, req.Session)
	return nil, nil
}

// watch closes conn when the channel ends or the stream does.
func (in *instance) watch(conn net.Conn) {
	defer in.wg.Done()
	select {
	case <-in.ch.Context().Done():
	case <-in.stop:
	}
	conn.Close()
}

// read copies the server's bytes to owner at its pace.
func (in *instance) read(conn net.Conn, owner *channels.Session) {
	defer in.wg.Done()
	ctx := in.ch.Context()
	highWater := owner.QueueLimit() / 2
	buf := make([]byte, in.svc.opts.ReadBuffer)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			if werr := owner.WaitQueueBelow(ctx, highWater); werr != nil {
				in.end("", false) // the session or the channel is gone
				return
			}
			in.ch.SendTo(owner, &api.Command{Body: &api.Command_Recv{Recv: &api.Recv{Buff: append([]byte(nil), buf[:n]...)}}})
		}
		if err != nil {
			text := ""
			if !errors.Is(err, io.EOF) {
				text = describe(err)
			}
			in.end(text, true)
			return
		}
	}
}

// end closes the stream once: the connection closes, the owner is told
// with disconnect{text} when notify, and the channel ends. It reports
// whether this call ended it.
func (in *instance) end(text string, notify bool) bool {
	in.mu.Lock()
	if in.state == ended {
		in.mu.Unlock()
		return false
	}
	in.state = ended
	conn, owner := in.conn, in.owner
	in.mu.Unlock()
	close(in.stop)
	if conn != nil {
		conn.Close()
	}
	if notify && owner != nil {
		in.ch.SendTo(owner, &api.Command{Body: &api.Command_Disconnect{Disconnect: &api.Disconnect{Error: text}}})
	}
	in.ch.Close()
	return true
}

// Close ends the stream, if any, and waits for its goroutines.
func (in *instance) Close(context.Context) error {
	in.end("", false)
	in.wg.Wait()
	return nil
}

// cause drops the addresses a net error repeats (the client knows them).
func cause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err
	}
	return err
}

// describe is the text of a connection error for disconnect{error}.
func describe(err error) string {
	if errors.Is(err, net.ErrClosed) {
		return "connection closed"
	}
	return cause(err).Error()
}
