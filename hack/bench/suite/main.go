// Command suite runs lifeboat's benchmarks side by side with the tools
// providers run today, on the same machine in one run, and writes the
// table of medians and ratios to BENCHMARKS.md:
//
//  1. DHCP: DORA exchanges per second with perfdhcp at rising rates until
//     more than 2.5% of exchanges are lost (Kea's method), 10,000
//     reservations: lifeboatd vs dnsmasq vs Kea (memfile); p50/p99 latency
//     at a fixed rate with a DORA probe of our own.
//  2. Boot storm: 200 simulated hosts start at once, each doing DHCP (as
//     PXE, then as iPXE), a TFTP fetch of undionly.kpxe, the iPXE script,
//     and the real kernel and initramfs over HTTP, checked by sha256:
//     lifeboatd vs dnsmasq (DHCP + TFTP) with nginx (HTTP), and a plain TCP
//     copy of the same bytes as the limit.
//  3. TFTP: undionly.kpxe and a 10 MB file, blksize 1468, with curl:
//     lifeboatd vs dnsmasq vs tftpd-hpa.
//  4. Unlock: passphrase to key on one LUKS2 argon2id header (1 GiB, and
//     cryptsetup's default): lifeboat's unlock code vs cryptsetup open
//     --test-passphrase; time and peak RSS.
//  5. Power-on to SSH-ready in QEMU (BIOS, UEFI) vs the same kernel and
//     boot path with a busybox initramfs that prints one line.
//
// Every comparison runs A/B/A/B (-rounds) on the same work; every server
// runs in a network namespace of its own and the clients in another, so no
// traffic leaves the machine. These are benchmarks, not tests: nothing
// asserts a time. Run as root: make bench.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	// The suite re-executes itself inside the client namespace for the
	// client roles.
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "role-") {
		if err := runRole(os.Args[1], os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[1], err)
			os.Exit(1)
		}
		return
	}
	only := flag.String("only", "dhcp,storm,tftp,unlock,boot", "comparisons to run, comma-separated")
	rounds := flag.Int("rounds", 2, "A/B rounds of each comparison (the median is reported)")
	out := flag.String("out", "BENCHMARKS.md", "where to write the report (\"\" for stdout only); a partial run (-only) writes it only if -out is given")
	flag.Parse()
	outSet := false
	flag.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })
	if !outSet && len(strings.Split(*only, ",")) < 5 {
		*out = "" // a partial run must not replace the whole report
	}
	root, err := os.Getwd()
	if err != nil {
		fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "build", "image", "manifest.json")); err != nil {
		fatal(fmt.Errorf("no RAM image in build/image: run make image (make bench does)"))
	}
	b := &bench{root: root, rounds: max(1, *rounds), started: time.Now()}
	defer b.cleanup()
	// Interrupted, it still takes its servers and namespaces down.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		b.stopAll()
		b.cleanup()
		os.Exit(130)
	}()
	want := strings.Split(*only, ",")
	for _, c := range []struct {
		name string
		run  func() error
	}{
		{"dhcp", b.dhcp}, {"storm", b.storm}, {"tftp", b.tftp}, {"unlock", b.unlock}, {"boot", b.boot},
	} {
		if !slices.Contains(want, c.name) {
			continue
		}
		fmt.Printf("== %s\n", c.name)
		if err := c.run(); err != nil {
			b.cleanup()
			fatal(fmt.Errorf("%s: %w", c.name, err))
		}
	}
	report := b.report()
	fmt.Print(report)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
			fatal(err)
		}
		fmt.Printf("written to %s\n", *out)
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "bench: %v\n", err)
	os.Exit(1)
}
