package rescue

import (
	"context"
	"fmt"
	"io"

	"github.com/lifeboat-boot/lifeboat/unlock"
)

// OpenInPlace is the unlock.Handoff of a rescue boot: the volumes the
// customer unlocked are opened here (device-mapper), so that the grant's
// work can reach the installed system, and nothing is booted. They close
// when the host reboots at the grant's end.
func OpenInPlace(ctx context.Context, _ []byte, opened []*unlock.Unsealed, out io.Writer) (func(), error) {
	for _, u := range opened {
		name := "lifeboat-" + u.Volume.Header.UUID
		if err := u.Key.SetupMapper(name); err != nil {
			return nil, fmt.Errorf("open %s: %w", u.Volume.Path, err)
		}
		fmt.Fprintf(out, "  %s: opened in place for this rescue session\n", u.Volume.Path)
	}
	fmt.Fprintf(out, "The host stays in lifeboat for the rescue grant, and reboots into its own system when the grant ends.\n")
	return nil, nil
}
