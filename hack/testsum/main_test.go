package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSummary runs a real failing go test through testsum: the end of its
// output names the failed test and its message, not the dump before it,
// and the exit status is go test's.
func TestSummary(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module x\n\ngo 1.22\n",
		"x_test.go": `package x

import "testing"

func TestOK(t *testing.T) {}

func TestBad(t *testing.T) {
	t.Run("inner", func(t *testing.T) {
		t.Logf("console:\nline one\nline two")
		t.Fatalf("shell: exit 255")
	})
}
`,
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, errs bytes.Buffer
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	code := run([]string{"go", "test", "-json", "-count=1", "."}, &out, &errs)
	_ = os.Chdir(wd)
	if code != 1 {
		t.Errorf("exit %d, want go test's 1\n%s%s", code, out.String(), errs.String())
	}
	_, tail, ok := strings.Cut(out.String(), "=== why they failed")
	if !ok {
		t.Fatalf("no summary:\n%s", out.String())
	}
	for _, want := range []string{"--- TestBad/inner", "x_test.go:10: shell: exit 255", "FAIL\tx\t"} {
		if !strings.Contains(tail, want) {
			t.Errorf("summary lacks %q:\n%s", want, tail)
		}
	}
	if strings.Contains(tail, "line two") || strings.Contains(tail, "--- TestOK") {
		t.Errorf("summary holds more than the failures:\n%s", tail)
	}
	if !strings.Contains(out.String(), "line two") {
		t.Errorf("the full output lost the dump:\n%s", out.String())
	}
}
