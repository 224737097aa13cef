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
