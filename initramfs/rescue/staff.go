package rescue

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/term"

	"github.com/lifeboat-boot/lifeboat/initramfs/sshd"
	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/unlock"
)

// Staff runs what the grant's staff member asks for, within its scope.
type Staff struct {
	Host     string
	Grant    *agentapi.RescueGrant
	Guard    *Guard
	Report   unlock.Reporter
	FindRoot func() (*Root, error)
	// Sink stores the named recording (nil: no shell can be recorded,
	// so none runs).
	Sink func(name string) Sink

	shells atomic.Int32
	open   atomic.Int32 // shells running or still storing their recording
}

// Drain waits up to d for every shell to end and to have stored its
// recording and its end record, and reports whether they all did. A grant
// that ends closes the shells at once, but their last output and their
// rescue.shell_end are the customer's evidence of what was done: the host
// must not restart under them.
func (s *Staff) Drain(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for s.open.Load() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// Scope commands; "end" ends the grant's session in every scope.
const (
	CmdResetPassword = "reset-password"
	CmdShell         = "shell"
	CmdEnd           = "end"
)

// Run is the staff member's sessions' handler.
func (s *Staff) Run(ctx context.Context, q *sshd.Request) int {
	defer s.Guard.Begin()()
	out := unlock.NewLineWriter(q.RW, q.PTY)
	g := s.Grant
	args := strings.Fields(q.Command)
	cmd := ""
	if len(args) > 0 {
		cmd = args[0]
	}
	if cmd == "" && g.Scope == "shell" {
		cmd = CmdShell
	}
	switch {
	case cmd == CmdEnd:
		fmt.Fprintf(out, "Ending the rescue session of grant %s; the host reboots into its own system.\n", g.ID)
		s.Guard.Stop(EndStaff)
		return 0
	case cmd == CmdResetPassword && g.Scope == "password-reset":
		if len(args) != 2 {
			fmt.Fprintf(out, "usage: reset-password USER\n")
			return ExitUsage
		}
		r := &Reset{User: args[1], FindRoot: s.FindRoot, Report: s.Report}
		return r.Run(ctx, q.RW, q.PTY)
	case cmd == CmdShell && g.Scope == "shell":
		return s.shell(ctx, q)
	}
	fmt.Fprintf(out, "lifeboat rescue: host %s, grant %s (%s) for %s, ticket %s, until %s (%s left)\n",
		term.Clean(s.Host), g.ID, g.Scope, term.Clean(g.Staff), term.Clean(g.Ticket), g.Until.UTC().Format(time.RFC3339), s.left().Round(time.Second))
	if cmd != "" {
		fmt.Fprintf(out, "error: %q is not allowed under a %s grant\n", q.Command, g.Scope)
	}
	switch g.Scope {
	case "password-reset":
		fmt.Fprintf(out, "Run: ssh ... reset-password USER   (then: ssh ... end)\n")
	case "shell":
		fmt.Fprintf(out, "Run: ssh -t ... shell   (recorded; then: ssh ... end)\n")
	case "console":
		fmt.Fprintf(out, "The technician types the grant's one-time code at the host's console. Over SSH: ssh ... end\n")
	}
	if cmd != "" {
		return 127
	}
	return 0
}

func (s *Staff) left() time.Duration { return max(time.Until(s.Grant.Until), 0) }

func (s *Staff) shell(ctx context.Context, q *sshd.Request) int {
	return s.runShell(ctx, q, audit.RescueShell, "shell")
}

// runShell runs a recorded shell for q, with code recording its start and
// kind naming the recording ("shell-1", "console-1").
func (s *Staff) runShell(ctx context.Context, q *sshd.Request, code audit.Code, kind string) int {
	if s.Sink == nil {
		fmt.Fprintf(q.Stderr, "error: recordings cannot be stored; no shell without a recording\r\n")
		return 1
	}
	s.open.Add(1)
	defer s.open.Add(-1)
	name := fmt.Sprintf("%s-%d", kind, s.shells.Add(1))
	g := s.Grant
	d := map[string]string{"grant": g.ID, "recording": name, "pty": fmt.Sprint(q.PTY)}
	if err := s.Report(ctx, code, d); err != nil {
		fmt.Fprintf(q.Stderr, "error: the server did not record the shell's start (%v); no shell\r\n", err)
		return 1
	}
	rctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if q.Size.Cols == 0 || q.Size.Rows == 0 {
		q.Size = sshd.WinSize{Cols: 80, Rows: 24} // no pty asked for, or no size given
	}
	rec := &Recorder{Sink: s.Sink(name)}
	rec.Start(rctx, Header{Width: q.Size.Cols, Height: q.Size.Rows, Title: fmt.Sprintf("%s grant %s ticket %s", s.Host, g.ID, g.Ticket),
		Env: map[string]string{"TERM": q.Term}})
	banner := fmt.Sprintf("lifeboat rescue %s on %s: grant %s for %s, ticket %s, until %s.\r\nThis session's output is recorded and the customer can watch it. Input is not recorded.\r\n",
		kind, s.Host, g.ID, g.Staff, g.Ticket, g.Until.UTC().Format(time.RFC3339))
	exit := Shell(ctx, q, rec, banner)
	n, err := rec.Close(10 * time.Second)
	d["bytes"], d["exit"], d["sha256"] = fmt.Sprint(n), fmt.Sprint(exit), rec.Sum()
	if err != nil {
		d["error"] = err.Error()
	}
	_ = s.Report(context.Background(), audit.RescueShellEnd, d)
	return exit
}
