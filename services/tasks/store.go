package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/conman-dev/conman/api"
)

// record is what is stored of a task, as DataDir/tasks/<id>.json. Its
// log is DataDir/tasks/<id>.log (see tasklog.go).
type record struct {
	Seq      uint64            `json:"seq"`
	Name     string            `json:"name,omitempty"`
	Args     []string          `json:"args"`
	Env      map[string]string `json:"env,omitempty"`
	User     string            `json:"user,omitempty"`
	Status   string            `json:"status"`
	ExitCode int               `json:"exitCode"`
	Reason   string            `json:"reason,omitempty"`
	// Times in unix milliseconds; 0 when not yet.
	QueuedAt  int64 `json:"queuedAt"`
	StartedAt int64 `json:"startedAt,omitempty"`
	EndedAt   int64 `json:"endedAt,omitempty"`
	// Pid and PidStart (the process's start time in clock ticks since
	// boot) identify the process group of a running task, so that a
	// daemon restarted after a crash can stop what its predecessor left.
	Pid          int    `json:"pid,omitempty"`
	PidStart     uint64 `json:"pidStart,omitempty"`
	LogTruncated bool   `json:"logTruncated,omitempty"`
}

// Statuses as stored.
const (
	statusQueued    = "queued"
	statusRunning   = "running"
	statusSucceeded = "succeeded"
	statusFailed    = "failed"
	statusCanceled  = "canceled"
)

var statusProto = map[string]api.Task_Status{
	statusQueued:    api.Task_QUEUED,
	statusRunning:   api.Task_RUNNING,
	statusSucceeded: api.Task_SUCCEEDED,
	statusFailed:    api.Task_FAILED,
	statusCanceled:  api.Task_CANCELED,
}

func (r *record) id() string { return strconv.FormatUint(r.Seq, 10) }

func (r *record) ended() bool {
	return r.Status != statusQueued && r.Status != statusRunning
}

// proto is the record as sent to clients: without its env, which may hold
// secrets.
func (r *record) proto() *api.Task {
	return &api.Task{
		Id:           r.id(),
		Name:         r.Name,
		Args:         r.Args,
		Status:       statusProto[r.Status],
		ExitCode:     int32(r.ExitCode),
		Reason:       r.Reason,
		QueuedAt:     r.QueuedAt,
		StartedAt:    r.StartedAt,
		EndedAt:      r.EndedAt,
		Pid:          int32(r.Pid),
		User:         r.User,
		LogTruncated: r.LogTruncated,
	}
}

// store keeps task records in a directory.
type store struct {
	dir string
}

func (s store) recordPath(id string) string { return filepath.Join(s.dir, id+".json") }
func (s store) logPath(id string) string    { return filepath.Join(s.dir, id+".log") }

// save writes r atomically: a reader (or a restarted daemon) sees the old
// record or the new one, never a torn one. It does not fsync: the records
// must survive the daemon, not the machine.
func (s store) save(r *record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("tasks: encode task %s: %w", r.id(), err)
	}
	path := s.recordPath(r.id())
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("tasks: save task %s: %w", r.id(), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tasks: save task %s: %w", r.id(), err)
	}
	return nil
}

// remove deletes a task's record and log.
func (s store) remove(id string) error {
	err := os.Remove(s.recordPath(id))
	if lerr := os.Remove(s.logPath(id)); lerr != nil && !errors.Is(lerr, fs.ErrNotExist) {
		err = errors.Join(err, lerr)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("tasks: remove task %s: %w", id, err)
	}
	return nil
}

// load reads every record in the directory. Unreadable ones are returned
// as problems and otherwise ignored.
func (s store) load() (records []*record, problems []error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, []error{fmt.Errorf("tasks: %w", err)}
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			_ = os.Remove(filepath.Join(s.dir, name)) // a save a crash interrupted
			continue
		}
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil {
			problems = append(problems, fmt.Errorf("tasks: %w", err))
			continue
		}
		r := new(record)
		if err := json.Unmarshal(data, r); err != nil || r.id() != id || statusProto[r.Status] == api.Task_UNKNOWN || len(r.Args) == 0 {
			problems = append(problems, fmt.Errorf("tasks: %s: not a task record", name))
			continue
		}
		records = append(records, r)
	}
	return records, problems
}

func millis(t time.Time) int64 { return t.UnixMilli() }
