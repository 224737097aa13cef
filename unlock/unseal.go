package unlock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anatol/luks.go"
)

// ErrWrongPassphrase means the passphrase opens no keyslot of the volume.
var ErrWrongPassphrase = errors.New("passphrase does not open this volume")

// ErrCannotOpen means lifeboat cannot decrypt a volume's keyslots (their
// cipher): no key derivation ran, and the passphrase may well be right.
var ErrCannotOpen = errors.New("lifeboat cannot open this cipher")

// libCiphers are the block ciphers the LUKS library opens, in XTS.
var libCiphers = map[string]bool{"aes": true, "twofish": true, "camellia": true}

// Openable says, before any key derivation, whether lifeboat can open the
// keyslots of a volume with header h: LUKS1's cipher, or the key material
// cipher of at least one LUKS2 keyslot (the others are skipped).
func Openable(h *Header) error {
	const opens = "lifeboat opens aes in xts-plain64, xts-plain and LUKS1's cbc-essiv:sha256, cbc-plain64 and cbc-plain; twofish and camellia in xts"
	if h.Version == 1 {
		if (h.Cipher == "aes" && ownModes[h.Mode]) || (libCiphers[h.Cipher] && h.Mode == "xts-plain64") {
			return nil
		}
		return fmt.Errorf("%w: %s (%s)", ErrCannotOpen, esc(h.Encryption), opens)
	}
	var areas []string
	for _, s := range h.Slots {
		if slotOpenable(s) {
			return nil
		}
		areas = append(areas, esc(s.Area))
	}
	if len(areas) == 0 {
		return nil // no keyslot: Unseal says so
	}
	return fmt.Errorf("%w: keyslots in %s (%s)", ErrCannotOpen, strings.Join(slices.Compact(areas), ", "), opens)
}

// slotOpenable: the LUKS library decrypts a LUKS2 keyslot's material in
// XTS of the ciphers it knows, whatever the IV name.
func slotOpenable(s Slot) bool {
	p := strings.Split(s.Area, "-")
	return len(p) == 3 && libCiphers[p[0]] && p[1] == "xts"
}

// Unsealer runs key derivations one at a time: an argon2id slot may take a
// gibibyte, and two at once (two SSH sessions, or two volumes) would get the
// RAM image killed by the OOM killer.
type Unsealer struct {
	mu sync.Mutex
	// MemAvailable returns the bytes the kernel can still give us; nil
	// reads /proc/meminfo.
	MemAvailable func() int64
}

// Progress is told which slot is about to be tried.
type Progress func(v Volume, s Slot)

// Unsealed is a volume the passphrase opened.
type Unsealed struct {
	Volume Volume
	Slot   int
	Took   time.Duration
	Key    Mapper // holds the master key: drop it as soon as possible
	// Pass is the passphrase that opened it, for the hand-off to give
	// the OS (each volume may have its own); zeroed after the hand-off.
	Pass []byte
}

// Unseal tries pass on every usable keyslot of v, preferred first, and
// returns the first that opens. Slots bound to a token (TPM, FIDO2) and slots
// whose memory cost exceeds the free RAM are skipped, with the reason in the
// returned error when none opened.
func (u *Unsealer) Unseal(ctx context.Context, v Volume, pass []byte, progress Progress) (*Unsealed, error) {
	if v.Err != nil {
		return nil, v.Err
	}
	if err := Openable(v.Header); err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	open, tokenSlots, done, err := opener(v)
	if err != nil {
		return nil, err
	}
	defer done()
	var skipped []string
	tried := 0
	for _, s := range v.Header.Slots {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch {
		case s.Priority == 0:
			skipped = append(skipped, fmt.Sprintf("slot %d is marked 'ignore'", s.ID))
			continue
		case tokenSlots[s.ID]:
			skipped = append(skipped, fmt.Sprintf("slot %d belongs to a token", s.ID))
			continue
		case v.Header.Version == 2 && !slotOpenable(s):
			skipped = append(skipped, fmt.Sprintf("slot %d's key material is in %s, which lifeboat cannot decrypt", s.ID, esc(s.Area)))
			continue
		case s.MemoryKiB > 0 && int64(s.MemoryKiB)*1024 > u.memAvailable()*9/10:
			skipped = append(skipped, fmt.Sprintf("slot %d needs %d MiB and only %d MiB are free", s.ID, s.MemoryKiB/1024, u.memAvailable()>>20))
			continue
		}
		if progress != nil {
			progress(v, s)
		}
		tried++
		start := time.Now()
		key, err := open(s.ID, pass)
		took := time.Since(start)
		// Give the KDF's memory back before anything else runs: Go would
		// otherwise keep up to a gibibyte per try mapped.
		debug.FreeOSMemory()
		if err == nil {
			return &Unsealed{Volume: v, Slot: s.ID, Took: took, Key: key}, nil
		}
		if !errors.Is(err, luks.ErrPassphraseDoesNotMatch) && !errors.Is(err, ErrWrongPassphrase) {
			return nil, fmt.Errorf("%s slot %d: %w", v.Path, s.ID, err)
		}
	}
	if tried == 0 {
		return nil, fmt.Errorf("%s: no keyslot could be tried (%s)", v.Path, strings.Join(skipped, "; "))
	}
	return nil, ErrWrongPassphrase
}

// opener returns how v's keyslots are opened: by the LUKS library, or, for
// LUKS1 in a mode it does not open (ownModes), here; the slots bound to a
// token; and what to call when done.
func opener(v Volume) (open func(slot int, pass []byte) (Mapper, error), tokenSlots map[int]bool, done func(), err error) {
	if v.Header.Version == 1 && ownModes[v.Header.Mode] {
		f, err := os.Open(v.Path)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", v.Path, err)
		}
		h, err := readLUKS1(f)
		if err != nil {
			f.Close()
			return nil, nil, nil, fmt.Errorf("%s: %w", v.Path, err)
		}
		size, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			f.Close()
			return nil, nil, nil, fmt.Errorf("%s: %w", v.Path, err)
		}
		return func(slot int, pass []byte) (Mapper, error) {
			return unsealLUKS1(f, size, v.Path, h, slot, pass)
		}, map[int]bool{}, func() { f.Close() }, nil
	}
	d, err := luks.Open(v.Path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", v.Path, err)
	}
	tokenSlots = map[int]bool{}
	if toks, err := d.Tokens(); err == nil {
		for _, t := range toks {
			for _, s := range t.Slots {
				tokenSlots[s] = true
			}
		}
	}
	return func(slot int, pass []byte) (Mapper, error) {
		k, err := d.UnsealVolume(slot, pass)
		if err != nil {
			return nil, err
		}
		return k, nil
	}, tokenSlots, func() { d.Close() }, nil
}

func (u *Unsealer) memAvailable() int64 {
	if u.MemAvailable != nil {
		return u.MemAvailable()
	}
	return MemAvailable()
}

// MemAvailable reads MemAvailable from /proc/meminfo, in bytes; on error it
// returns a large number so that nothing is skipped for want of a reading.
func MemAvailable() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 1 << 62
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb * 1024
				}
			}
		}
	}
	return 1 << 62
}
