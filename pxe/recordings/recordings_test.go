package recordings

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/lifeboat-boot/lifeboat/pxe/recordings/sealed"
)

func TestAppend(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	steps := []struct {
		off  int64
		data string
		err  error
		size int64
	}{
		{0, "header\n", nil, 7},
		{7, "[0.1,\"o\",\"a\"]\n", nil, 21},
		{7, "[0.1,\"o\",\"a\"]\n", nil, 21}, // a retry: stored once
		{7, "[0.1,\"o\",\"b\"]\n", ErrOffset, 21},
		{30, "gap", ErrOffset, 21},
		{21, "[0.2,\"o\",\"c\"]\n", nil, 35},
	}
	for i, st := range steps {
		n, err := s.Append("web-01", "b1", "shell-1", st.off, []byte(st.data))
		if !errors.Is(err, st.err) || n != st.size {
			t.Fatalf("step %d: %d, %v; want %d, %v", i, n, err, st.size, st.err)
		}
	}
	for _, bad := range [][3]string{{"../x", "b1", "s"}, {"web-01", "../b", "s"}, {"web-01", "b1", "a/b"}, {"web-01", "b1", ""}} {
		if _, err := s.Append(bad[0], bad[1], bad[2], 0, []byte("x")); err == nil {
			t.Errorf("Append(%q) accepted", bad)
		}
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].ID != "b1.shell-1" || list[0].Host != "web-01" || list[0].Size != 35 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	f, in, err := s.Open("b1.shell-1")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	if string(b) != "header\n[0.1,\"o\",\"a\"]\n[0.2,\"o\",\"c\"]\n" || in.Boot != "b1" {
		t.Errorf("read %q (%+v)", b, in)
	}
	if _, _, err := s.Open("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open(nope) = %v", err)
	}
	empty := &Store{Dir: t.TempDir() + "/missing"}
	if l, err := empty.List(); err != nil || len(l) != 0 {
		t.Errorf("empty store: %v %v", l, err)
	}
}

// A recording begun while the customer has an age recipient is sealed to
// it, piece by piece: nobody but the customer's key reads it, and a cut tail
// loses only the pieces not yet stored.
func TestSealed(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	recipient := id.Recipient().String()
	s := &Store{Dir: t.TempDir(), Recipient: func(host string) (string, error) {
		if host == "web-01" {
			return recipient, nil
		}
		return "", nil
	}}
	pieces := []string{"{\"version\":2}\n", "[0.1,\"o\",\"secret output\"]\n", "[0.2,\"o\",\"more\"]\n"}
	var off int64
	for i, p := range pieces {
		n, err := s.Append("web-01", "b1", "shell-1", off, []byte(p))
		if err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
		off += int64(len(p))
		if n != off {
			t.Fatalf("piece %d: size %d, want %d", i, n, off)
		}
	}
	// A retry of the last piece is accepted; a gap or a changed piece is not.
	if n, err := s.Append("web-01", "b1", "shell-1", off-int64(len(pieces[2])), []byte(pieces[2])); err != nil || n != off {
		t.Errorf("retry: %d %v", n, err)
	}
	if _, err := s.Append("web-01", "b1", "shell-1", off+5, []byte("x")); !errors.Is(err, ErrOffset) {
		t.Errorf("gap: %v", err)
	}
	// Another host's customer has no recipient: plain.
	if _, err := s.Append("db-01", "b2", "shell-1", 0, []byte("plain\n")); err != nil {
		t.Fatal(err)
	}
	list, _ := s.List()
	isSealed := map[string]bool{}
	for _, in := range list {
		isSealed[in.Host] = in.Sealed
	}
	if !isSealed["web-01"] || isSealed["db-01"] {
		t.Errorf("sealed = %v", isSealed)
	}
	f, _, err := s.Open("b1.shell-1")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(f)
	f.Close()
	if bytes.Contains(raw, []byte("secret output")) || !sealed.IsSealed(raw) {
		t.Fatal("sealed recording holds plaintext")
	}
	var out bytes.Buffer
	if err := sealed.Unseal(&out, bytes.NewReader(raw), id); err != nil {
		t.Fatal(err)
	}
	if out.String() != strings.Join(pieces, "") {
		t.Errorf("unsealed %q", out.String())
	}
	other, _ := age.GenerateX25519Identity()
	if err := sealed.Unseal(io.Discard, bytes.NewReader(raw), other); err == nil {
		t.Error("another key unsealed it")
	}
	// A power cut mid-write: the stored pieces still read, the cut one
	// is reported.
	if err := sealed.Unseal(io.Discard, bytes.NewReader(raw[:len(raw)-10]), id); err == nil {
		t.Error("a cut segment went unnoticed")
	}
}

// TestOwnerAtRecordingTime: a recording stays the customer's whose host it
// was when it began, after the host goes to another customer.
func TestOwnerAtRecordingTime(t *testing.T) {
	owner := "acme"
	s := &Store{Dir: t.TempDir(), Owner: func(string) (string, error) { return owner, nil }}
	if _, err := s.Append("web-01", "b1", "shell-1", 0, []byte("header\n")); err != nil {
		t.Fatal(err)
	}
	owner = "globex" // the host is re-added for a new customer
	if _, err := s.Append("web-01", "b1", "shell-1", 7, []byte("more\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append("web-01", "b2", "shell-1", 0, []byte("header\n")); err != nil {
		t.Fatal(err)
	}
	list, _ := s.List()
	got := map[string]string{}
	for _, in := range list {
		got[in.ID] = in.Owner
	}
	if got["b1.shell-1"] != "acme" || got["b2.shell-1"] != "globex" || len(got) != 2 {
		t.Fatalf("owners = %v", got)
	}
}
