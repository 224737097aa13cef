package unlock

import (
	"fmt"
	"strings"

	"github.com/anatol/devmapper.go"
)

// Mapper is an opened volume that device-mapper can map (a rescue boot
// opens the volumes in place): *luks.Volume for what the LUKS library
// opens, *MasterKey for the LUKS1 CBC volumes opened here.
type Mapper interface {
	SetupMapper(name string) error
}

// MasterKey is an opened volume's key and where its data lies.
type MasterKey struct {
	Device, UUID, LuksType string
	Encryption             string // dm-crypt's cipher spec: aes-cbc-essiv:sha256
	Offset, Size           uint64 // of the data, in bytes
	SectorSize             uint64
	key                    []byte
}

// Wipe zeroes the key; the mapping, once made, holds its own copy.
func (k *MasterKey) Wipe() { clear(k.key) }

// SetupMapper maps the volume's plaintext as /dev/mapper/NAME.
func (k *MasterKey) SetupMapper(name string) error {
	table := devmapper.CryptTable{Length: k.Size, BackendDevice: k.Device, BackendOffset: k.Offset,
		Encryption: k.Encryption, Key: k.key, SectorSize: k.SectorSize}
	uuid := fmt.Sprintf("CRYPT-%v-%v-%v", k.LuksType, strings.ReplaceAll(k.UUID, "-", ""), name) // as cryptsetup names it
	return devmapper.CreateAndLoad(name, uuid, 0, table)
}
