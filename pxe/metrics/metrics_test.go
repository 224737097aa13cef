package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A file served through CountWriter is counted, whether the connection
// takes it by ReadFrom (sendfile) or by Write.
func TestCountWriterCountsFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmlinuz")
	body := strings.Repeat("kernel bytes ", 50000)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan *CountWriter, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &CountWriter{ResponseWriter: w}
		f, _ := os.Open(path)
		defer f.Close()
		fi, _ := f.Stat()
		http.ServeContent(cw, r, "vmlinuz", fi.ModTime(), f)
		done <- cw // the handler may finish after the client has every byte
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	counted := <-done
	if string(got) != body || counted.Bytes != int64(len(body)) || counted.Code != 200 {
		t.Fatalf("served %d bytes, counted %d, code %d", len(got), counted.Bytes, counted.Code)
	}
	rec := httptest.NewRecorder() // no ReadFrom: the Write path
	cw := &CountWriter{ResponseWriter: rec}
	if n, err := cw.ReadFrom(strings.NewReader(body)); err != nil || n != int64(len(body)) || cw.Bytes != n || rec.Body.Len() != len(body) {
		t.Fatalf("ReadFrom over a recorder = %d, %v; counted %d", n, err, cw.Bytes)
	}
}
