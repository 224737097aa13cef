package rescue

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// TestInstalledFilesStayInTheRoot: links in the installed system that lead
// out of it (into the RAM image's own files) are not followed; links
// within it, as Debian's os-release is, are; a name that would rewrite the
// terminal is shown escaped.
func TestInstalledFilesStayInTheRoot(t *testing.T) {
	outside := t.TempDir()
	_ = os.WriteFile(filepath.Join(outside, "os-release"), []byte("PRETTY_NAME=\"the RAM image\"\n"), 0o644)
	_ = os.WriteFile(filepath.Join(outside, "login.defs"), []byte("ENCRYPT_METHOD MD5\n"), 0o644)
	dir := t.TempDir()
	_ = os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	_ = os.MkdirAll(filepath.Join(dir, "usr", "lib"), 0o755)
	_ = os.WriteFile(filepath.Join(dir, "etc", "shadow"), []byte("alice:$6$old$hash:19001:0:99999:7:::\n"), 0o640)
	_ = os.Symlink(filepath.Join(outside, "login.defs"), filepath.Join(dir, "etc", "login.defs"))
	_ = os.Symlink(filepath.Join(outside, "os-release"), filepath.Join(dir, "etc", "os-release"))
	if got := osName(dir); got != "" {
		t.Errorf("os-release through a link out of the root: %q", got)
	}
	_ = os.Remove(filepath.Join(dir, "etc", "os-release"))
	_ = os.WriteFile(filepath.Join(dir, "usr", "lib", "os-release"), []byte("PRETTY_NAME=\"Evil\x1b[2J OS\"\n"), 0o644)
	_ = os.Symlink("../usr/lib/os-release", filepath.Join(dir, "etc", "os-release"))
	name := osName(dir)
	if name != "Evil\x1b[2J OS" {
		t.Errorf("os-release through a link within the root: %q", name)
	}
	r := &Reset{User: "alice",
		FindRoot: func() (*Root, error) { return &Root{Device: "/dev/test", Dir: dir, Name: name}, nil },
		Report:   func(context.Context, audit.Code, map[string]string) error { return nil }}
	var out bytes.Buffer
	if code := r.Run(context.Background(), pipeRW{strings.NewReader("typed-password-1\n"), &out}, false); code != ExitOK {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	if strings.Contains(out.String(), "\x1b") || !strings.Contains(out.String(), `Found Evil\x1b[2J OS`) {
		t.Errorf("the name reached the terminal unescaped:\n%q", out.String())
	}
	if strings.Contains(strings.ToLower(out.String()), "md5") {
		t.Errorf("login.defs read through a link out of the root:\n%s", out.String())
	}
}
