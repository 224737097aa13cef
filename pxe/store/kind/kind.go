package kind

// Mode is what a host's netboots are for.
type Mode string

// Modes.
const (
	// ModeUnlock: every netboot lands at the unlock prompt.
	ModeUnlock Mode = "unlock"
	// ModeDisk: iPXE exits at once and the firmware boots the local disk.
	ModeDisk Mode = "disk"
	// ModeRescue is never set on a host: it is the mode a host boots in
	// while a rescue grant for it is live.
	ModeRescue Mode = "rescue"
)

// Firmware is what booted a host, as its DHCP request tells (option 93 and
// vendor class), or the architecture's name for one lifeboat has no loader
// for.
type Firmware string

// Firmware kinds lifeboat boots.
const (
	FirmwareBIOS     Firmware = "bios"      // PXE in a BIOS (or CSM): undionly.kpxe over TFTP
	FirmwareUEFI     Firmware = "uefi"      // UEFI PXE: ipxe.efi over TFTP
	FirmwareUEFIHTTP Firmware = "uefi-http" // UEFI HTTP boot: ipxe.efi over HTTP
	FirmwareIPXE     Firmware = "ipxe"      // iPXE sent here by the site's own DHCP (dhcp_mode off)
)

// Scope is what a rescue grant lets support do.
type Scope string

// Rescue scopes.
const (
	ScopePasswordReset Scope = "password-reset" // reset one user's password on the installed OS
	ScopeShell         Scope = "shell"          // a recorded shell in the RAM image
	ScopeConsole       Scope = "console"        // remote hands at the console, with a one-time code
)

// GrantState is where a rescue grant is in its life.
type GrantState string

// Grant states.
const (
	GrantRequested GrantState = "requested" // waiting for the customer's approval
	GrantApproved  GrantState = "approved"  // may be used from its start until its end
	GrantActive    GrantState = "active"    // a rescue boot is using it
	GrantEnded     GrantState = "ended"     // the session ended
	GrantExpired   GrantState = "expired"   // its end passed
	GrantRevoked   GrantState = "revoked"   // withdrawn by staff, an operator or the customer
	GrantDenied    GrantState = "denied"    // the customer said no
)

// Policy is how a customer wants grants of a scope handled.
type Policy string

// Policies.
const (
	PolicyApprove Policy = "approve" // the grant waits until the customer approves it
	PolicyNotify  Policy = "notify"  // the grant may be used at once; the customer is told
)
