package apiserver

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/sqlite"
)

const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl c"

func newAPI(t testing.TB) (http.Handler, *sqlite.DB, string) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "lifeboat.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tok, err := db.AddOperator(context.Background(), "fuzz", "test")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Store: db, Log: slog.New(slog.DiscardHandler)}
	return s.Handler(), db, tok
}

func do(h http.Handler, tok, method, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// TestSwapAddresses: two hosts swap their IPs and MACs in one import; the
// final state checks, so the change goes through (no UNIQUE check may see
// it half-done).
func TestSwapAddresses(t *testing.T) {
	h, db, tok := newAPI(t)
	a := `{"name":"a","mac":"52:54:00:00:00:01","ip":"10.0.0.1","circuit_id":"p1","authorized_keys":["` + key + `"]}`
	b := `{"name":"b","mac":"52:54:00:00:00:02","ip":"10.0.0.2","circuit_id":"p2","authorized_keys":["` + key + `"]}`
	if w := do(h, tok, "POST", "/v1/hosts/import", []byte(`{"hosts":[`+a+`,`+b+`]}`)); w.Code != 200 {
		t.Fatalf("import: %d %s", w.Code, w.Body)
	}
	a2 := `{"name":"a","mac":"52:54:00:00:00:02","ip":"10.0.0.2","circuit_id":"p2","authorized_keys":["` + key + `"]}`
	b2 := `{"name":"b","mac":"52:54:00:00:00:01","ip":"10.0.0.1","circuit_id":"p1","authorized_keys":["` + key + `"]}`
	if w := do(h, tok, "POST", "/v1/hosts/import", []byte(`{"hosts":[`+a2+`,`+b2+`]}`)); w.Code != 200 {
		t.Fatalf("swap: %d %s", w.Code, w.Body)
	}
	if ha, _ := db.Host("a"); ha.IP.String() != "10.0.0.2" || ha.MAC != "52:54:00:00:00:02" || ha.CircuitID != "p2" {
		t.Errorf("a after swap: %+v", ha)
	}
}

// FuzzImport: whatever an operator sends, the answer is a 2xx or a 4xx
// (never a 500, never a panic), and what the store then holds passes the
// same checks as the input.
func FuzzImport(f *testing.F) {
	h1 := `{"name":"a","mac":"52:54:00:00:00:01","ip":"10.0.0.1","authorized_keys":["` + key + `"]}`
	f.Add([]byte(`{"hosts":[` + h1 + `]}`))
	f.Add([]byte(`{"hosts":[` + h1 + `,` + h1 + `]}`))
	f.Add([]byte(`{"hosts":[{"name":"a","mac":"52:54:00:00:00:01","other_macs":["52:54:00:00:00:01"],"ip":"10.0.0.1","authorized_keys":["` + key + `"]}]}`))
	f.Add([]byte(`{"hosts":[{"name":"a","mac":"52:54:00:00:00:01","ip":"10.0.0.1","customer":"nobody","authorized_keys":["` + key + `"]}]}`))
	f.Add([]byte(`{"hosts":[{"name":"a","mac":"52:54:00:00:00:01","ip":"10.0.0.1","circuit_id":"\u0000\u001b[2J","authorized_keys":["` + key + `"]}]}`))
	f.Add([]byte(`{"hosts":[null]}`))
	f.Add([]byte(`{"hosts":[{"name":"a","ip":"::1"}]}`))
	f.Add([]byte(`{`))
	h, db, tok := newAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		w := do(h, tok, "POST", "/v1/hosts/import", body)
		if w.Code >= 500 {
			t.Fatalf("HTTP %d for %q: %s", w.Code, body, w.Body)
		}
		for _, x := range db.Hosts() {
			c := *x
			if err := c.Check(); err != nil {
				t.Fatalf("stored host %q fails its checks: %v", x.Name, err)
			}
		}
		if _, err := store.NewIndex(db.Hosts()); err != nil {
			t.Fatalf("stored inventory inconsistent: %v", err)
		}
	})
}

// TestBadRequests: bad parameters and missing tokens get their 4xx and a
// message, never a 5xx.
func TestBadRequests(t *testing.T) {
	h, _, tok := newAPI(t)
	for _, tc := range []struct {
		tok, method, path string
		want              int
	}{
		{tok, "GET", "/v1/boots?limit=0", 400},
		{tok, "GET", "/v1/boots?limit=many", 400},
		{tok, "GET", "/v1/events?after=-1", 400},
		{tok, "GET", "/v1/events?limit=10001", 400},
		{tok, "GET", "/v1/events?after=0&limit=5", 200},
		{tok, "GET", "/v1/boots/b-0000", 404},
		{tok, "PUT", "/v1/hosts/a", 400}, // empty body
		{tok, "GET", "/v1/nothing", 404},
		{"", "GET", "/v1/hosts", 401},
		{tok + "x", "GET", "/v1/whoami", 401},
		{"", "GET", "/healthz", 200},
	} {
		if w := do(h, tc.tok, tc.method, tc.path, nil); w.Code != tc.want || !bytes.Contains(w.Body.Bytes(), []byte(`"error"`)) && tc.want != 200 {
			t.Errorf("%s %s: HTTP %d %s, want %d", tc.method, tc.path, w.Code, w.Body, tc.want)
		}
	}
}
