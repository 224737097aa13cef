package agentapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/kind"
)

// Paths of the agent API on the boot listener.
const (
	CheckinPath = "/agent/v1/checkin"
	EventsPath  = "/agent/v1/events"
	// HeartbeatPath (POST, the report token): the agent is still up.
	HeartbeatPath = "/agent/v1/heartbeat"
	// GrantsPath + ID: the state of this boot's rescue grant (GET).
	GrantsPath = "/agent/v1/grants/"
	// RecordingsPath + NAME + "?offset=N": a piece of a rescue shell's
	// recording (PUT).
	RecordingsPath = "/agent/v1/recordings/"
	// BootFile is where the per-boot archive places the agent's boot
	// parameters inside the RAM image. The agent removes it once read.
	BootFile = "etc/lifeboat/boot.json"
)

// BootParams reach the agent through a per-boot initramfs archive, never the
// kernel command line, because they include the boot token.
type BootParams struct {
	Server string `json:"server"` // base URL of lifeboatd's agent API (https)
	// ServerKey is the agent API's public key (PKIX, base64): the only
	// key the agent trusts on that connection, and the one check-in
	// answers are signed with.
	ServerKey string `json:"server_key"`
	Boot      string `json:"boot"`
	MAC       string `json:"mac"`
	Host      string `json:"host"`
	Token     string `json:"token"`
	// VLAN is the 802.1Q tag of the host's boot network (0: untagged):
	// the agent tags the port with MAC and asks DHCP there.
	VLAN int `json:"vlan,omitempty"`
}

// CheckinRequest is sent with the boot token as a bearer credential.
type CheckinRequest struct {
	Boot    string `json:"boot"`
	MAC     string `json:"mac"`
	HostKey string `json:"host_key"` // authorized_keys form of the per-boot RAM host key
	IP      string `json:"ip,omitempty"`
	// Trust is what the RAM image sees of how it was started; an agent
	// too old to say sends none.
	Trust *BootTrust `json:"trust,omitempty"`
}

// CheckinResponse is the host's configuration for this boot.
type CheckinResponse struct {
	Host           string    `json:"host"`
	Boot           string    `json:"boot"`
	Mode           kind.Mode `json:"mode"`
	AuthorizedKeys []string  `json:"authorized_keys"`
	// ReportToken authenticates the agent's later event reports for this
	// boot only.
	ReportToken string       `json:"report_token"`
	Unlock      UnlockPolicy `json:"unlock"`
	// HostCertificate certifies the host key sent at check-in for this
	// boot (authorized_keys form); the SSH server presents it.
	HostCertificate string `json:"host_certificate,omitempty"`
	// Grant is the rescue grant this boot serves, in mode "rescue". A
	// rescue boot without one (it ended before the check-in) reboots.
	Grant *RescueGrant `json:"grant,omitempty"`
	// LastBoot is what the host's last unlock booted, as recorded then:
	// the unlock shows what changed since, before the passphrase.
	LastBoot *BootRecord `json:"last_boot,omitempty"`
}

// BootRecord is what an unlock handed over to (the details of its
// handoff record).
type BootRecord struct {
	Device  string    `json:"device"`
	Entry   string    `json:"entry"`
	Kernel  string    `json:"kernel_sha256"`
	Initrd  string    `json:"initrd_sha256"`
	Cmdline string    `json:"cmdline"`
	At      time.Time `json:"at"`
}

// RescueGrant is what the RAM image needs of a grant: whom to let in
// (that key only), for what, and until when (enforced by the agent too, so
// that a host cut off from the server still ends the session).
type RescueGrant struct {
	ID       string     `json:"id"`
	Scope    kind.Scope `json:"scope"`
	Staff    string     `json:"staff"`
	StaffKey string     `json:"staff_key"`
	Ticket   string     `json:"ticket"`
	Until    time.Time  `json:"until"`
	// ConsoleCodeHash checks the one-time code a console grant's
	// technician types at the host (ConsoleCodeHash).
	ConsoleCodeHash string `json:"console_code_hash,omitempty"`
	// Left is how long the grant still runs at check-in: the agent counts
	// it down on its own clock, which may not agree with the server's.
	Left time.Duration `json:"left_ns"`
}

// GrantStatus is the server's view of a rescue grant, polled by the agent
// so that a revocation ends the session at once.
type GrantStatus struct {
	State kind.GrantState `json:"state"`
	Left  time.Duration   `json:"left_ns"`
}

// UnlockPolicy limits passphrase guessing at the prompt.
type UnlockPolicy struct {
	MaxTries int           `json:"max_tries"`
	Lockout  time.Duration `json:"lockout"`
}

// EventReport is an event the agent reports about its own boot.
type EventReport struct {
	Code    audit.Code        `json:"code"`
	Actor   string            `json:"actor,omitempty"`
	Details map[string]string `json:"details,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}

// Client talks to lifeboatd from the RAM image.
type Client struct {
	Base string
	HTTP *http.Client
	// Key, if set, must have signed every check-in answer (NewClient
	// sets it; a test against a plain server may leave it nil).
	Key ed25519.PublicKey
}

// SignatureHeader carries the server's signature of a check-in answer
// (AnswerMessage), base64.
const SignatureHeader = "Lifeboat-Signature"

// AnswerMessage is what the server signs of a check-in answer: the body,
// bound to the boot it answers.
func AnswerMessage(boot string, body []byte) []byte {
	return append([]byte("lifeboat check-in answer v1\x00"+boot+"\x00"), body...)
}

// ErrWrongServer means the server's TLS key or an answer's signature is not
// the one this boot was given: something between the host and lifeboatd
// answered. Asking again does not help.
var ErrWrongServer = errors.New("not the lifeboatd this boot was given")

// NewClient returns the client of the agent API p names, over TLS 1.3,
// trusting only the key p carries (pinned: no certificate authority, no
// host name). base supplies the transport's dialing; nil for the default.
func NewClient(p *BootParams, base *http.Client) (*Client, error) {
	der, err := base64.StdEncoding.DecodeString(p.ServerKey)
	if err != nil || len(der) == 0 {
		return nil, fmt.Errorf("boot parameters: no server key to trust (%v)", err)
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("boot parameters: server key: %w", err)
	}
	key, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("boot parameters: server key is a %T, want Ed25519", k)
	}
	if u, err := url.Parse(p.Server); err != nil || u.Scheme != "https" {
		return nil, fmt.Errorf("boot parameters: server %q is not an https URL", p.Server)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS13,
		// The pin replaces the usual checks: the chain and the name
		// mean nothing here, the key everything.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return fmt.Errorf("%w: no certificate", ErrWrongServer)
			}
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return fmt.Errorf("%w: %v", ErrWrongServer, err)
			}
			if got, ok := c.PublicKey.(ed25519.PublicKey); !ok || !got.Equal(key) {
				return fmt.Errorf("%w: its TLS key is not the pinned one", ErrWrongServer)
			}
			return nil
		}}
	hc := &http.Client{Timeout: 15 * time.Second}
	tr := &http.Transport{}
	if base != nil {
		hc.Timeout = base.Timeout
		if t, ok := base.Transport.(*http.Transport); ok {
			tr = t.Clone()
		}
	}
	tr.TLSClientConfig = tc
	tr.Proxy = nil
	hc.Transport = tr
	return &Client{Base: strings.TrimRight(p.Server, "/"), HTTP: hc, Key: key}, nil
}

// ErrRefused means the server answered, and said no: asking again with the
// same token gets the same no.
var ErrRefused = errors.New("refused by server")

// ErrBusy means the server refused a check-in because another agent of
// the host is checked in and alive (HTTP 423): once that one is gone (its
// heartbeats stop), the same token may be tried again.
var ErrBusy = errors.New("refused for now")

// HeartbeatEvery is how often a checked-in agent says it is still up; the
// server counts it alive for a few of these (store.AgentAlive).
const HeartbeatEvery = 20 * time.Second

// ErrUnavailable means the server answered that it cannot take the request
// now (HTTP 5xx: its store failed, nothing was done): ask again.
var ErrUnavailable = errors.New("server unavailable")

// Checkin trades the one-time boot token for this boot's configuration.
// With Key set, an answer not signed with it for this boot is refused
// (ErrWrongServer).
func (c *Client) Checkin(ctx context.Context, token string, req CheckinRequest) (*CheckinResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var resp CheckinResponse
	verify := func(h http.Header, data []byte) error {
		if c.Key == nil {
			return nil
		}
		sig, err := base64.StdEncoding.DecodeString(h.Get(SignatureHeader))
		if err != nil || !ed25519.Verify(c.Key, AnswerMessage(req.Boot, data), sig) {
			return fmt.Errorf("%w: the check-in answer's signature does not verify", ErrWrongServer)
		}
		return nil
	}
	if err := c.send(ctx, http.MethodPost, CheckinPath, token, "application/json", body, &resp, verify); err != nil {
		return nil, fmt.Errorf("check-in: %w", err)
	}
	return &resp, nil
}

// Report sends an event and returns once the server has recorded it.
func (c *Client) Report(ctx context.Context, reportToken string, ev EventReport) error {
	if err := c.post(ctx, EventsPath, reportToken, ev, nil); err != nil {
		return fmt.Errorf("report %s: %w", ev.Code, err)
	}
	return nil
}

// Heartbeat says that the agent is still up; ErrRefused once its boot has
// ended (handed over, or a newer boot of the host checked in).
func (c *Client) Heartbeat(ctx context.Context, reportToken string) error {
	if err := c.do(ctx, http.MethodPost, HeartbeatPath, reportToken, "", nil, nil); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// Grant returns the server's view of this boot's rescue grant.
func (c *Client) Grant(ctx context.Context, reportToken, id string) (*GrantStatus, error) {
	var st GrantStatus
	if err := c.do(ctx, http.MethodGet, GrantsPath+url.PathEscape(id), reportToken, "", nil, &st); err != nil {
		return nil, fmt.Errorf("grant status: %w", err)
	}
	return &st, nil
}

// Record stores a piece of a recording that starts off bytes into it; it
// returns once the server has it on disk.
func (c *Client) Record(ctx context.Context, reportToken, name string, off int64, data []byte) error {
	path := RecordingsPath + url.PathEscape(name) + "?offset=" + strconv.FormatInt(off, 10)
	if err := c.do(ctx, http.MethodPut, path, reportToken, "application/x-asciicast", data, nil); err != nil {
		return fmt.Errorf("recording: %w", err)
	}
	return nil
}

func (c *Client) post(ctx context.Context, path, bearer string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, path, bearer, "application/json", body, out)
}

func (c *Client) do(ctx context.Context, method, path, bearer, ctype string, body []byte, out any) error {
	return c.send(ctx, method, path, bearer, ctype, body, out, nil)
}

// send makes one request; verify, if set, checks a 2xx answer before it
// is decoded.
func (c *Client) send(ctx context.Context, method, path, bearer, ctype string, body []byte, out any, verify func(http.Header, []byte) error) error {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		why := ErrRefused
		switch {
		case resp.StatusCode/100 == 5:
			why = ErrUnavailable
		case resp.StatusCode == http.StatusLocked:
			why = ErrBusy
		}
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%w: %s (HTTP %d)", why, e.Error, resp.StatusCode)
		}
		return fmt.Errorf("%w: HTTP %d", why, resp.StatusCode)
	}
	if verify != nil {
		if err := verify(resp.Header, data); err != nil {
			return err
		}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// PutHardware sends the boot's hardware report.
func (c *Client) PutHardware(ctx context.Context, reportToken string, h *Hardware) error {
	body, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := c.do(ctx, http.MethodPut, HardwarePath, reportToken, "application/json", body, nil); err != nil {
		return fmt.Errorf("hardware report: %w", err)
	}
	return nil
}
