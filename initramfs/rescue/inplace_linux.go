package rescue

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/term"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/unlock"
)

// OpenInPlace is the unlock.Handoff of a rescue boot under grant g: the
// volumes the customer unlocked are opened here (device-mapper), so that
// the grant's work can reach the installed system, and nothing is booted.
// The customer is told plainly what that lets support do. The volumes close
// when the host reboots at the grant's end.
func OpenInPlace(g *agentapi.RescueGrant) unlock.Handoff {
	return func(ctx context.Context, opened []*unlock.Unsealed, out io.Writer) (func(), error) {
		for _, u := range opened {
			name := "lifeboat-" + u.Volume.Header.UUID
			if err := u.Key.SetupMapper(name); err != nil {
				return nil, fmt.Errorf("open %s: %w", u.Volume.Path, err)
			}
			fmt.Fprintf(out, "  %s: opened in place for this rescue session\n", u.Volume.Path)
		}
		fmt.Fprintf(out, "This host is in rescue under grant %s (%s, for %s, ticket %s): until the grant ends (at the latest %s),\n",
			g.ID, g.Scope, term.Clean(g.Staff), term.Clean(g.Ticket), g.Until.UTC().Format(time.RFC3339))
		fmt.Fprintf(out, "support can reach what these volumes hold, within that scope. The host then reboots into its own system.\n")
		return nil, nil
	}
}
