// Package meta is the workspace's metadata store: small named values that
// clients keep beside the workspace (not in it), durable across restarts.
//
// The bodies are served both on channel 0 and on channels of the `meta`
// service (the public record does not say which clients use):
//
//   - readMeta{key} → readMeta{key, exists, data}; a missing key is
//     exists: false, not an error;
//   - writeMeta{key, data} → ok once the value is durable;
//   - appendMeta{key, data} → ok once the value with data appended is
//     durable; an absent key counts as empty.
//
// Keys are 1 to [MaxKeyBytes] bytes of letters, digits, '.', '_', '-' and
// ':', starting with a letter or a digit. A value is at most
// [DefaultMaxValueBytes] (an append that would make it longer is refused),
// and the store holds at most [DefaultMaxKeys] keys. Errors read
// `meta: invalid key "…": …`, `meta: value too large: …`,
// `meta: too many keys: …`.
//
// writeMeta and appendMeta are mutations: read-only sessions are refused
// them with "permission denied", by the channel layer on a `meta` channel
// and by this package on channel 0 (where the channel layer does not look).
//
// On channel 0 a command runs in the session's read loop, as channel-0
// commands do: a write holds up that session's next frames until it is
// durable (an fsync or two), and nobody else's.
//
// Values live in DataDir/meta, one file per key (see [Store]): a crash
// leaves every key with its old or its new value, never a torn one. The
// package owns that directory and nothing else; it never imports another
// service.
package meta

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services"
)

// Name is the wire name of the service.
const Name = "meta"

// Limits.
const (
	DefaultMaxValueBytes = 1 << 20
	DefaultMaxKeys       = 10_000
)

func init() {
	services.Register(Name, func(env services.Env) (channels.Service, error) {
		return New(env)
	})
}

// Service serves the store on channel 0 and on `meta` channels.
type Service struct {
	store *Store
}

var _ channels.Service = (*Service)(nil)

// New opens the store in env.DataDir/meta and registers the channel-0
// bodies with env.Hub (when there is one).
func New(env services.Env) (*Service, error) {
	store, err := OpenStore(filepath.Join(env.DataDir, Name), DefaultMaxValueBytes, DefaultMaxKeys)
	if err != nil {
		return nil, err
	}
	svc := &Service{store: store}
	if env.Hub != nil {
		for _, body := range []string{"readMeta", "writeMeta", "appendMeta"} {
			env.Hub.HandleChannel0(body, svc.handle0)
		}
	}
	return svc, nil
}

// Open starts a meta channel; every channel serves the same store.
func (svc *Service) Open(*channels.Channel) (channels.Handler, error) {
	return handler{svc}, nil
}

type handler struct{ svc *Service }

func (h handler) Handle(_ context.Context, req *channels.Request) (*api.Command, error) {
	return h.svc.serve(req.Command)
}

func (handler) Close(context.Context) error { return nil }

// handle0 serves the bodies on channel 0, where read-only sessions are
// this package's to refuse.
func (svc *Service) handle0(_ context.Context, s *channels.Session, cmd *api.Command) (*api.Command, error) {
	if s.ReadOnly() && channels.IsMutation(cmd) {
		return nil, channels.ErrPermissionDenied
	}
	return svc.serve(cmd)
}

func okReply() *api.Command { return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}} }

// serve runs one command against the store.
func (svc *Service) serve(cmd *api.Command) (*api.Command, error) {
	switch body := cmd.Body.(type) {
	case *api.Command_ReadMeta:
		key := body.ReadMeta.GetKey()
		data, exists, err := svc.store.Read(key)
		if err != nil {
			return nil, fmt.Errorf("meta: %w", err)
		}
		return &api.Command{Body: &api.Command_ReadMeta{ReadMeta: &api.ReadMeta{Key: key, Exists: exists, Data: data}}}, nil
	case *api.Command_WriteMeta:
		if err := svc.store.Write(body.WriteMeta.GetKey(), body.WriteMeta.GetData()); err != nil {
			return nil, fmt.Errorf("meta: %w", err)
		}
		return okReply(), nil
	case *api.Command_AppendMeta:
		if err := svc.store.Append(body.AppendMeta.GetKey(), body.AppendMeta.GetData()); err != nil {
			return nil, fmt.Errorf("meta: %w", err)
		}
		return okReply(), nil
	}
	return nil, channels.Unsupported(cmd)
}
