// Command conman is the per-container daemon browser IDEs talk to.
//
//	conman [serve] [--listen ADDR] [--workspace DIR] [--data-dir DIR] [--allow-origin URL]... [--pprof]
//	conman keygen --data-dir DIR
//	conman token --data-dir DIR --user NAME [--user-id N] [--ro] [--ttl DURATION] [--workspace-id ID]
//	conman toast TEXT [--data-dir DIR] [--addr HOST:PORT]
//
// Every flag can also be set through the environment as CONMAN_<FLAG>, with
// dashes as underscores (CONMAN_LISTEN, CONMAN_ALLOW_ORIGIN); a flag on the
// command line wins. Repeatable flags take a comma-separated list there.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/conman-dev/conman/conman"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/web/ui"

	// The services the daemon serves.
	_ "github.com/conman-dev/conman/services/chat"
	_ "github.com/conman-dev/conman/services/contained"
	_ "github.com/conman-dev/conman/services/debug"
	_ "github.com/conman-dev/conman/services/diag"
	_ "github.com/conman-dev/conman/services/exec"
	_ "github.com/conman-dev/conman/services/files"
	_ "github.com/conman-dev/conman/services/fsevents"
	"github.com/conman-dev/conman/services/logs"
	_ "github.com/conman-dev/conman/services/meta"
	_ "github.com/conman-dev/conman/services/ot"
	_ "github.com/conman-dev/conman/services/packager"
	_ "github.com/conman-dev/conman/services/pid1"
	_ "github.com/conman-dev/conman/services/ports"
	_ "github.com/conman-dev/conman/services/presence"
	_ "github.com/conman-dev/conman/services/proxy"
	_ "github.com/conman-dev/conman/services/run"
	"github.com/conman-dev/conman/services/shell"
	_ "github.com/conman-dev/conman/services/sink"
	_ "github.com/conman-dev/conman/services/snapshot"
	_ "github.com/conman-dev/conman/services/supervise"
	"github.com/conman-dev/conman/services/tasks"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  conman [serve] [flags]   run the daemon (conman serve -h for flags)
  conman keygen [flags]    write a new key pair into the data dir
  conman token [flags]     mint an access token and print it
  conman snapshot CMD      list, create, verify or restore workspace snapshots
  conman toast TEXT        show TEXT to every session of the running daemon
`

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args, stderr)
	case "keygen":
		err = keygen(args, stdout, stderr)
	case "token":
		err = token(args, stdout, stderr)
	case "snapshot":
		err = snapshotCmd(args, stdout, stderr)
	case "toast":
		err = toastCmd(args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "conman: unknown command %q\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintln(stderr, "conman:", err)
		return 1
	}
}

var errUsage = errors.New("usage")

// parse parses args into fs, then fills every flag not given on the command
// line from CONMAN_<FLAG>.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := "CONMAN_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		value, ok := os.LookupEnv(env)
		if !ok {
			return
		}
		if list, ok := f.Value.(*stringList); ok {
			for _, v := range strings.Split(value, ",") {
				if v = strings.TrimSpace(v); v != "" {
					list.Set(v)
				}
			}
			return
		}
		if serr := f.Value.Set(value); serr != nil {
			err = fmt.Errorf("%s: %w", env, serr)
		}
	})
	return err
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// byteSize is a flag holding a size in bytes: 8388608, 8MiB, 512KiB.
type byteSize int64

func (b *byteSize) String() string { return fmt.Sprint(int64(*b)) }
func (b *byteSize) Set(v string) error {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(v, u.suffix); ok {
			var n int64
			if _, err := fmt.Sscan(num, &n); err != nil || n <= 0 {
				return fmt.Errorf("bad size %q", v)
			}
			*b = byteSize(n * u.mult)
			return nil
		}
	}
	return fmt.Errorf("bad size %q", v)
}

// version is the module version of a released build, else the VCS
// revision it was built from, else "dev".
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	switch {
	case rev == "":
		return "dev"
	case dirty:
		return "dev-" + rev + "-dirty"
	}
	return "dev-" + rev
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func serve(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("conman serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg conman.Config
	var origins stringList
	readLimit := byteSize(16 << 20)
	queue := byteSize(8 << 20)
	var logLevel string
	var userID uint
	fs.StringVar(&cfg.Listen, "listen", conman.DefaultListen, "address to listen on (host:port; port 0 picks a free one)")
	fs.StringVar(&cfg.Workspace, "workspace", ".", "the workspace directory")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "the daemon's own directory (default <workspace>/.conman)")
	fs.StringVar(&cfg.WorkspaceID, "workspace-id", "", "the workspace id tokens must carry (default: the one stored in the data dir)")
	fs.Var(&origins, "allow-origin", "a browser origin allowed besides the daemon's own, exactly scheme://host[:port] (repeatable)")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "serve /debug/pprof/")
	fs.Var(&readLimit, "read-limit", "largest frame accepted from a client (bytes, or with KiB/MiB)")
	fs.Var(&queue, "write-queue", "bytes queued for one client before it is cut off (or with KiB/MiB)")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", 25*time.Second, "websocket ping interval")
	fs.DurationVar(&cfg.PongWait, "pong-wait", 60*time.Second, "how long a client may leave pings unanswered")
	fs.DurationVar(&cfg.WriteWait, "write-wait", 10*time.Second, "deadline for writing one frame")
	fs.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", conman.DefaultShutdownGrace, "how long a graceful shutdown may take")
	fs.StringVar(&cfg.URLUser, "user", "", "user name in the browser URL's token (default $USER)")
	fs.UintVar(&userID, "user-id", conman.DefaultUserID, "user id in the browser URL's token")
	fs.DurationVar(&cfg.URLTokenTTL, "url-token-ttl", conman.DefaultURLTokenTTL, "lifetime of the browser URL's token")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	var shellGrace time.Duration
	var subreaper bool
	fs.DurationVar(&shellGrace, "shell-grace", shell.DefaultGrace, "how long a shell with no client attached keeps running (negative: it ends with its last client)")
	var tasksConcurrency int
	fs.IntVar(&tasksConcurrency, "tasks-concurrency", tasks.DefaultConcurrency, "how many queued tasks may run at once")
	fs.BoolVar(&subreaper, "subreaper", false, "reap orphaned processes as PID 1 does (PR_SET_CHILD_SUBREAPER)")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, logLevel)
	if err != nil {
		return err
	}
	// Sessions with the debug or admin role may stream the daemon's log
	// (the logs service).
	log = slog.New(logs.Wrap(log.Handler()))
	cfg.AllowOrigins = origins
	cfg.ReadLimit = int64(readLimit)
	cfg.WriteQueueBytes = int(queue)
	cfg.URLUserID = uint32(userID)
	cfg.Logger = log
	cfg.Version = version()
	cfg.UI = ui.Handler()
	shell.Configure(shell.Options{Grace: shellGrace})
	tasks.Configure(tasks.Options{Concurrency: tasksConcurrency})
	d, err := conman.New(cfg)
	if err != nil {
		return err
	}
	// The supervisor reaps orphans as PID 1 (or with --subreaper) and
	// forwards SIGTERM, SIGINT and SIGHUP to the process groups; the first
	// SIGTERM or SIGINT ends ctx.
	sup, err := conman.StartSupervisor(conman.SupervisorOptions{Subreaper: subreaper, Logger: log})
	if err != nil {
		return err
	}
	runErr := d.Run(sup.Context())
	stopCtx, cancel := context.WithTimeout(context.Background(), d.Config().ShutdownGrace)
	defer cancel()
	return errors.Join(runErr, sup.Stop(stopCtx))
}

func keygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("conman keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", conman.DefaultDataDirName, "the daemon's data directory")
	if err := parse(fs, args); err != nil {
		return err
	}
	kid, err := auth.GenerateKey(conman.KeysDir(*dataDir))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", kid)
	fmt.Fprintf(stderr, "wrote %s and %s\n",
		filepath.Join(conman.KeysDir(*dataDir), kid+".key"), filepath.Join(conman.KeysDir(*dataDir), kid+".pub"))
	return nil
}

func token(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("conman token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", conman.DefaultDataDirName, "the daemon's data directory (its keys/ hold the signing key)")
	user := fs.String("user", "", "user name (required)")
	userID := fs.Uint("user-id", conman.DefaultUserID, "user id")
	ro := fs.Bool("ro", false, "read-only: every mutating command is refused")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	workspaceID := fs.String("workspace-id", "", "workspace id (default: the one stored in the data dir)")
	keyID := fs.String("key-id", "", "signing key id (default: the newest key)")
	var roles stringList
	fs.Var(&roles, "role", "an extra permission such as debug or admin (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *user == "" {
		fmt.Fprintln(stderr, "conman token: --user is required")
		return errUsage
	}
	if *workspaceID == "" {
		id, err := conman.LoadWorkspaceID(*dataDir, false)
		if err != nil {
			return fmt.Errorf("%w (start the daemon once, or pass --workspace-id)", err)
		}
		*workspaceID = id
	}
	signer, err := auth.LoadSigner(conman.KeysDir(*dataDir), *keyID)
	if err != nil {
		return err
	}
	tok, err := signer.Mint(auth.Claims{
		UserID:      uint32(*userID),
		UserName:    *user,
		WorkspaceID: *workspaceID,
		ReadOnly:    *ro,
		Roles:       roles,
		Expires:     time.Now().Add(*ttl),
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
