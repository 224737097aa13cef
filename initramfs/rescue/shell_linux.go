package rescue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/lifeboat-boot/lifeboat/initramfs/sshd"
)

// ShellPath is the RAM image's shell (u-root's gosh, in its busybox).
var ShellPath = "/bbin/gosh"

// Recording takes a session's output and terminal size changes; a
// *Recorder is one.
type Recording interface {
	io.Writer
	Resize(cols, rows uint32) error
}

// Shell runs a shell on a pty for the request, its output copied to the
// client and to rec. It ends when the shell exits, when ctx ends (the grant
// ended or the client left: the shell's process group is killed), or when
// the recording cannot keep up with the server. It returns the exit status.
func Shell(ctx context.Context, q *sshd.Request, rec Recording, banner string) int {
	cmd := exec.Command(ShellPath)
	// A clean environment: nothing of the agent's reaches the shell.
	term := q.Term
	if term == "" {
		term = "xterm"
	}
	cmd.Env = []string{"PATH=/bbin:/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/root", "TERM=" + term, "PS1=rescue# "}
	cmd.Dir = "/"
	size := q.Size
	if size.Cols == 0 || size.Rows == 0 {
		size = sshd.WinSize{Cols: 80, Rows: 24}
	}
	tty, err := pty.StartWithAttrs(cmd, &pty.Winsize{Cols: uint16(size.Cols), Rows: uint16(size.Rows)},
		&syscall.SysProcAttr{Setsid: true, Setctty: true})
	if err != nil {
		fmt.Fprintf(q.Stderr, "error: cannot start a shell: %v\n", err)
		return 1
	}
	defer tty.Close()
	out := io.MultiWriter(rec, q.RW) // recorded first: nothing unrecorded is shown
	if banner != "" {
		_, _ = out.Write([]byte(banner))
	}
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(out, tty) // output: recorded
		copied <- err
	}()
	go func() {
		_, _ = io.Copy(tty, q.RW) // input: never recorded
		// The client's input ended (ssh < script): an end-of-file for the
		// shell, as Ctrl-D at a terminal.
		_, _ = tty.Write([]byte{4})
	}()
	go func() {
		for ws := range q.Resize {
			_ = pty.Setsize(tty, &pty.Winsize{Cols: uint16(ws.Cols), Rows: uint16(ws.Rows)})
			_ = rec.Resize(ws.Cols, ws.Rows)
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-exited:
		// Drain what the shell wrote last (the pty reports EIO once empty).
		select {
		case <-copied:
		case <-time.After(2 * time.Second):
		}
	case err := <-copied:
		if errors.Is(err, ErrUnrecorded) {
			fmt.Fprintf(q.Stderr, "\r\nlifeboat: %v; the shell is stopped.\r\n", err)
		}
		kill(cmd.Process)
		werr = <-exited
	case <-ctx.Done():
		kill(cmd.Process)
		werr = <-exited
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ee.ExitCode() < 0 {
			return 137
		}
		return ee.ExitCode()
	}
	if werr != nil {
		return 1
	}
	return 0
}

// kill ends the shell's whole process group (it leads its session).
func kill(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
}
