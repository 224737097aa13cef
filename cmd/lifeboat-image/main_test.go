package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestImageSourcesListed: the Makefile rebuilds the RAM image when a file
// it is built from changes (IMGSRC). Every package of the module that the
// image links must be under one of IMGSRC's folders, or a change to it
// would leave a stale image for the end-to-end test.
func TestImageSourcesListed(t *testing.T) {
	root, _ := filepath.Abs("../..")
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^IMGSRC\s*:=\s*\$\(shell find (.*?) -name`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("no IMGSRC := $(shell find ... -name ...) line in the Makefile")
	}
	dirs := strings.Fields(string(m[1]))
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./cmd/lifeboat-init", "./cmd/lifeboat-image")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, _ := filepath.Rel(root, dir)
		listed := false
		for _, d := range dirs {
			if rel == d || strings.HasPrefix(rel, d+"/") {
				listed = true
			}
		}
		if !listed {
			t.Errorf("the image links %s, which IMGSRC in the Makefile does not list", rel)
		}
	}
}
