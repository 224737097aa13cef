package bootsim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-boot/lifeboat/pxe/agent/agentapi"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// Ack is a step the server acknowledged, and the record it promised.
type Ack struct {
	Host string
	Boot string
	Code audit.Code
}

// Client boots hosts against one lifeboatd boot listener.
type Client struct {
	Base string // e.g. http://127.0.0.1:8080
	HTTP *http.Client
	// OnCheckin, if set, sees the server's answer to the check-in.
	OnCheckin func(*agentapi.CheckinResponse)
}

var agentURL = regexp.MustCompile(`/boot/agent/([A-Za-z0-9_-]+)\.cpio`)

// Boot plays one boot of the host with this MAC, calling ack after every
// acknowledged step, and stops at the first failure.
func (c *Client) Boot(ctx context.Context, host, mac string, ack func(Ack)) error {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	get := func(path string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
		}
		return b, nil
	}
	script, err := get("/boot/" + mac + ".ipxe")
	if err != nil {
		return err
	}
	m := agentURL.FindSubmatch(script)
	if m == nil {
		return fmt.Errorf("script without an agent archive:\n%s", script)
	}
	archive, err := get("/boot/agent/" + string(m[1]) + ".cpio")
	if err != nil {
		return err
	}
	var p agentapi.BootParams
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(archive)))
	if err != nil {
		return fmt.Errorf("agent archive: %w", err)
	}
	for _, r := range recs {
		if r.Name == agentapi.BootFile {
			b, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
			if err != nil {
				return err
			}
			if err := json.Unmarshal(b, &p); err != nil {
				return fmt.Errorf("boot params: %w", err)
			}
		}
	}
	if p.Boot == "" || p.Token == "" {
		return fmt.Errorf("agent archive without boot params")
	}
	// The script and archive were served: their records exist.
	ack(Ack{host, p.Boot, audit.ScriptFetch})
	ack(Ack{host, p.Boot, audit.ImageFetch})

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	hk, _ := ssh.NewPublicKey(priv.Public())
	ac, err := agentapi.NewClient(&p, hc)
	if err != nil {
		return err
	}
	cfg, err := ac.Checkin(ctx, p.Token, agentapi.CheckinRequest{Boot: p.Boot, MAC: mac, HostKey: string(ssh.MarshalAuthorizedKey(hk)), IP: "192.0.2.10"})
	if err != nil {
		return err
	}
	ack(Ack{host, p.Boot, audit.AgentCheckin})
	if c.OnCheckin != nil {
		c.OnCheckin(cfg)
	}
	for _, ev := range []agentapi.EventReport{
		{Code: audit.SSHLogin, Actor: "SHA256:customer", Details: map[string]string{"user": "root", "remote": "192.0.2.99:50123"}},
		{Code: audit.UnlockFailure, Actor: "SHA256:customer", Details: map[string]string{"volumes": "1", "failed_tries": "1", "tries_left": "4"}},
		{Code: audit.UnlockSuccess, Actor: "SHA256:customer", Details: map[string]string{"volumes": "/dev/vda2"}},
		{Code: audit.Handoff, Actor: "SHA256:customer", Details: map[string]string{"entry": "Debian GNU/Linux", "volumes": "[/dev/vda2]"}},
	} {
		if err := ac.Report(ctx, cfg.ReportToken, ev); err != nil {
			return err
		}
		ack(Ack{host, p.Boot, ev.Code})
	}
	return nil
}

// From returns an HTTP client whose requests leave from ip: lifeboatd
// serves a host's script only to the address reserved for it.
func From(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: d.DialContext, DisableKeepAlives: true}}
}
