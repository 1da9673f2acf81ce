package conman

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Defaults.
const (
	DefaultListen        = "127.0.0.1:8283"
	DefaultDataDirName   = ".conman"
	DefaultShutdownGrace = 10 * time.Second
	DefaultUserID        = 1
	DefaultURLTokenTTL   = 24 * time.Hour
	DefaultReadLimit     = 16 << 20
	DefaultWriteQueue    = 8 << 20
	DefaultPingInterval  = 25 * time.Second
	DefaultPongWait      = 60 * time.Second
	DefaultWriteWait     = 10 * time.Second
)

// Config configures a [Daemon]. Zero values mean the defaults above.
type Config struct {
	// Listen is the address to listen on; port 0 picks a free one.
	Listen string
	// Workspace is the directory served (default ".").
	Workspace string
	// DataDir is the daemon's own directory: keys, workspace id, service
	// state (default <Workspace>/.conman). It is never served.
	DataDir string
	// WorkspaceID is the workspace id tokens must carry (default: the one
	// stored in the data dir, created on first start).
	WorkspaceID string
	// AllowOrigins are browser origins allowed besides the daemon's own.
	AllowOrigins []string
	// Pprof serves /debug/pprof/.
	Pprof bool
	// ReadLimit bounds one frame from a client.
	ReadLimit int64
	// WriteQueueBytes bounds what is queued for one client before it is
	// cut off.
	WriteQueueBytes int
	// PingInterval, PongWait and WriteWait tune the websocket keepalive:
	// a peer that answers no ping for PongWait is closed (with the defaults,
	// a dead peer is gone within 75 s).
	PingInterval time.Duration
	PongWait     time.Duration
	WriteWait    time.Duration
	// ShutdownGrace bounds a graceful shutdown.
	ShutdownGrace time.Duration
	// URLUser, URLUserID and URLTokenTTL shape the token in the browser URL
	// logged at start-up (default user: $USER, else "user").
	URLUser     string
	URLUserID   uint32
	URLTokenTTL time.Duration
	// Logger receives the daemon's log (default slog.Default()).
	Logger *slog.Logger
	// Version is reported in build info.
	Version string
	// UI serves the browser IDE at / (and its assets below it); nil serves
	// a one-line status page.
	UI http.Handler
}

func (c *Config) setDefaults() error {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Workspace == "" {
		c.Workspace = "."
	}
	ws, err := filepath.Abs(c.Workspace)
	if err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	if ws, err = filepath.EvalSymlinks(ws); err != nil {
		return fmt.Errorf("workspace: %w", err)
	}
	if fi, err := os.Stat(ws); err != nil {
		return fmt.Errorf("workspace: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("workspace: %s is not a directory", ws)
	}
	c.Workspace = ws
	if c.DataDir == "" {
		c.DataDir = filepath.Join(ws, DefaultDataDirName)
	}
	if c.DataDir, err = filepath.Abs(c.DataDir); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if c.ReadLimit <= 0 {
		c.ReadLimit = DefaultReadLimit
	}
	if c.WriteQueueBytes <= 0 {
		c.WriteQueueBytes = DefaultWriteQueue
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PongWait <= 0 {
		c.PongWait = DefaultPongWait
	}
	if c.WriteWait <= 0 {
		c.WriteWait = DefaultWriteWait
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.URLUser == "" {
		c.URLUser = os.Getenv("USER")
	}
	if c.URLUser == "" {
		c.URLUser = "user"
	}
	if c.URLUserID == 0 {
		c.URLUserID = DefaultUserID
	}
	if c.URLTokenTTL <= 0 {
		c.URLTokenTTL = DefaultURLTokenTTL
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	return nil
}

// KeysDir is where the data dir keeps its keys.
func KeysDir(dataDir string) string { return filepath.Join(dataDir, "keys") }

// workspaceIDFile holds the workspace id inside the data dir.
const workspaceIDFile = "workspace-id"

// LoadWorkspaceID reads the workspace id stored in dataDir. With create, a
// missing id is generated and stored.
func LoadWorkspaceID(dataDir string, create bool) (string, error) {
	path := filepath.Join(dataDir, workspaceIDFile)
	raw, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(raw))
		if id == "" {
			return "", fmt.Errorf("workspace id: %s is empty", path)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) || !create {
		return "", fmt.Errorf("workspace id: %w", err)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("workspace id: %w", err)
	}
	id := hex.EncodeToString(b[:])
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("workspace id: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("workspace id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("workspace id: %w", err)
	}
	return id, nil
}
