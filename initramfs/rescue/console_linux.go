package rescue

import (
	"bufio"
	"context"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/lifeboat-boot/lifeboat/initramfs/sshd"
	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/keys/consolecode"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// MaxCodeTries is how many wrong console codes lock the console for the
// rest of the grant.
const MaxCodeTries = 5

// Console is a console grant at the host: every console shows a banner
// naming the grant and asks for the one-time code; the right code opens one
// recorded shell on that console. Wrong codes are recorded, and
// MaxCodeTries of them lock every console for the rest of the grant.
type Console struct {
	Host    string
	Grant   *agentapi.RescueGrant
	Devices []string
	Staff   *Staff // reports, recording, and the grant's guard

	mu    sync.Mutex
	tries int
	used  bool
}

// Run serves the consoles until ctx ends (the grant's end).
func (c *Console) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, dev := range c.Devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.serve(ctx, dev)
		}()
	}
	wg.Wait()
}

func (c *Console) serve(ctx context.Context, dev string) {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return // no such console on this host
	}
	defer f.Close()
	go func() { <-ctx.Done(); f.Close() }() // unblocks the read
	// Echo off for as long as codes are asked for (line editing stays):
	// turned on between two prompts, it would show a code typed ahead.
	if st, err := term.GetState(int(f.Fd())); err == nil {
		defer term.Restore(int(f.Fd()), st)
		noEcho(int(f.Fd()))
	}
	g := c.Grant
	fmt.Fprintf(f, "\r\nlifeboat: rescue console of %s under grant %s (ticket %s, asked by %s), until %s.\r\n",
		c.Host, g.ID, g.Ticket, g.Staff, g.Until.UTC().Format(time.RFC3339))
	fmt.Fprintf(f, "lifeboat: type the grant's one-time code and press Enter; the shell it opens is recorded, and the customer is told.\r\n")
	in := bufio.NewReader(f)
	for ctx.Err() == nil {
		fmt.Fprintf(f, "one-time code: ")
		code, err := in.ReadString('\n')
		fmt.Fprintf(f, "\r\n")
		if err != nil {
			return
		}
		code = strings.TrimRight(code, "\r\n")
		if strings.TrimSpace(code) == "" {
			continue
		}
		switch ok, left := c.check(code); {
		case ok:
			c.shell(ctx, f, dev)
			fmt.Fprintf(f, "lifeboat: the console shell ended; the code is used up. The host reboots when the grant ends.\r\n")
			return
		case left == 0:
			fmt.Fprintf(f, "lifeboat: wrong code; the console is locked for the rest of this grant.\r\n")
			_ = c.Staff.Report(ctx, audit.RescueConsoleRefused, map[string]string{"grant": g.ID, "console": dev, "tries_left": "0"})
			return
		default:
			fmt.Fprintf(f, "lifeboat: wrong code; %d tries left.\r\n", left)
			_ = c.Staff.Report(ctx, audit.RescueConsoleRefused, map[string]string{"grant": g.ID, "console": dev, "tries_left": fmt.Sprint(left)})
		}
	}
}

// check compares a typed code with the grant's, once per console grant.
func (c *Console) check(code string) (ok bool, left int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.used || c.tries >= MaxCodeTries {
		return false, 0
	}
	got := consolecode.Hash(c.Grant.ID, strings.TrimSpace(code))
	if c.Grant.ConsoleCodeHash != "" && subtle.ConstantTimeCompare([]byte(got), []byte(c.Grant.ConsoleCodeHash)) == 1 {
		c.used = true
		return true, MaxCodeTries - c.tries
	}
	c.tries++
	return false, MaxCodeTries - c.tries
}

func (c *Console) shell(ctx context.Context, f *os.File, dev string) {
	end := c.Staff.Guard.Begin()
	defer end()
	fd := int(f.Fd())
	q := &sshd.Request{RW: f, Stderr: f, PTY: true, Term: "linux", Actor: "console:" + dev, Role: sshd.RoleStaff}
	if w, h, err := term.GetSize(fd); err == nil && w > 0 && h > 0 {
		q.Size = sshd.WinSize{Cols: uint32(w), Rows: uint32(h)}
	}
	// The console's own line discipline steps aside: the shell's pty
	// does the echo and the editing.
	if st, err := term.MakeRaw(fd); err == nil {
		defer term.Restore(fd, st)
	}
	c.Staff.runShell(ctx, q, audit.RescueConsole, "console")
}
