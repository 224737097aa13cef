package hwinfo

import (
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// nvmeAdminCmd is the kernel's struct nvme_passthru_cmd (72 bytes).
type nvmeAdminCmd struct {
	Opcode, Flags     uint8
	Rsvd1             uint16
	NSID, CDW2, CDW3  uint32
	Metadata, Addr    uint64
	MetadataLen       uint32
	DataLen           uint32
	CDW10, CDW11      uint32
	CDW12, CDW13      uint32
	CDW14, CDW15      uint32
	TimeoutMs, Result uint32
}

// nvmeIoctlAdminCmd is _IOWR('N', 0x41, struct nvme_passthru_cmd).
const nvmeIoctlAdminCmd = 0xC0484E41

var nvmeNamespace = regexp.MustCompile(`^(nvme[0-9]+)n[0-9]+$`)

// NVMeHealth reads an NVMe disk's SMART / health log (log page 2) through
// its controller's device, and says "ok" or what is wrong; "" for a disk
// that is not NVMe or whose log cannot be read.
func NVMeHealth(disk string) string {
	m := nvmeNamespace.FindStringSubmatch(disk)
	if m == nil {
		return ""
	}
	f, err := os.Open("/dev/" + m[1])
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, 512)
	cmd := nvmeAdminCmd{Opcode: 0x02, NSID: 0xffffffff, Addr: uint64(uintptr(unsafe.Pointer(&buf[0]))), DataLen: uint32(len(buf)),
		CDW10: uint32(len(buf)/4-1)<<16 | 0x02, TimeoutMs: 5000}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nvmeIoctlAdminCmd, uintptr(unsafe.Pointer(&cmd)))
	runtime.KeepAlive(buf)
	if errno != 0 {
		return ""
	}
	return SMARTHealth(buf)
}

// SMARTHealth reads NVMe's SMART / health log page: its critical warning
// bits, and the share of the rated endurance used.
func SMARTHealth(log []byte) string {
	if len(log) < 6 {
		return ""
	}
	var bad []string
	for bit, what := range []string{"spare capacity below its threshold", "temperature out of range", "reliability degraded",
		"read-only", "volatile memory backup failed", "persistent memory region read-only"} {
		if log[0]&(1<<bit) != 0 {
			bad = append(bad, what)
		}
	}
	if log[5] >= 100 {
		bad = append(bad, fmt.Sprintf("%d%% of its rated endurance used", log[5]))
	}
	if len(bad) == 0 {
		return "ok"
	}
	return "NVMe health: " + strings.Join(bad, ", ")
}
