package shadow

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const sample = "root:$y$j9T$old$hash:19000:0:99999:7:::\n" +
	"daemon:*:19000:0:99999:7:::\n" +
	"alice:$6$salt$oldhash:19001:0:99999:7:::\n" +
	"bob:!:19002::::::\n"

func TestReplace(t *testing.T) {
	for _, tc := range []struct {
		name, in, user, want string
		err                  error
	}{
		{"middle line", sample, "alice", strings.Replace(sample, "$6$salt$oldhash", "NEW", 1), nil},
		{"first line", sample, "root", strings.Replace(sample, "$y$j9T$old$hash", "NEW", 1), nil},
		{"locked account", sample, "bob", strings.Replace(sample, "bob:!:", "bob:NEW:", 1), nil},
		{"no final newline", "alice:x:1::::::", "alice", "alice:NEW:1::::::", nil},
		{"two fields, no newline", "alice:x", "alice", "alice:NEW", nil},
		{"CRLF kept", "alice:x:1\r\nbob:y:2\r\n", "bob", "alice:x:1\r\nbob:NEW:2\r\n", nil},
		{"prefix is not the user", "alicex:h:1\nalice:h:2\n", "alice", "alicex:h:1\nalice:NEW:2\n", nil},
		{"missing", sample, "mallory", "", ErrNoUser},
		{"twice", sample + "alice:x:1\n", "alice", "", ErrTwoLines},
		{"name only", "alice\n", "alice", "", ErrNoUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Replace([]byte(tc.in), tc.user, "NEW")
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if string(c.data) != tc.want {
				t.Errorf("got\n%q\nwant\n%q", c.data, tc.want)
			}
			if c.Before == c.After {
				t.Error("digests equal")
			}
		})
	}
	for _, bad := range []struct{ user, hash string }{{"", "h"}, {"a:b", "h"}, {"alice", ""}, {"alice", "a:b"}, {"alice", "a\nb"}} {
		if _, err := Replace([]byte(sample), bad.user, bad.hash); err == nil {
			t.Errorf("Replace(%q, %q) accepted", bad.user, bad.hash)
		}
	}
}

func FuzzReplace(f *testing.F) {
	f.Add([]byte(sample), "alice", "$y$j9T$x$y")
	f.Add([]byte("a:b"), "a", "c")
	f.Fuzz(func(t *testing.T, in []byte, user, hash string) {
		c, err := Replace(in, user, hash)
		if err != nil {
			return
		}
		// Only the one field changed: putting the old one back gives
		// the input again.
		back, err := Replace(c.data, user, c.Old)
		if c.Old != "" && (err != nil || !bytes.Equal(back.data, in)) {
			t.Fatalf("not reversible: %q -> %q -> %v", in, c.data, err)
		}
	})
}

func TestChooseMethod(t *testing.T) {
	for _, tc := range []struct {
		defs, current, name string
		cost                int
	}{
		{"", "", Yescrypt, 5},
		{"# ENCRYPT_METHOD SHA512\n", "", Yescrypt, 5},
		{"ENCRYPT_METHOD SHA512\n", "$y$j9T$a$b", SHA512, 5000},
		{"ENCRYPT_METHOD SHA512\nSHA_CRYPT_MIN_ROUNDS 10000\n", "", SHA512, 10000},
		{"ENCRYPT_METHOD SHA512\nSHA_CRYPT_MAX_ROUNDS 20\n", "", SHA512, 1000},
		{"ENCRYPT_METHOD YESCRYPT\nYESCRYPT_COST_FACTOR 7\n", "", Yescrypt, 7},
		{"ENCRYPT_METHOD yescrypt\nYESCRYPT_COST_FACTOR 99\n", "", Yescrypt, 11},
		{"ENCRYPT_METHOD MD5\n", "$6$x$y", SHA512, 5000},
		{"", "$y$j9T$a$b", Yescrypt, 5},
	} {
		m := ChooseMethod([]byte(tc.defs), tc.current)
		if m.Name != tc.name || m.Cost != tc.cost || m.Why == "" {
			t.Errorf("ChooseMethod(%q, %q) = %+v, want %s/%d", tc.defs, tc.current, m, tc.name, tc.cost)
		}
	}
}

// TestHashWithLibcrypt checks our hashes against the system's libcrypt
// (libxcrypt, through perl's crypt): what the installed OS's login uses.
func TestHashWithLibcrypt(t *testing.T) {
	if _, err := exec.LookPath("perl"); err != nil {
		t.Fatal("perl is needed to check hashes against libcrypt")
	}
	pass := []byte("correct horse: battery staple ü")
	for _, m := range []Method{{Name: Yescrypt, Cost: 5}, {Name: Yescrypt, Cost: 3}, {Name: SHA512, Cost: 5000}, {Name: SHA512, Cost: 12345}} {
		h, err := m.Hash(pass)
		if err != nil {
			t.Fatal(err)
		}
		// The password goes to perl on stdin, the hash as its setting.
		cmd := exec.Command("perl", "-e", `my $p = <STDIN>; chomp $p; print crypt($p, $ARGV[0])`, h)
		cmd.Stdin = bytes.NewReader(append(append([]byte{}, pass...), '\n'))
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != h {
			t.Errorf("%v: we made %q, libcrypt makes %q", m, h, out)
		}
		if ok, err := Verify(h, pass); !ok || err != nil {
			t.Errorf("%v: Verify(own hash) = %v, %v", m, ok, err)
		}
		if ok, _ := Verify(h, []byte("wrong")); ok {
			t.Errorf("%v: wrong password verifies", m)
		}
	}
	// And hashes libcrypt made verify with ours.
	for _, setting := range []string{"$6$saltsaltsalt$", "$6$rounds=7777$short$", "$y$j9T$abcdefghijklmnop$"} {
		cmd := exec.Command("perl", "-e", `my $p = <STDIN>; chomp $p; print crypt($p, $ARGV[0])`, setting)
		cmd.Stdin = bytes.NewReader(append(append([]byte{}, pass...), '\n'))
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := Verify(string(out), pass); !ok || err != nil {
			t.Errorf("libcrypt's %q does not verify: %v %v", out, ok, err)
		}
	}
}

func TestApplyKeepsMetadata(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shadow")
	if err := os.WriteFile(path, []byte(sample), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 0, 42); err != nil {
		t.Fatal(err)
	}
	label := []byte("system_u:object_r:shadow_t:s0\x00")
	// The SELinux label cannot be set without SELinux; a trusted. or
	// user. attribute shows every attribute is carried over.
	attr := "security.selinux"
	if err := unix.Lsetxattr(path, attr, label, 0); err != nil {
		attr = "trusted.lifeboat-test"
		if err := unix.Lsetxattr(path, attr, label, 0); err != nil {
			attr = "user.lifeboat-test"
			if err := unix.Lsetxattr(path, attr, label, 0); err != nil {
				t.Fatalf("no extended attributes on this file system: %v", err)
			}
		}
	}
	c, err := Replace([]byte(sample), "alice", "$6$new$hash")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(path); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != strings.Replace(sample, "$6$salt$oldhash", "$6$new$hash", 1) {
		t.Errorf("file now %q", got)
	}
	var st unix.Stat_t
	_ = unix.Stat(path, &st)
	if st.Mode&0o7777 != 0o640 || st.Uid != 0 || st.Gid != 42 {
		t.Errorf("mode %o uid %d gid %d, want 640 0 42", st.Mode&0o7777, st.Uid, st.Gid)
	}
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(path, attr, buf)
	if err != nil || !bytes.Equal(buf[:n], label) {
		t.Errorf("%s = %q, %v", attr, buf[:n], err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left files behind: %v", ents)
	}
	// A file changed since it was read is not overwritten.
	if err := c.Apply(path); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Errorf("stale change applied: %v", err)
	}
}

func TestGenerate(t *testing.T) {
	a, b := Generate(), Generate()
	if len(a) != 23 || bytes.Equal(a, b) || a[5] != '-' {
		t.Errorf("Generate() = %q, %q", a, b)
	}
}

// FuzzChooseMethod: an installed system's login.defs is outside input.
func FuzzChooseMethod(f *testing.F) {
	f.Add([]byte("ENCRYPT_METHOD SHA512\nSHA_CRYPT_MIN_ROUNDS 9\n"), "$6$x$y")
	f.Add([]byte("YESCRYPT_COST_FACTOR -4\nENCRYPT_METHOD YESCRYPT"), "")
	f.Fuzz(func(t *testing.T, defs []byte, current string) {
		m := ChooseMethod(defs, current)
		if (m.Name == Yescrypt && (m.Cost < 3 || m.Cost > 11)) || (m.Name == SHA512 && (m.Cost < 1000 || m.Cost > 999_999_999)) {
			t.Fatalf("ChooseMethod = %+v: cost out of range", m)
		}
	})
}
