package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
	"github.com/lifeboat-boot/lifeboat/pxe/term"
)

var version = "dev"

// Exit statuses.
const (
	exitOK       = 0
	exitRefused  = 1 // the server said no
	exitUsage    = 2
	exitNoServer = 3 // unreachable, or the token was not accepted
)

type env struct {
	ctx    context.Context
	getenv func(string) string
	stdin  io.Reader
	out    io.Writer
	errw   io.Writer
	json   bool
	client *api.Client
	opts   struct{ server, tokenFile, caFile string }
}

// usageError is a mistake in the command line: exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func cli(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, getenv: getenv, stdin: stdin, out: stdout, errw: stderr}
	fs := flag.NewFlagSet("lifeboat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage()); fs.PrintDefaults() }
	defToken := ""
	if home, err := os.UserHomeDir(); err == nil {
		defToken = filepath.Join(home, ".config", "lifeboat", "token")
	}
	fs.StringVar(&e.opts.server, "server", cmp.Or(getenv("LIFEBOAT_SERVER"), "http://127.0.0.1:8081"), "lifeboatd's operator API (env LIFEBOAT_SERVER)")
	fs.StringVar(&e.opts.tokenFile, "token-file", cmp.Or(getenv("LIFEBOAT_TOKEN_FILE"), defToken), "file holding your operator token (env LIFEBOAT_TOKEN_FILE)")
	fs.StringVar(&e.opts.caFile, "ca-file", getenv("LIFEBOAT_CA_FILE"), "PEM certificate(s) to trust for the API's TLS (env LIFEBOAT_CA_FILE)")
	fs.BoolVar(&e.json, "json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	err := e.dispatch(fs.Args())
	if err == nil {
		return exitOK
	}
	var ue usageError
	var ae *api.Error
	var pr *api.Proposed
	switch {
	case errors.As(err, &pr):
		// Not made, but asked for: the customer decides.
		if e.json {
			_ = e.printJSON(pr)
		} else {
			fmt.Fprintf(e.out, "%s\n", clean(pr.Message))
		}
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "lifeboat: %s\n", err)
		return exitUsage
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, api.ErrUnreachable):
		fmt.Fprintf(stderr, "lifeboat: %s\nhint: is lifeboatd running, and is %s its api_listen address? (--server, LIFEBOAT_SERVER)\n", clean(err.Error()), e.opts.server)
		return exitNoServer
	case errors.As(err, &ae):
		fmt.Fprintf(stderr, "lifeboat: %s\n", cleanLines(ae.Message))
		if ae.Hint != "" {
			fmt.Fprintf(stderr, "hint: %s\n", clean(ae.Hint))
		}
		if ae.Status == 401 {
			return exitNoServer
		}
		return exitRefused
	case errors.Is(err, errNoToken):
		fmt.Fprintf(stderr, "lifeboat: %s\n", err)
		return exitNoServer
	}
	fmt.Fprintf(stderr, "lifeboat: %s\n", clean(err.Error()))
	return exitRefused
}

var errNoToken = errors.New("no operator token")

// connect reads the token file and makes the client. The token is read
// from a file, never from argv or the environment, where other users and
// crash reports can see it.
func (e *env) connect() error {
	if e.client != nil {
		return nil
	}
	f := e.opts.tokenFile
	if f == "" {
		return fmt.Errorf("%w: set --token-file", errNoToken)
	}
	fi, err := os.Stat(f)
	if err != nil {
		return fmt.Errorf("%w: %v\nhint: an admin on the server runs 'lifeboatd operator add YOURNAME'; save the token it prints in %s (chmod 600)", errNoToken, err, f)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: token file %s can be read by others (mode %04o)\nhint: chmod 600 %s", errNoToken, f, fi.Mode().Perm(), f)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		return fmt.Errorf("%w: %v", errNoToken, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return fmt.Errorf("%w: %s should hold one line, the token", errNoToken, f)
	}
	c, err := api.NewClient(e.opts.server, tok, e.opts.caFile)
	if err != nil {
		return usageError{err.Error()}
	}
	e.client = c
	return nil
}

// flags makes a subcommand's flag set; parse accepts the positional
// arguments before or after the flags ("host add web1 --mac ..." reads as
// people type it).
func (e *env) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("lifeboat "+name, flag.ContinueOnError)
	fs.SetOutput(e.errw)
	fs.BoolVar(&e.json, "json", e.json, "print JSON")
	return fs
}

// parse reads flags and npos positional arguments (any number, if npos is
// -1) in any order.
func parse(fs *flag.FlagSet, args []string, npos int, what string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) > 0 {
			pos = append(pos, args[0])
			args = args[1:]
		}
	}
	if npos >= 0 && len(pos) != npos {
		return nil, usageError{fmt.Sprintf("%s: want %s", fs.Name(), what)}
	}
	return pos, nil
}

func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (e *env) whoami(args []string) error {
	fs := e.flags("whoami")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	w, err := e.client.Whoami(e.ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(w)
	}
	if w.Customer != "" {
		fmt.Fprintf(e.out, "customer %s\n", clean(w.Customer))
		return nil
	}
	fmt.Fprintln(e.out, clean(w.Operator))
	return nil
}

// clean makes text from the server safe for a terminal: control
// characters (escape sequences) are shown escaped, never sent raw.
// cleanLines cleans each line of a message from the server (a list of
// mistakes comes one a line), the later ones indented under the first.
// clean and cleanLines escape what the server says (it may come from a
// disk, a packet or another operator) before it reaches the terminal.
func clean(s string) string { return term.Clean(s) }

func cleanLines(s string) string { return term.CleanLines(s) }
