package store

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"sync"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store/kind"
)

// Stage is a step of a netboot, in the order a boot goes through them.
type Stage int

// The boot state machine: DHCP → first stage → script → kernel → initrd →
// agent check-in → login → unlock → hand-off.
const (
	StageDHCP Stage = iota
	StageFirstStage
	StageScript
	StageKernel
	StageInitrd
	StageCheckin
	StageLogin
	StageUnlock
	StageHandoff
)

var stageNames = [...]string{"dhcp", "first-stage", "script", "kernel", "initrd", "checkin", "login", "unlock", "handoff"}

func (s Stage) String() string {
	if s < 0 || int(s) >= len(stageNames) {
		return "unknown"
	}
	return stageNames[s]
}

// Firmware is what booted a host (see kind.Firmware).
type Firmware = kind.Firmware

// Firmware kinds lifeboat boots.
const (
	FirmwareBIOS     = kind.FirmwareBIOS
	FirmwareUEFI     = kind.FirmwareUEFI
	FirmwareUEFIHTTP = kind.FirmwareUEFIHTTP
	FirmwareIPXE     = kind.FirmwareIPXE
)

// Client says what kind of DHCP client spoke: the firmware's own PXE, iPXE,
// or the agent in the RAM image.
type Client int

// DHCP client kinds.
const (
	ClientFirmware Client = iota
	ClientIPXE
	ClientOther
)

// StartsNewBoot decides whether a DHCP DISCOVER opens a new netboot. The
// firmware's first DISCOVER does, unless it is a retransmission in the DHCP
// stage; iPXE continues a boot whose first stage it is, and opens one when it
// is the firmware itself (an iPXE option ROM); the agent never opens one.
func StartsNewBoot(cur Stage, haveBoot bool, c Client) bool {
	if !haveBoot {
		return c != ClientOther
	}
	switch c {
	case ClientFirmware:
		return cur != StageDHCP
	case ClientIPXE:
		return cur > StageFirstStage
	default:
		return false
	}
}

// Boot is one netboot of one host.
type Boot struct {
	ID       string
	Host     string
	MAC      string
	Started  time.Time
	Firmware Firmware
	Stage    Stage
	// Times records when each stage was first reached.
	Times map[Stage]time.Time
}

// Boots tracks the current boot of every host, in memory: DHCP and HTTP
// consult it on every packet and request. It only decides; Steps takes
// the steps (their records, then the stage, then the stage's history).
type Boots struct {
	mu    sync.Mutex
	byMAC map[string]*Boot
	now   func() time.Time
}

// NewBoots returns an empty tracker.
func NewBoots() *Boots {
	return &Boots{byMAC: map[string]*Boot{}, now: time.Now}
}

// OnDiscover applies a DISCOVER to the state machine and returns the boot it
// belongs to, and whether it just began. It returns nil for an agent
// DISCOVER without a boot in flight.
func (b *Boots) OnDiscover(mac, host string, c Client, firmware Firmware) (*Boot, bool) {
	b.mu.Lock()
	cur, ok := b.byMAC[mac]
	var st Stage
	if ok {
		st = cur.Stage
	}
	if !StartsNewBoot(st, ok, c) {
		defer b.mu.Unlock()
		if !ok {
			return nil, false
		}
		return cur.clone(), false
	}
	now := b.now()
	nb := &Boot{ID: newID(), Host: host, MAC: mac, Started: now, Firmware: firmware, Stage: StageDHCP,
		Times: map[Stage]time.Time{StageDHCP: now}}
	b.byMAC[mac] = nb
	defer b.mu.Unlock()
	return nb.clone(), true
}

// Current returns a copy of the boot in flight for mac.
func (b *Boots) Current(mac string) (*Boot, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur, ok := b.byMAC[mac]
	if !ok {
		return nil, false
	}
	return cur.clone(), true
}

// InFlight counts the boots of the last window by the stage they have
// reached (the "boots by state" gauge).
func (b *Boots) InFlight(window time.Duration) map[Stage]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[Stage]int{}
	since := b.now().Add(-window)
	for _, x := range b.byMAC {
		if x.Started.After(since) {
			out[x.Stage]++
		}
	}
	return out
}

// Restore puts boots back in flight (the store's, after a restart).
func (b *Boots) Restore(boots []*Boot) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range boots {
		b.byMAC[x.MAC] = x.clone()
	}
}

func (x *Boot) clone() *Boot {
	c := *x
	c.Times = maps.Clone(x.Times)
	return &c
}

// advance moves the boot forward to stage s if it is still the current boot
// of its host, and returns it as it now is. Stages never go backwards: a
// re-fetched kernel does not undo a check-in. Steps is its only caller.
func (b *Boots) advance(mac, bootID string, s Stage) (*Boot, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur, ok := b.byMAC[mac]
	if !ok || cur.ID != bootID || s <= cur.Stage {
		return nil, false
	}
	cur.Stage = s
	cur.Times[s] = b.now()
	return cur.clone(), true
}

// StageNames lists the stages in order.
func StageNames() []string { return append([]string(nil), stageNames[:]...) }

// ParseStage is the inverse of Stage.String.
func ParseStage(s string) (Stage, bool) {
	for i, n := range stageNames {
		if n == s {
			return Stage(i), true
		}
	}
	return 0, false
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return "b-" + hex.EncodeToString(b[:])
}
