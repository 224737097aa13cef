package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // customers' time zones, wherever lifeboatd runs

	"github.com/lifeboat-boot/lifeboat/pxe/server"
)

var version = "dev"

func main() {
	os.Exit(lifeboatd(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

const usage = `usage: lifeboatd [flags]                   run the boot server
       lifeboatd [flags] operator add NAME    give an operator an API token (printed once)
       lifeboatd [flags] operator remove NAME revoke it
       lifeboatd [flags] operator list

Every configuration key can be set in the file, in the environment as
LIFEBOATD_KEY (LIFEBOATD_HTTP_PORT, LIFEBOATD_UNLOCK_MAX_TRIES) or as a flag
(-http_port, -unlock.max_tries); flags win over the environment, which wins
over the file.

flags:
`

// lifeboatd is main without the process: it returns the exit status (0 ok,
// 1 failed while running, 2 bad usage or configuration).
func lifeboatd(args, env []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lifeboatd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	configPath := fs.String("config", "/etc/lifeboat/lifeboatd.json", "configuration file (env LIFEBOATD_CONFIG)")
	check := fs.Bool("check-config", false, "check the configuration and the inventory file, then exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	var overrides []server.Override
	for _, k := range server.Keys() {
		fs.Func(k, "overrides the configuration key "+k+" (env "+server.EnvName(k)+")", func(v string) error {
			overrides = append(overrides, server.Override{Key: k, Val: v})
			return nil
		})
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "LIFEBOATD_CONFIG="); ok {
			*configPath = v
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "lifeboatd", version)
		return 0
	}
	cfg, err := server.LoadConfig(*configPath, env, overrides)
	if err != nil {
		fmt.Fprintf(stderr, "lifeboatd: %v\n", err)
		return 2
	}
	if *check {
		if err := cfg.CheckFiles(); err != nil {
			fmt.Fprintf(stderr, "lifeboatd: %v\n", err)
			return 2
		}
		fmt.Fprintln(stdout, "configuration OK")
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if fs.NArg() > 0 {
		return operatorCmd(ctx, cfg, fs.Args(), stdout, stderr)
	}
	if err := server.Run(ctx, cfg, cfg.NewLogger(stderr), version); err != nil {
		fmt.Fprintf(stderr, "lifeboatd: %v\n", err)
		return 1
	}
	return 0
}

const operatorUsage = "lifeboatd: usage: lifeboatd operator add|remove NAME, or lifeboatd operator list"

// operatorCmd manages operators on the store directly: it is how the first
// operator gets a token, so it needs no token itself, only access to the
// database file.
func operatorCmd(ctx context.Context, cfg *server.Config, args []string, stdout, stderr io.Writer) int {
	if args[0] != "operator" {
		fmt.Fprintf(stderr, "lifeboatd: unknown command %q (see lifeboatd -help)\n", args[0])
		return 2
	}
	if len(args) < 2 {
		fmt.Fprintln(stderr, operatorUsage)
		return 2
	}
	db, err := server.OpenStore(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "lifeboatd: %v\n", err)
		return 1
	}
	defer db.Close()
	actor := "local"
	if u, err := user.Current(); err == nil {
		actor = "local:" + u.Username
	}
	switch {
	case args[1] == "list" && len(args) == 2:
		ops, err := db.Operators(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "lifeboatd: %v\n", err)
			return 1
		}
		for _, o := range ops {
			fmt.Fprintf(stdout, "%s\t%s\n", o.Name, o.Created.Format(time.RFC3339))
		}
		return 0
	case args[1] == "add" && len(args) == 3:
		tok, err := db.AddOperator(ctx, args[2], actor)
		if err != nil {
			fmt.Fprintf(stderr, "lifeboatd: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, tok)
		fmt.Fprintf(stderr, "lifeboatd: token for operator %q printed above; it is shown only once: put it in a file only they can read (lifeboat --token-file)\n", args[2])
		return 0
	case args[1] == "remove" && len(args) == 3:
		if err := db.RemoveOperator(ctx, args[2], actor); err != nil {
			fmt.Fprintf(stderr, "lifeboatd: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintln(stderr, operatorUsage)
	return 2
}
