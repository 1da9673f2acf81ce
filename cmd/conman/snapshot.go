package main

// The snapshot command works on a workspace's snapshot store directly,
// whether or not a daemon is running on it (the store's lock keeps the two
// apart):
//
//	conman snapshot list    [--workspace DIR] [--data-dir DIR]
//	conman snapshot create  [--workspace DIR] [--data-dir DIR]
//	conman snapshot verify  [ID] [--workspace DIR] [--data-dir DIR]
//	conman snapshot restore ID [--to DIR] [--workspace DIR] [--data-dir DIR]

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/conman-dev/conman/conman"
	"github.com/conman-dev/conman/services/snapshot"
)

const snapshotUsage = `usage:
  conman snapshot list [flags]             list the stored snapshots, newest first
  conman snapshot create [flags]           take a snapshot of the workspace
  conman snapshot verify [ID] [flags]      check a snapshot (default: the newest) for damage
  conman snapshot restore ID [flags]       restore a snapshot into the workspace, or --to DIR
`

func snapshotCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, snapshotUsage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("conman snapshot "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	workspace := fs.String("workspace", ".", "the workspace directory")
	dataDir := fs.String("data-dir", "", "the daemon's data directory (default <workspace>/.conman)")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	var to *string
	var id string
	switch sub {
	case "list", "create":
	case "verify":
		id = "latest"
	case "restore":
		to = fs.String("to", "", "restore a copy into this directory (new or empty) instead of the workspace in place")
	default:
		fmt.Fprintf(stderr, "conman snapshot: unknown command %q\n%s", sub, snapshotUsage)
		return errUsage
	}
	if (sub == "verify" || sub == "restore") && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if sub == "restore" && id == "" {
		fmt.Fprintf(stderr, "conman snapshot restore: which snapshot? (an ID from conman snapshot list)\n")
		return errUsage
	}
	if *dataDir == "" {
		*dataDir = filepath.Join(*workspace, conman.DefaultDataDirName)
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	store, err := snapshot.Open(snapshot.Options{Workspace: *workspace, DataDir: *dataDir, Logger: log})
	if err != nil {
		return err
	}
	defer store.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	switch sub {
	case "list":
		return snapshotList(ctx, store, stdout, stderr)
	case "create":
		res, err := store.Snapshot(ctx)
		if err != nil {
			return err
		}
		if res.Unchanged {
			fmt.Fprintf(stdout, "%s unchanged: %d files, %s\n", res.ShortID(), res.Files, humanBytes(res.Bytes))
			return nil
		}
		fmt.Fprintf(stdout, "%s %d files, %s (%d read)\n", res.ShortID(), res.Files, humanBytes(res.Bytes), res.Hashed)
		return nil
	case "verify":
		info, err := store.Verify(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is intact: %d files, %s, %s\n", info.ShortID(), info.Files, humanBytes(info.Bytes), info.Checksum)
		return nil
	default: // restore
		res, err := store.Restore(ctx, id, *to)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "restored %s into %s: %d written, %d removed, %d unchanged\n",
			res.ShortID(), res.Target, res.Written, res.Removed, res.Unchanged)
		if res.Before != "" {
			fmt.Fprintf(stdout, "the workspace as it was is snapshot %.12s (conman snapshot restore %.12s undoes this)\n", res.Before, res.Before)
		}
		return nil
	}
}

func snapshotList(ctx context.Context, store *snapshot.Store, stdout, stderr io.Writer) error {
	infos, err := store.List(ctx)
	if err != nil {
		return err
	}
	if len(infos) == 0 {
		fmt.Fprintf(stderr, "no snapshots in %s\n", store.Dir())
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tFILES\tSIZE\tNOTE")
	for _, in := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", in.ShortID(), in.Time.Local().Format("2006-01-02 15:04:05"),
			in.Files, humanBytes(in.Bytes), in.Note)
	}
	return tw.Flush()
}

// humanBytes formats n bytes with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
