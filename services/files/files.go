// Package files is the files service, also served as gcsfiles (clients open
// either name; both behave the same): reading, listing, writing, moving and
// removing workspace files, and chunked uploads.
//
// On a files channel:
//
//   - read{path} → file{path, content}; files over the read limit
//     ([workspace.DefaultMaxReadSize]) are refused with "file too large";
//   - readdir{path} → files{files: [{path: entry name, type}]}, sorted by
//     name;
//   - write{path, content} → ok: atomic and durable, missing parent
//     directories are created;
//   - mkdir{path} → ok, parents included; an existing directory is fine;
//   - remove{path} → ok, directories with everything in them; tryRemove
//     is the same but a missing path is no error;
//   - move{oldPath, newPath} → ok; moving onto an existing path is an error
//     ("file exists") unless both name the same file;
//   - stat{path} → statRes{exists, type, size, fileMode, modTime}, with
//     fileMode in Go's fs.FileMode.String() form and modTime in unix
//     seconds; a missing path is statRes{exists: false};
//   - persist{path} → ok once the file is durable;
//   - transferStart{path, size} → transfer{id}; transferChunk{id, content}
//     → ok; transferComplete{id, crc32} → ok once the size and the CRC-32
//     (IEEE) match and the file is in place; transferCancel{id} → ok. At
//     most [DefaultMaxTransfers] uploads run at once on one channel;
//     partial uploads are removed on cancel, on a mismatch and when the
//     channel closes.
//
// Paths, the refusals and the error texts are the workspace package's: an
// error reply is `error "<op> <path>: <reason>"` with the texts of Go's
// *fs.PathError. Read-only sessions are refused every mutation ("permission
// denied") by the channel layer before this service sees it.
//
// The service owns no state beyond its channels' uploads; it never watches
// files (fsevents does) and never imports another service.
package files

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services"
	"github.com/conman-dev/conman/services/workspace"
)

// Wire names.
const (
	Name    = "files"
	GCSName = "gcsfiles"
)

// DefaultMaxTransfers bounds the uploads in progress on one channel.
const DefaultMaxTransfers = 4

func init() {
	for _, name := range []string{Name, GCSName} {
		services.Register(name, func(env services.Env) (channels.Service, error) {
			return New(env, Options{})
		})
	}
}

// Options configures a [Service]. Zero values mean the defaults.
type Options struct {
	// MaxReadSize bounds the file a read returns (default
	// workspace.DefaultMaxReadSize).
	MaxReadSize int64
	// MaxTransfers bounds the uploads in progress on one channel (default
	// DefaultMaxTransfers).
	MaxTransfers int
}

// Service serves one workspace.
type Service struct {
	fs   *workspace.FS
	opts Options
	log  *slog.Logger

	// mu guards the following: the pace of warnings about internal errors.
	mu           sync.Mutex
	lastWarning  time.Time
	suppressed   int
	warningEvery time.Duration
}

var (
	_ channels.Service = (*Service)(nil)
	_ services.Stopper = (*Service)(nil)
)

// New opens env's workspace.
func New(env services.Env, opts Options) (*Service, error) {
	if opts.MaxTransfers <= 0 {
		opts.MaxTransfers = DefaultMaxTransfers
	}
	fsys, err := workspace.Open(workspace.Options{Root: env.Workspace, DataDir: env.DataDir, MaxReadSize: opts.MaxReadSize})
	if err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Service{fs: fsys, opts: opts, log: log, warningEvery: 10 * time.Second}, nil
}

// FS is the workspace the service serves.
func (s *Service) FS() *workspace.FS { return s.fs }

// Open implements channels.Service.
func (s *Service) Open(ch *channels.Channel) (channels.Handler, error) {
	return &instance{svc: s, ch: ch, transfers: make(map[string]*workspace.Upload)}, nil
}

// Stop releases the workspace.
func (s *Service) Stop(context.Context) error { return s.fs.Close() }

// noteError logs what a request's failure says about the daemon. Clients
// cause most errors (missing files, refused paths): those are debug
// output. Internal errors are warnings, at most one per warningEvery.
func (s *Service) noteError(log *slog.Logger, body string, err error) {
	if workspace.Code(err) != workspace.CodeInternal || errors.Is(err, channels.ErrUnsupported) {
		log.Debug("request failed", "body", body, "err", err)
		return
	}
	s.mu.Lock()
	now := time.Now()
	if now.Sub(s.lastWarning) < s.warningEvery {
		s.suppressed++
		s.mu.Unlock()
		return
	}
	suppressed := s.suppressed
	s.lastWarning, s.suppressed = now, 0
	s.mu.Unlock()
	log.Warn("request failed", "body", body, "err", err, "suppressed", suppressed)
}

// instance is one channel. Its fields belong to the channel's goroutine:
// Handle and Close are never called concurrently.
type instance struct {
	svc       *Service
	ch        *channels.Channel
	transfers map[string]*workspace.Upload
}

func ok() *api.Command { return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}} }

func fileType(dir bool) api.File_Type {
	if dir {
		return api.File_DIRECTORY
	}
	return api.File_REGULAR
}

// Handle implements channels.Handler.
func (in *instance) Handle(ctx context.Context, req *channels.Request) (*api.Command, error) {
	reply, err := in.handle(ctx, req)
	if err != nil {
		in.svc.noteError(in.ch.Logger(), channels.BodyName(req.Command), err)
	}
	return reply, err
}

func (in *instance) handle(ctx context.Context, req *channels.Request) (*api.Command, error) {
	fsys := in.svc.fs
	switch body := req.Command.Body.(type) {
	case *api.Command_Read:
		p := body.Read.GetPath()
		content, err := fsys.Read(p)
		if err != nil {
			return nil, err
		}
		if err := waitForRoom(ctx, req.Session, len(content)+len(p)); err != nil {
			return nil, err
		}
		return &api.Command{Body: &api.Command_File{File: &api.File{Path: p, Content: content}}}, nil

	case *api.Command_Readdir:
		entries, err := fsys.List(body.Readdir.GetPath())
		if err != nil {
			return nil, err
		}
		files := make([]*api.File, len(entries))
		for i, e := range entries {
			files[i] = &api.File{Path: e.Name, Type: fileType(e.Dir)}
		}
		return &api.Command{Body: &api.Command_Files{Files: &api.Files{Files: files}}}, nil

	case *api.Command_Write:
		return okOr(fsys.Write(body.Write.GetPath(), body.Write.GetContent()))

	case *api.Command_Mkdir:
		return okOr(fsys.Mkdir(body.Mkdir.GetPath()))

	case *api.Command_Remove:
		return okOr(fsys.Remove(body.Remove.GetPath()))

	case *api.Command_TryRemove:
		return okOr(fsys.TryRemove(body.TryRemove.GetPath()))

	case *api.Command_Move:
		return okOr(fsys.Move(body.Move.GetOldPath(), body.Move.GetNewPath()))

	case *api.Command_Persist:
		return okOr(fsys.Persist(body.Persist.GetPath()))

	case *api.Command_Stat:
		e, exists, err := fsys.Stat(body.Stat.GetPath())
		if err != nil {
			return nil, err
		}
		res := &api.StatResult{Exists: exists}
		if exists {
			res.Type = fileType(e.Dir)
			res.Size = e.Size
			res.FileMode = e.Mode.String()
			res.ModTime = e.ModTime.Unix()
		}
		return &api.Command{Body: &api.Command_StatRes{StatRes: res}}, nil

	case *api.Command_TransferStart:
		return in.transferStart(body.TransferStart)

	case *api.Command_TransferChunk:
		u, err := in.transfer(body.TransferChunk.GetId())
		if err != nil {
			return nil, err
		}
		if err := u.Write(body.TransferChunk.GetContent()); err != nil {
			delete(in.transfers, body.TransferChunk.GetId())
			return nil, err
		}
		return ok(), nil

	case *api.Command_TransferComplete:
		id := body.TransferComplete.GetId()
		u, err := in.transfer(id)
		if err != nil {
			return nil, err
		}
		delete(in.transfers, id)
		return okOr(u.Commit(body.TransferComplete.GetCrc32()))

	case *api.Command_TransferCancel:
		id := body.TransferCancel.GetId()
		if u := in.transfers[id]; u != nil {
			u.Abort()
			delete(in.transfers, id)
		}
		return ok(), nil
	}
	return nil, channels.Unsupported(req.Command)
}

func okOr(err error) (*api.Command, error) {
	if err != nil {
		return nil, err
	}
	return ok(), nil
}

func (in *instance) transferStart(start *api.TransferStart) (*api.Command, error) {
	p := start.GetPath()
	if len(in.transfers) >= in.svc.opts.MaxTransfers {
		return nil, &workspace.Error{Op: "upload", Path: p, Err: workspace.Invalid(
			fmt.Sprintf("too many uploads in progress on this channel (at most %d)", in.svc.opts.MaxTransfers))}
	}
	u, err := in.svc.fs.BeginUpload(p, start.GetSize())
	if err != nil {
		return nil, err
	}
	id := newTransferID()
	in.transfers[id] = u
	return &api.Command{Body: &api.Command_Transfer{Transfer: &api.Transfer{Id: id}}}, nil
}

func (in *instance) transfer(id string) (*workspace.Upload, error) {
	u := in.transfers[id]
	if u == nil {
		return nil, &workspace.Error{Op: "transfer", Path: id, Err: workspace.ErrNoTransfer}
	}
	return u, nil
}

func newTransferID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Close implements channels.Handler: uploads still in progress are
// abandoned and their temporary files removed.
func (in *instance) Close(context.Context) error {
	for id, u := range in.transfers {
		u.Abort()
		delete(in.transfers, id)
	}
	return nil
}

// smallReply is the size under which a reply is sent without looking at
// the session's queue.
const smallReply = 256 << 10

// waitForRoom waits until the session's queue can take a reply of about
// size bytes. The queue accepts a frame over its limit only when it is
// empty, so a big file waits for the queue to drain rather than cutting
// the session off.
func waitForRoom(ctx context.Context, s *channels.Session, size int) error {
	if size < smallReply {
		return nil
	}
	room := s.QueueLimit() - size - 1024
	if room < 0 {
		room = 0
	}
	return s.WaitQueueBelow(ctx, room)
}
