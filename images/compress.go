package images

import (
	"fmt"
	"os"
	"os/exec"
)

// CompressInitramfs writes src (a cpio archive) to dst compressed with
// zstd, which Debian's kernel reads (CONFIG_RD_ZSTD): the bytes a
// rack-wide reboot moves.
//
// The output is padded with zeros to a multiple of 4 bytes. The agent's
// archive follows it in memory, and the kernel reads a cpio archive after
// a compressed one only at an offset that is a multiple of 4 (it skips
// the zeros). iPXE on BIOS aligns each initrd itself; the kernel's EFI
// stub, which loads them on UEFI, puts them end to end.
func CompressInitramfs(src, dst string) error {
	if b, err := exec.Command("zstd", "-q", "-f", "-19", "-T0", src, "-o", dst).CombinedOutput(); err != nil {
		return fmt.Errorf("zstd: %w\n%s (apt-get install zstd)", err, b)
	}
	return PadTo(dst, 4)
}

// PadTo appends zeros to the file at path up to a multiple of n bytes.
func PadTo(path string, n int64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if r := fi.Size() % n; r != 0 {
		return os.Truncate(path, fi.Size()+n-r)
	}
	return nil
}
