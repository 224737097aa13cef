package unlock

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"golang.org/x/crypto/pbkdf2"
	"golang.org/x/crypto/xts"
)

// LUKS1 volumes in the modes the LUKS library does not open: CBC
// (aes-cbc-essiv:sha256 was cryptsetup's LUKS1 default for years, and
// servers installed then are still in racks) and XTS with the 32-bit
// "plain" IV. These keyslots are opened here, after the LUKS1 on-disk
// format: PBKDF2 of the passphrase, the key material decrypted sector by
// sector, the anti-forensic split merged, the result checked against the
// header's digest.

// ownModes are the LUKS1 cipher modes (of AES) opened here.
var ownModes = map[string]bool{"cbc-essiv:sha256": true, "cbc-plain": true, "cbc-plain64": true, "xts-plain": true}

// luks1Header is what a keyslot's unsealing reads of a LUKS1 header.
type luks1Header struct {
	cipher, mode, hash      string
	payloadOffset, keyBytes uint32
	mkDigest                [20]byte
	mkDigestSalt            [32]byte
	mkDigestIter            uint32
	uuid                    string
	slots                   [8]luks1Slot
}

type luks1Slot struct {
	active         bool
	iterations     uint32
	salt           [32]byte
	materialOffset uint32 // in 512-byte sectors
	stripes        uint32
}

func readLUKS1(r io.ReaderAt) (*luks1Header, error) {
	var b [592]byte
	if _, err := r.ReadAt(b[:], 0); err != nil {
		return nil, fmt.Errorf("read LUKS header: %w", err)
	}
	if !bytes.Equal(b[:6], luksMagic) || binary.BigEndian.Uint16(b[6:8]) != 1 {
		return nil, errors.New("not a LUKS1 header")
	}
	h := &luks1Header{cipher: cstr(b[8:40]), mode: cstr(b[40:72]), hash: cstr(b[72:104]),
		payloadOffset: binary.BigEndian.Uint32(b[104:108]), keyBytes: binary.BigEndian.Uint32(b[108:112]),
		mkDigestIter: binary.BigEndian.Uint32(b[164:168]), uuid: cstr(b[168:208])}
	copy(h.mkDigest[:], b[112:132])
	copy(h.mkDigestSalt[:], b[132:164])
	for i := range h.slots {
		ks := b[208+48*i : 208+48*(i+1)]
		s := &h.slots[i]
		s.active = binary.BigEndian.Uint32(ks[0:4]) == 0x00AC71F3
		s.iterations = binary.BigEndian.Uint32(ks[4:8])
		copy(s.salt[:], ks[8:40])
		s.materialOffset = binary.BigEndian.Uint32(ks[40:44])
		s.stripes = binary.BigEndian.Uint32(ks[44:48])
	}
	return h, nil
}

func luks1Hash(name string) (func() hash.Hash, error) {
	switch strings.ToLower(name) {
	case "sha1":
		return sha1.New, nil
	case "sha256":
		return sha256.New, nil
	case "sha512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("LUKS1 hash %q is not supported (sha1, sha256 and sha512 are)", name)
}

// sectorIV returns the IV function of a CBC mode for key.
func sectorIV(mode string, key []byte) (func(sector uint64, iv []byte), error) {
	switch mode {
	case "cbc-plain":
		return func(n uint64, iv []byte) { clear(iv); binary.LittleEndian.PutUint32(iv, uint32(n)) }, nil
	case "cbc-plain64":
		return func(n uint64, iv []byte) { clear(iv); binary.LittleEndian.PutUint64(iv, n) }, nil
	case "cbc-essiv:sha256":
		salt := sha256.Sum256(key)
		essiv, err := aes.NewCipher(salt[:])
		if err != nil {
			return nil, err
		}
		return func(n uint64, iv []byte) {
			clear(iv)
			binary.LittleEndian.PutUint64(iv, n)
			essiv.Encrypt(iv, iv)
		}, nil
	}
	return nil, fmt.Errorf("LUKS1 cipher mode %q is not supported", mode)
}

// decryptSectors decrypts data (whole 512-byte sectors, the first being
// sector 0) in place with key in mode.
func decryptSectors(data, key []byte, mode string) error {
	if mode == "xts-plain" {
		c, err := xts.NewCipher(aes.NewCipher, key)
		if err != nil {
			return err
		}
		for i := 0; i*512 < len(data); i++ {
			sector := data[i*512 : (i+1)*512]
			c.Decrypt(sector, sector, uint64(uint32(i))) // plain: the sector number's low 32 bits
		}
		return nil
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	ivOf, err := sectorIV(mode, key)
	if err != nil {
		return err
	}
	iv := make([]byte, aes.BlockSize)
	for i := 0; i*512 < len(data); i++ {
		ivOf(uint64(i), iv)
		sector := data[i*512 : (i+1)*512]
		cipher.NewCBCDecrypter(block, iv).CryptBlocks(sector, sector)
	}
	return nil
}

// afMerge joins LUKS's anti-forensic split of a key of n bytes over
// stripes stripes.
func afMerge(src []byte, n, stripes int, h func() hash.Hash) []byte {
	d := make([]byte, n)
	for i := 0; i < stripes-1; i++ {
		for j := range d {
			d[j] ^= src[i*n+j]
		}
		diffuse(d, h)
	}
	key := make([]byte, n)
	for j := range key {
		key[j] = d[j] ^ src[(stripes-1)*n+j]
	}
	clear(d)
	return key
}

// diffuse hashes d in place, one digest-sized block at a time, each block
// prefixed with its big-endian index.
func diffuse(d []byte, newHash func() hash.Hash) {
	h := newHash()
	size := h.Size()
	var idx [4]byte
	for i := 0; i*size < len(d); i++ {
		end := min((i+1)*size, len(d))
		h.Reset()
		binary.BigEndian.PutUint32(idx[:], uint32(i))
		h.Write(idx[:])
		h.Write(d[i*size : end])
		copy(d[i*size:end], h.Sum(nil))
	}
}

// unsealLUKS1 opens keyslot id of a LUKS1 volume in one of ownModes with
// pass, and returns the volume key for device-mapper; ErrWrongPassphrase if
// the passphrase does not open it.
func unsealLUKS1(f io.ReaderAt, devSize int64, path string, h *luks1Header, id int, pass []byte) (*MasterKey, error) {
	if id < 0 || id >= len(h.slots) || !h.slots[id].active {
		return nil, fmt.Errorf("keyslot %d is not active", id)
	}
	s := h.slots[id]
	if h.cipher != "aes" {
		return nil, fmt.Errorf("LUKS1 cipher %q is not supported in mode %s (aes is)", h.cipher, h.mode)
	}
	if h.mode == "xts-plain" && h.keyBytes != 32 && h.keyBytes != 64 {
		return nil, fmt.Errorf("LUKS1 key size %d bytes is not an AES-XTS key", h.keyBytes)
	}
	if h.mode != "xts-plain" && h.keyBytes != 16 && h.keyBytes != 24 && h.keyBytes != 32 {
		return nil, fmt.Errorf("LUKS1 key size %d bytes is not an AES key", h.keyBytes)
	}
	if s.stripes == 0 || s.stripes > 4000 || s.iterations == 0 {
		return nil, fmt.Errorf("keyslot %d: stripes %d, iterations %d: malformed", id, s.stripes, s.iterations)
	}
	newHash, err := luks1Hash(h.hash)
	if err != nil {
		return nil, err
	}
	n := int(h.keyBytes)
	material := make([]byte, (n*int(s.stripes)+511)/512*512)
	defer clear(material)
	if _, err := f.ReadAt(material, int64(s.materialOffset)*512); err != nil {
		return nil, fmt.Errorf("keyslot %d: read key material: %w", id, err)
	}
	slotKey := pbkdf2.Key(pass, s.salt[:], int(s.iterations), n, newHash)
	defer clear(slotKey)
	if err := decryptSectors(material, slotKey, h.mode); err != nil {
		return nil, err
	}
	key := afMerge(material, n, int(s.stripes), newHash)
	digest := pbkdf2.Key(key, h.mkDigestSalt[:], int(h.mkDigestIter), 20, newHash)
	if !bytes.Equal(digest, h.mkDigest[:]) {
		clear(key)
		return nil, ErrWrongPassphrase
	}
	offset := uint64(h.payloadOffset) * 512
	if uint64(devSize) < offset {
		clear(key)
		return nil, fmt.Errorf("device is %d bytes, smaller than the LUKS1 payload offset %d", devSize, offset)
	}
	return &MasterKey{Device: path, UUID: h.uuid, LuksType: "LUKS1", Encryption: h.cipher + "-" + h.mode,
		Offset: offset, Size: uint64(devSize) - offset, SectorSize: 512, key: key}, nil
}
