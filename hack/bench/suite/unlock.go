package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/lifeboat-boot/lifeboat/unlock"
)

// benchPass is the benchmark's passphrase: not a secret, a fixture.
const benchPass = "correct horse battery staple, benchmark only"

// unlock times passphrase → key on one LUKS2 header: lifeboat's unlock code
// (this program, role-unlock, a process of its own) against cryptsetup open
// --test-passphrase, both reading the passphrase on stdin, with their peak
// RSS.
func (b *bench) unlock() error {
	dir, err := os.MkdirTemp("", "lifeboat-bench-luks")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	headers := []struct {
		name string
		args []string
	}{
		{"argon2id, 1 GiB, 4 passes, 4 lanes", []string{"--pbkdf", "argon2id", "--pbkdf-memory", "1048576", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "4"}},
		{"cryptsetup's default (benchmarked here)", nil},
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// Transparent huge pages: the RAM image's agent sets them to "always"
	// (unlock.UseHugePages); Debian's default, which an OS's initramfs
	// runs cryptsetup under, is "madvise". Both are measured under both,
	// and the machine's own setting is put back after.
	thp, err := os.ReadFile(unlock.THPPath)
	if err != nil {
		return fmt.Errorf("transparent huge pages: %w", err)
	}
	orig := "madvise"
	if i, j := bytes.IndexByte(thp, '['), bytes.IndexByte(thp, ']'); i >= 0 && j > i {
		orig = string(thp[i+1 : j])
	}
	defer os.WriteFile(unlock.THPPath, []byte(orig), 0o644)
	setTHP := func(mode string) error { return os.WriteFile(unlock.THPPath, []byte(mode), 0o644) }
	sec := section{
		title:  "Unlock: passphrase to key",
		intro:  "The same LUKS2 header, opened with the right passphrase on stdin by lifeboat's unlock code (pure Go, in a process of its own, as the RAM image runs it: transparent huge pages \"always\") and by `cryptsetup open --test-passphrase` (libargon2, no device mapping), under Debian's default THP mode (\"madvise\", as in an OS's initramfs) and under \"always\". Wall time of the process; RSS its peak. The last column is lifeboat's code without huge pages, as it was before this benchmark found the cause.",
		header: []string{"header", "lifeboat", "cryptsetup (madvise)", "lifeboat / it", "cryptsetup (always)", "lifeboat / it", "peak RSS lifeboat / cryptsetup", "lifeboat, 4 KiB pages"},
	}
	for i, h := range headers {
		img := filepath.Join(dir, fmt.Sprintf("luks%d.img", i))
		if err := os.WriteFile(img, nil, 0o600); err != nil {
			return err
		}
		if err := os.Truncate(img, 32<<20); err != nil {
			return err
		}
		args := append([]string{"luksFormat", "--batch-mode", "--type", "luks2", "--key-file=-"}, h.args...)
		format := exec.Command("cryptsetup", append(args, img)...)
		format.Stdin = bytes.NewReader([]byte(benchPass))
		if out, err := format.CombinedOutput(); err != nil {
			return fmt.Errorf("luksFormat: %v\n%s", err, out)
		}
		f, _ := os.Open(img)
		hdr, err := unlock.ReadHeader(f)
		f.Close()
		if err != nil {
			return err
		}
		slot := hdr.Slots[0].String()
		var lb, lbSmall, csDefault, csAlways, lbR, csR []float64
		for round := range max(b.rounds, 3) {
			measure := func(thp string, cmd *exec.Cmd, into *[]float64, rss *[]float64) error {
				if err := setTHP(thp); err != nil {
					return err
				}
				t, r, err := timeProc(cmd)
				if err != nil {
					return fmt.Errorf("%s: %w", cmd.Path, err)
				}
				*into = append(*into, t.Seconds())
				if rss != nil {
					*rss = append(*rss, float64(r))
				}
				return nil
			}
			if err := measure("madvise", exec.Command("cryptsetup", "open", "--test-passphrase", "--key-file=-", img), &csDefault, &csR); err != nil {
				return err
			}
			if err := measure("madvise", exec.Command(self, "role-unlock", "-keep-pages", img), &lbSmall, nil); err != nil {
				return err
			}
			if err := measure("always", exec.Command(self, "role-unlock", img), &lb, &lbR); err != nil {
				return err
			}
			if err := measure("always", exec.Command("cryptsetup", "open", "--test-passphrase", "--key-file=-", img), &csAlways, nil); err != nil {
				return err
			}
			fmt.Printf("  round %d %s: lifeboat %.2f s (4 KiB pages %.2f s), cryptsetup %.2f s (always %.2f s)\n", round+1, slot,
				lb[len(lb)-1], lbSmall[len(lbSmall)-1], csDefault[len(csDefault)-1], csAlways[len(csAlways)-1])
		}
		sec.rows = append(sec.rows, []string{h.name + " (" + slot + ")", fmt.Sprintf("%.2f s", median(lb)),
			fmt.Sprintf("%.2f s", median(csDefault)), ratio(median(lb), median(csDefault)),
			fmt.Sprintf("%.2f s", median(csAlways)), ratio(median(lb), median(csAlways)),
			fmt.Sprintf("%.0f / %.0f MiB", median(lbR)/1024, median(csR)/1024), fmt.Sprintf("%.2f s", median(lbSmall))})
	}
	sec.notes = append(sec.notes, "Goal: ≤ 1.0× cryptsetup. Found by profiling: nearly all of lifeboat's time is golang.org/x/crypto/argon2's block loop waiting on memory; with 4 KiB pages, most random reads of a reference block miss the TLB. The RAM image now runs with huge pages (unlock.UseHugePages), which the Go runtime cannot ask for one allocation. What remains is the block function itself: see the next table.")
	b.add(sec)
	return b.argon2Compute()
}

// argon2Compute times the argon2id block function alone, in cache (64 KiB,
// one lane, many passes: no memory stalls, no page faults), in the Go
// implementation luks.go uses and in libargon2 (Debian's argon2 tool, the
// reference code cryptsetup's comes from). Both must give the same tag.
func (b *bench) argon2Compute() error {
	const passes, kib = 20000, 64
	salt := "lifeboat-bench-salt"
	var goT, cT []float64
	var goTag, cTag string
	for range max(b.rounds, 3) {
		start := time.Now()
		tag := argon2.IDKey([]byte(benchPass), []byte(salt), passes, kib, 1, 32)
		goT = append(goT, time.Since(start).Seconds())
		goTag = hex.EncodeToString(tag)
		cmd := exec.Command("argon2", salt, "-id", "-t", fmt.Sprint(passes), "-k", fmt.Sprint(kib), "-p", "1", "-l", "32", "-r")
		cmd.Stdin = strings.NewReader(benchPass)
		start = time.Now()
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("argon2 (libargon2): %w", err)
		}
		cT = append(cT, time.Since(start).Seconds())
		cTag = strings.TrimSpace(string(out))
	}
	if goTag != cTag {
		return fmt.Errorf("argon2id tags differ: Go %s, libargon2 %s", goTag, cTag)
	}
	sec := section{
		title:  "Unlock: the argon2id block function alone",
		intro:  fmt.Sprintf("argon2id over %d KiB (in cache) for %d passes, one lane: %d block computations, with no memory stalls and no page faults. golang.org/x/crypto/argon2 (what luks.go derives keys with, in this process) against Debian's argon2 tool (libargon2, which Debian's cryptsetup is linked with); both gave the same tag.", kib, passes, passes*kib),
		header: []string{"implementation", "time", "per block", "lifeboat / it"},
	}
	g, c := median(goT), median(cT)
	sec.rows = append(sec.rows,
		[]string{"golang.org/x/crypto/argon2 (lifeboat)", fmt.Sprintf("%.3f s", g), fmt.Sprintf("%.0f ns", g*1e9/(passes*kib)), "1.00×"},
		[]string{"libargon2 (argon2 tool)", fmt.Sprintf("%.3f s", c), fmt.Sprintf("%.0f ns", c*1e9/(passes*kib)), ratio(g, c)})
	sec.notes = append(sec.notes, "This is the part of the unlock gap no setting can close: with memory out of the way, the Go block function (SSE, a block mixed into a temporary and then again into place) is this much slower than the C one. Closing it takes a faster argon2 for Go, which luks.go would have to use.")
	b.add(sec)
	return nil
}

// timeProc runs cmd with the passphrase on stdin and returns its wall
// time and peak RSS in KiB.
func timeProc(cmd *exec.Cmd) (time.Duration, int64, error) {
	cmd.Stdin = bytes.NewReader([]byte(benchPass))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("%v\n%s", err, out.String())
	}
	took := time.Since(start)
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if ru == nil {
		return took, 0, nil
	}
	return took, ru.Maxrss, nil
}

// roleUnlock opens the LUKS image named in args with the passphrase on
// stdin, as the RAM image does.
func roleUnlock(args []string) error {
	keep := len(args) == 2 && args[0] == "-keep-pages"
	if keep {
		args = args[1:]
	}
	if len(args) != 1 {
		return fmt.Errorf("usage: role-unlock [-keep-pages] IMAGE")
	}
	if !keep {
		if _, err := unlock.UseHugePages(unlock.THPPath); err != nil {
			return err
		}
	}
	pass, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
	if err != nil {
		return err
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	h, err := unlock.ReadHeader(f)
	f.Close()
	if err != nil {
		return err
	}
	_, err = (&unlock.Unsealer{}).Unseal(context.Background(), unlock.Volume{Path: args[0], Header: h}, pass, nil)
	return err
}
