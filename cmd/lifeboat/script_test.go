package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	_ "modernc.org/sqlite" // sqlexec
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"lifeboat": main,
	})
}

// nextIP gives each script a loopback address of its own, so that the
// scripts' lifeboatd servers (TFTP on port 69, HTTP, API) run side by side.
var nextIP atomic.Int32

// TestScripts runs the CLI flows in testdata/script against a real
// lifeboatd, built from this tree, with a real SQLite store.
func TestScripts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("these tests run lifeboatd, which binds TFTP port 69: run them as root (make test does)")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "../lifeboatd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build lifeboatd: %v\n%s", err, out)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			ip := fmt.Sprintf("127.0.%d.%d", 10+os.Getpid()%200, 10+nextIP.Add(1))
			env.Setenv("PATH", bin+string(os.PathListSeparator)+env.Getenv("PATH"))
			env.Setenv("IP", ip)
			env.Setenv("LIFEBOAT_SERVER", "http://"+ip+":8081")
			env.Setenv("LIFEBOAT_TOKEN_FILE", filepath.Join(env.WorkDir, "token"))
			env.Setenv("HOME", env.WorkDir)
			return writeServerFiles(env.WorkDir, ip)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitapi": waitAPI,
			"gencert": genCert,
			"httpget": httpGet,
			"sqlexec": sqlExec,
		},
	})
}

// writeServerFiles lays out what lifeboatd needs: a config (DHCP off: the
// scripts test the store, API and CLI, not DHCP), a stand-in image and
// first-stage loaders.
func writeServerFiles(dir, ip string) error {
	img := filepath.Join(dir, "image")
	if err := os.MkdirAll(filepath.Join(img, "tftp"), 0o755); err != nil {
		return err
	}
	for _, f := range []string{"vmlinuz", "initramfs.cpio.zst", "tftp/undionly.kpxe", "tftp/ipxe.efi"} {
		if err := os.WriteFile(filepath.Join(img, f), []byte("stand-in "+f), 0o644); err != nil {
			return err
		}
	}
	cfg, _ := json.MarshalIndent(map[string]any{
		"dhcp_mode": "off", "server_ip": ip, "http_port": 8080, "api_listen": ip + ":8081",
		"image_dir": img, "database": filepath.Join(dir, "state", "lifeboat.db"), "log_level": "debug",
		// Checkpoints at each start only (the first tick is a day away):
		// which records they cover does not depend on how fast the
		// script runs.
		"checkpoint_every": "24h",
	}, "", "  ")
	return os.WriteFile(filepath.Join(dir, "lifeboatd.json"), cfg, 0o600)
}

// waitapi [https]: wait (at most 20 s) until lifeboatd's API answers.
func waitAPI(ts *testscript.TestScript, neg bool, args []string) {
	scheme := "http"
	if len(args) > 0 {
		scheme = args[0]
	}
	url := scheme + "://" + ts.Getenv("IP") + ":8081/healthz"
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if scheme == "https" {
			// Only liveness here; the CLI checks the certificate.
			conn, err := net.DialTimeout("tcp", ts.Getenv("IP")+":8081", time.Second)
			if err == nil {
				conn.Close()
				return
			}
			continue
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
	}
	ts.Fatalf("lifeboatd's API did not come up at %s", url)
}

// gencert CERT KEY: a self-signed certificate for the script's address.
func genCert(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: gencert CERT KEY")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ts.Check(err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lifeboat test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ts.Getenv("IP"))}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	ts.Check(err)
	kder, err := x509.MarshalECPrivateKey(key)
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
}

// httpget PATH: GET a boot-listener path, as a booting host would (the
// host's reservation in the scripts is 127.0.0.1, where the request comes
// from); the body goes to stdout.
func httpGet(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: httpget PATH")
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get("http://" + ts.Getenv("IP") + ":8080" + args[0])
	ts.Check(err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	ts.Stdout().Write(b)
	if ok := resp.StatusCode == 200; ok == neg {
		ts.Fatalf("GET %s: HTTP %d %s", args[0], resp.StatusCode, strings.TrimSpace(string(b)))
	}
}

// sqlexec DB SQL: change the store behind lifeboatd's back, as someone
// with access to the file would (lifeboatd must be stopped).
func sqlExec(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: sqlexec DB SQL")
	}
	db, err := sql.Open("sqlite", "file:"+ts.MkAbs(args[0]))
	ts.Check(err)
	defer db.Close()
	_, err = db.Exec(args[1])
	ts.Check(err)
}
