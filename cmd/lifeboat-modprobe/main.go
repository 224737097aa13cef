package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/lifeboat-boot/lifeboat/initramfs/coldplug"
)

func main() {
	quiet := flag.Bool("q", false, "say nothing when a module cannot be loaded")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: lifeboat-modprobe [-q] [--] NAME|ALIAS\n\nloads a module, or the modules an alias names, with what they depend on")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	l, err := coldplug.ForMachine(nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lifeboat-modprobe: %v\n", err)
		os.Exit(1)
	}
	var errs []error
	mods := l.Index.Resolve(flag.Arg(0))
	for _, m := range mods {
		if err := l.Load(m); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
		}
	}
	// Like modprobe: success if any of the alias's modules loaded.
	if len(errs) == len(mods) {
		if !*quiet {
			fmt.Fprintf(os.Stderr, "lifeboat-modprobe: %q: %v\n", flag.Arg(0), errors.Join(errs...))
		}
		os.Exit(1)
	}
}
