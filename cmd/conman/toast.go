package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/conman"
	"github.com/conman-dev/conman/conman/auth"
	"github.com/conman-dev/conman/conman/client"
)

// toastCmd shows a message to every session of the running daemon:
//
//	conman toast TEXT [--data-dir DIR] [--addr HOST:PORT] [--timeout D]
//
// It mints a short-lived token with the admin role from the data dir's
// signing key (as `conman token` does), connects, and sends toast{TEXT} on
// channel 0. --addr defaults to CONMAN_LISTEN, else the daemon's default
// listen address; a wildcard host means this machine's loopback.
func toastCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("conman toast", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: conman toast TEXT [flags]")
		fs.PrintDefaults()
	}
	defaultAddr := conman.DefaultListen
	if listen := os.Getenv("CONMAN_LISTEN"); listen != "" {
		defaultAddr = listen
	}
	dataDir := fs.String("data-dir", conman.DefaultDataDirName, "the daemon's data directory (its keys/ hold the signing key)")
	addr := fs.String("addr", defaultAddr, "the daemon's address, host:port")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the daemon")

	// TEXT may come first or after the flags.
	var text string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		text, args = args[0], args[1:]
		if err := parse(fs, args); err != nil {
			return err
		}
	} else {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return errUsage
		}
		if fs.NArg() != 1 {
			fs.Usage()
			return errUsage
		}
		text = fs.Arg(0)
		if err := parse(fs, nil); err != nil { // the environment, for flags not given
			return err
		}
	}
	if text == "" {
		fs.Usage()
		return errUsage
	}

	workspaceID, err := conman.LoadWorkspaceID(*dataDir, false)
	if err != nil {
		return fmt.Errorf("toast: %w (is --data-dir the daemon's?)", err)
	}
	signer, err := auth.LoadSigner(conman.KeysDir(*dataDir), "")
	if err != nil {
		return fmt.Errorf("toast: %w", err)
	}
	tok, err := signer.Mint(auth.Claims{
		UserName:    "conman toast",
		WorkspaceID: workspaceID,
		Roles:       []string{"admin"},
		Expires:     time.Now().Add(time.Minute),
	})
	if err != nil {
		return fmt.Errorf("toast: %w", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c, err := client.Dial(ctx, client.URL(dialAddr(*addr), tok), client.Options{HandshakeTimeout: *timeout})
	if err != nil {
		return fmt.Errorf("toast: %w", err)
	}
	defer c.Close()
	reply, err := c.Request0(ctx, &api.Command{Body: &api.Command_Toast{Toast: &api.Toast{Text: text}}})
	if err != nil {
		return fmt.Errorf("toast: %w", err)
	}
	if e, ok := reply.Body.(*api.Command_Error); ok {
		return fmt.Errorf("toast: the daemon refused: %s", e.Error)
	}
	if reply.GetOk() == nil {
		return fmt.Errorf("toast: unexpected reply %v", reply)
	}
	fmt.Fprintln(stdout, "sent")
	return nil
}

// dialAddr turns a listen address into one to dial: a wildcard or empty
// host means this machine.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
