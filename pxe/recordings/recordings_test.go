package recordings

import (
	"errors"
	"io"
	"testing"
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
