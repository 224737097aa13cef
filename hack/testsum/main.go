package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

// own matches a line a test logged itself: "    file_test.go:123: ...".
var own = regexp.MustCompile(`^\s+\S+_test\.go:\d+: `)

const (
	perTest = 12  // lines kept of each failed test
	width   = 400 // characters kept of each line
)

// summary collects the failed tests' own lines.
type summary struct {
	lines  map[string][]string // test → its own lines, as they came
	failed []string            // failed tests, in order
	closes []string            // the packages' closing lines
}

func (s *summary) add(e event) {
	key := e.Package + " " + e.Test
	switch {
	case e.Action == "output" && e.Test != "" && own.MatchString(e.Output):
		l := strings.TrimRight(e.Output, "\n")
		if len(l) > width {
			l = l[:width] + "…"
		}
		s.lines[key] = append(s.lines[key], l)
	case e.Action == "fail" && e.Test != "":
		s.failed = append(s.failed, key)
	case (e.Action == "fail" || e.Action == "pass" || e.Action == "skip") && e.Test == "":
		word := map[string]string{"fail": "FAIL", "pass": "ok", "skip": "ok"}[e.Action]
		s.closes = append(s.closes, fmt.Sprintf("%s\t%s\t%.3fs", word, e.Package, e.Elapsed))
	}
}

func (s *summary) write(w io.Writer) {
	if len(s.failed) > 0 {
		fmt.Fprintln(w, "\n=== why they failed (each failed test's own lines, the last ones kept):")
		for _, key := range s.failed {
			l := s.lines[key]
			if len(l) == 0 {
				continue // a parent that failed through its subtests
			}
			fmt.Fprintf(w, "--- %s\n", strings.TrimSpace(key[strings.Index(key, " ")+1:]))
			if len(l) > perTest {
				fmt.Fprintf(w, "    (%d earlier lines left out)\n", len(l)-perTest)
				l = l[len(l)-perTest:]
			}
			for _, x := range l {
				fmt.Fprintln(w, x)
			}
		}
	}
	for _, c := range s.closes {
		fmt.Fprintln(w, c)
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "usage: testsum go test -json [flags] [packages]")
		return 2
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintf(stderr, "testsum: %v\n", err)
		return 2
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "testsum: %v\n", err)
		return 2
	}
	s := &summary{lines: map[string][]string{}}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Action == "" {
			fmt.Fprintln(stdout, sc.Text()) // not test2json: a build error, say
			continue
		}
		if e.Action == "output" {
			fmt.Fprint(stdout, e.Output)
		}
		s.add(e)
	}
	err = cmd.Wait()
	s.write(stdout)
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		fmt.Fprintf(stderr, "testsum: %v\n", err)
		return 2
	}
	return 0
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }
