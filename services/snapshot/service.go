// Package snapshot is the snapshot service and the store behind it:
// incremental, deduplicated, verifiable snapshots of the workspace, and
// restores from them.
//
// # The service
//
// On a `snapshot` channel:
//   - fsSnapshot → ok once a snapshot of the workspace that began after the
//     request arrived is stored. Concurrent requests, from any channel,
//     share one snapshot.
//   - snapshotList → snapshotListRes with the stored snapshots, newest
//     first.
//   - snapshotRestore{id, to} → ok once the snapshot is restored: into the
//     workspace in place when to is empty or "/", else into the
//     workspace directory to, which must be empty or absent. A snapshot
//     that fails verification is answered with an error naming the damage,
//     and nothing is written.
//
// fsSnapshot and snapshotRestore are refused to read-only sessions.
//
// # The store
//
// The store lives in <data dir>/snapshots: a bare git repository
// (repo.git; `git --git-dir=<data dir>/snapshots/repo.git log` shows the
// snapshots), an index and a lock file. Each snapshot is one commit on
// refs/heads/main whose tree is the workspace: files as blobs with mode
// 100644 or 100755, symlinks as symlinks, and directories as trees, empty
// ones included (as the empty tree), so a restore brings back the exact
// directory structure. Git keeps no more of a mode than the executable
// bit, so the commit's message records the exact permission bits (setuid,
// setgid and sticky included) of the files and directories whose bits are
// not the snapshot's usual ones (see modes.go): a few lines in most
// workspaces, whatever their umask. Special files (sockets, FIFOs,
// devices) are not stored. Git deduplicates: an unchanged file or
// directory costs nothing.
// New objects are written loose, or as one pack when a snapshot has many
// (a first snapshot), and are fsynced together before the branch moves.
//
// A commit's message also records the number of files, their bytes and a
// SHA-256 checksum over a canonical listing of the snapshot, exact modes
// included (its format is described in listing.go), so damage to the
// store is detected independently of git's own hashing. A restore first
// verifies the checksum and re-hashes every object it needs; a damaged
// snapshot is reported and nothing is written. A restore in place first
// snapshots the workspace, so it can be undone; it removes what the
// snapshot lacks, except the data dir, and writes each file to a
// temporary name given the file's exact mode and renamed into place.
// Directories get their exact modes once their contents are written. The
// workspace directory's own mode is neither recorded nor restored.
//
// Snapshots stay cheap because of the index: a file whose stat data (size,
// mtime, ctime, inode, mode) match the index is not read again, and a
// directory whose entries are unchanged keeps its tree. A file modified
// while it is read is read again; one whose timestamps are too recent to
// trust is re-read by the next snapshot too. A chmod that git cannot see
// makes a new snapshot all the same, which costs a commit and no more.
//
// The lock file serialises snapshots and restores between the daemon and
// the `conman snapshot` command, which works with or without a daemon
// running.
//
// The package owns <data dir>/snapshots and nothing else of the data dir:
// it never reads, snapshots or modifies the rest of it, and it imports no
// other service.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/services"
)

// Name is the service's wire name.
const Name = "snapshot"

func init() {
	services.Register(Name, func(env services.Env) (channels.Service, error) {
		return New(env)
	})
}

// Service is the snapshot service of one daemon.
type Service struct {
	store    *Store
	storeErr error // why there is no store, if there is none
	log      *slog.Logger
	ctx      context.Context // ends at Stop; bounds the snapshots run for clients
	cancel   context.CancelFunc
	flight   coalescer
	metrics  *metrics

	// mu guards lastErr, the text of the last failed snapshot, so a
	// failure repeated by every request is logged once.
	mu      sync.Mutex
	lastErr string
}

// New builds the service for env. It touches nothing on disk until the
// first request.
func New(env services.Env) (*Service, error) {
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("service", Name)
	m, err := newMetrics(env.Metrics)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc := &Service{log: log, ctx: ctx, cancel: cancel, metrics: m}
	// A daemon without a usable store still serves everything else; the
	// snapshot requests are answered with the reason.
	svc.store, svc.storeErr = Open(Options{Workspace: env.Workspace, DataDir: env.DataDir, Logger: log})
	if svc.storeErr != nil {
		log.Warn("snapshots unavailable", "err", svc.storeErr)
	}
	return svc, nil
}

// Store is the service's store; nil when it could not be opened.
func (s *Service) Store() *Store { return s.store }

// Open implements channels.Service.
func (s *Service) Open(ch *channels.Channel) (channels.Handler, error) {
	return &handler{svc: s}, nil
}

// Stop implements services.Stopper.
func (s *Service) Stop(context.Context) error {
	s.cancel()
	if s.store == nil {
		return nil
	}
	return s.store.Close()
}

var _ services.Stopper = (*Service)(nil)

// Snapshot takes a snapshot for a client: it returns once a snapshot that
// began after the call is stored, sharing it with concurrent callers.
func (s *Service) Snapshot(ctx context.Context) error {
	return s.flight.do(ctx, func() error {
		start := time.Now()
		res, err := s.store.Snapshot(s.ctx)
		s.metrics.snapshot(res, err, time.Since(start))
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			if text := err.Error(); text != s.lastErr {
				s.lastErr = text
				s.log.Warn("snapshot failed", "err", err)
			}
			return err
		}
		s.lastErr = ""
		return nil
	})
}

type handler struct{ svc *Service }

var _ channels.MutationPolicy = (*handler)(nil)

// Mutates refuses snapshots and restores to read-only sessions; listing is
// reading.
func (*handler) Mutates(cmd *api.Command) bool {
	switch cmd.Body.(type) {
	case *api.Command_FsSnapshot, *api.Command_SnapshotRestore:
		return true
	case *api.Command_SnapshotList:
		return false
	}
	return channels.IsMutation(cmd)
}

func (h *handler) Handle(ctx context.Context, req *channels.Request) (*api.Command, error) {
	switch req.Command.Body.(type) {
	case *api.Command_FsSnapshot, *api.Command_SnapshotList, *api.Command_SnapshotRestore:
		if h.svc.store == nil {
			return nil, fmt.Errorf("snapshots unavailable: %w", h.svc.storeErr)
		}
	}
	switch body := req.Command.Body.(type) {
	case *api.Command_FsSnapshot:
		if err := h.svc.Snapshot(ctx); err != nil {
			return nil, err
		}
		return okReply(), nil
	case *api.Command_SnapshotList:
		infos, err := h.svc.store.List(ctx)
		if err != nil {
			return nil, err
		}
		res := &api.SnapshotListRes{Snapshots: make([]*api.SnapshotInfo, 0, len(infos))}
		for _, in := range infos {
			res.Snapshots = append(res.Snapshots, &api.SnapshotInfo{
				Id: in.ID, Time: in.Time.UnixMilli(), Files: in.Files, Bytes: in.Bytes,
				Checksum: in.Checksum, Note: in.Note,
			})
		}
		return &api.Command{Body: &api.Command_SnapshotListRes{SnapshotListRes: res}}, nil
	case *api.Command_SnapshotRestore:
		if body.SnapshotRestore.GetId() == "" {
			return nil, errors.New("restore: no snapshot id")
		}
		_, err := h.svc.store.RestoreWithin(ctx, body.SnapshotRestore.GetId(), body.SnapshotRestore.GetTo())
		h.svc.metrics.restore(err)
		if err != nil {
			return nil, err
		}
		return okReply(), nil
	}
	return nil, channels.Unsupported(req.Command)
}

func (*handler) Close(context.Context) error { return nil }

func okReply() *api.Command { return &api.Command{Body: &api.Command_Ok{Ok: &api.OK{}}} }

// metrics instruments the service; a nil *metrics records nothing.
type metrics struct {
	snapshots *prometheus.CounterVec
	seconds   prometheus.Histogram
	read      prometheus.Counter
	restores  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conman_snapshots_total", Help: "Snapshots taken for clients, by result (stored, unchanged, failed).",
		}, []string{"result"}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "conman_snapshot_duration_seconds", Help: "How long a snapshot took.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		read: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conman_snapshot_files_read_total", Help: "Files and symlinks read by snapshots because their stat data changed.",
		}),
		restores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conman_snapshot_restores_total", Help: "Restores requested by clients, by result (ok, failed).",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.snapshots, m.seconds, m.read, m.restores} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("snapshot metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) snapshot(res Result, err error, took time.Duration) {
	if m == nil {
		return
	}
	result := "stored"
	switch {
	case err != nil:
		result = "failed"
	case res.Unchanged:
		result = "unchanged"
	}
	m.snapshots.WithLabelValues(result).Inc()
	m.seconds.Observe(took.Seconds())
	m.read.Add(float64(res.Hashed))
}

func (m *metrics) restore(err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "failed"
	}
	m.restores.WithLabelValues(result).Inc()
}
