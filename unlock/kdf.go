package unlock

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/lifeboat-boot/lifeboat/pxe/term"
)

// Slot describes one active keyslot's key derivation, read from the header
// so that the prompt can say what is about to happen and how costly it is.
type Slot struct {
	ID         int
	KDF        string // pbkdf2, argon2i, argon2id
	Hash       string // pbkdf2 only
	Iterations int    // pbkdf2 iterations, or argon2 time cost
	MemoryKiB  int    // argon2 only
	Threads    int    // argon2 only
	Priority   int    // LUKS2: 0 ignore, 1 normal, 2 prefer
	// Area is the cipher of the slot's key material (LUKS2; a LUKS1
	// volume's is the header's), as on disk: escape it before showing.
	Area string
}

func (s Slot) String() string {
	if s.MemoryKiB > 0 {
		return fmt.Sprintf("%s, %d MiB, %d passes", term.Clean(s.KDF), s.MemoryKiB/1024, s.Iterations)
	}
	return fmt.Sprintf("%s-%s, %d iterations", term.Clean(s.KDF), term.Clean(s.Hash), s.Iterations)
}

var luksMagic = []byte("LUKS\xba\xbe")

// Header is what the prompt shows of a LUKS header.
type Header struct {
	Version int
	UUID    string
	Label   string // LUKS2's label (cryptsetup --label), as on disk: escape it before showing
	// Encryption is the data's cipher spec, aes-xts-plain64; for LUKS1
	// also as Cipher (aes) and Mode (cbc-essiv:sha256), which decide how
	// its keyslots are opened.
	Encryption   string
	Cipher, Mode string
	Slots        []Slot // active keyslots, preferred first
}

// ErrNotLUKS means the device carries no LUKS header.
var ErrNotLUKS = errors.New("no LUKS header")

// ReadHeader parses the parts of a LUKS1 or LUKS2 header that the prompt
// needs. It reads at most the header area, checks every length and offset,
// and returns an error for anything malformed.
func ReadHeader(r io.ReaderAt) (*Header, error) {
	var hdr [592]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return nil, fmt.Errorf("read LUKS header: %w", err)
	}
	if !bytes.Equal(hdr[:6], luksMagic) {
		return nil, ErrNotLUKS
	}
	switch v := binary.BigEndian.Uint16(hdr[6:8]); v {
	case 1:
		return parseLUKS1(hdr[:])
	case 2:
		return parseLUKS2(r, hdr[:])
	default:
		return nil, fmt.Errorf("LUKS version %d is not supported", v)
	}
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func parseLUKS1(hdr []byte) (*Header, error) {
	h := &Header{Version: 1, UUID: cstr(hdr[168:208]), Cipher: cstr(hdr[8:40]), Mode: cstr(hdr[40:72])}
	h.Encryption = h.Cipher + "-" + h.Mode
	hash := cstr(hdr[72:104])
	for i := 0; i < 8; i++ {
		ks := hdr[208+48*i : 208+48*(i+1)]
		if binary.BigEndian.Uint32(ks[0:4]) != 0x00AC71F3 { // LUKS_KEY_ENABLED
			continue
		}
		h.Slots = append(h.Slots, Slot{ID: i, KDF: "pbkdf2", Hash: hash, Iterations: int(binary.BigEndian.Uint32(ks[4:8])), Priority: 1})
	}
	return h, nil
}

const maxLUKS2JSON = 4 << 20 // the largest metadata area cryptsetup makes

func parseLUKS2(r io.ReaderAt, hdr []byte) (*Header, error) {
	hdrSize := binary.BigEndian.Uint64(hdr[8:16])
	if hdrSize < 4096+2 || hdrSize-4096 > maxLUKS2JSON {
		return nil, fmt.Errorf("LUKS2 header size %d is out of range", hdrSize)
	}
	h := &Header{Version: 2, UUID: cstr(hdr[168:208]), Label: cstr(hdr[24:72])}
	js := make([]byte, hdrSize-4096)
	if _, err := r.ReadAt(js, 4096); err != nil {
		return nil, fmt.Errorf("read LUKS2 metadata: %w", err)
	}
	js = bytes.TrimRight(js, "\x00")
	var meta struct {
		Segments map[string]struct {
			Encryption string `json:"encryption"`
		} `json:"segments"`
		Keyslots map[string]struct {
			Type     string `json:"type"`
			Priority *int   `json:"priority"`
			Area     struct {
				Encryption string `json:"encryption"`
			} `json:"area"`
			KDF struct {
				Type       string `json:"type"`
				Hash       string `json:"hash"`
				Iterations int    `json:"iterations"`
				Time       int    `json:"time"`
				Memory     int    `json:"memory"`
				CPUs       int    `json:"cpus"`
			} `json:"kdf"`
		} `json:"keyslots"`
	}
	if err := json.Unmarshal(js, &meta); err != nil {
		return nil, fmt.Errorf("LUKS2 metadata is not valid JSON: %w", err)
	}
	if seg, ok := meta.Segments["0"]; ok {
		h.Encryption = seg.Encryption
	}
	for id, ks := range meta.Keyslots {
		n, err := strconv.Atoi(id)
		if err != nil || n < 0 || n > 31 {
			return nil, fmt.Errorf("LUKS2 keyslot id %q is invalid", id)
		}
		s := Slot{ID: n, KDF: ks.KDF.Type, Hash: ks.KDF.Hash, Priority: 1, Area: ks.Area.Encryption}
		if ks.Priority != nil {
			s.Priority = *ks.Priority
		}
		if s.KDF == "pbkdf2" {
			s.Iterations = ks.KDF.Iterations
		} else {
			s.Iterations, s.MemoryKiB, s.Threads = ks.KDF.Time, ks.KDF.Memory, ks.KDF.CPUs
		}
		h.Slots = append(h.Slots, s)
	}
	sort.Slice(h.Slots, func(i, j int) bool {
		if h.Slots[i].Priority != h.Slots[j].Priority {
			return h.Slots[i].Priority > h.Slots[j].Priority
		}
		return h.Slots[i].ID < h.Slots[j].ID
	})
	return h, nil
}
