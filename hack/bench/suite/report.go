package main

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"
)

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

// section is one comparison's part of the report.
type section struct {
	title  string
	intro  string
	header []string
	rows   [][]string
	notes  []string
}

func (s section) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s\n\n%s\n\n", s.title, s.intro)
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(s.header, " | "), strings.Repeat("---|", len(s.header)))
	for _, r := range s.rows {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(r, " | "))
	}
	for _, n := range s.notes {
		fmt.Fprintf(&b, "\n%s\n", n)
	}
	return b.String() + "\n"
}

func (b *bench) add(s section) {
	fmt.Print(s.String())
	b.sections = append(b.sections, s.String())
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func (b *bench) report() string {
	commit, _ := exec.Command("git", "-C", b.root, "rev-parse", "--short", "HEAD").Output()
	dirty, _ := exec.Command("git", "-C", b.root, "status", "--porcelain", "--untracked-files=no").Output()
	c := strings.TrimSpace(string(commit))
	if len(dirty) > 0 {
		c += " (with uncommitted changes)"
	}
	var s strings.Builder
	fmt.Fprintf(&s, "# lifeboat benchmarks\n\nMeasured by `make bench` on %s, commit %s, on %s. %d A/B round(s) per comparison; medians. Ratios are lifeboat / peer. These are benchmarks, not tests.\n\n",
		b.started.UTC().Format("2006-01-02 15:04 MST"), c, machine(), b.rounds)
	for _, sec := range b.sections {
		s.WriteString(sec)
	}
	return s.String()
}
