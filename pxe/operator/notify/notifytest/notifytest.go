package notifytest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Delivery is one webhook request the receiver accepted.
type Delivery struct {
	ID      string
	Type    string
	Receipt struct {
		Seq  int64  `json:"seq"`
		Hash string `json:"hash"`
	}
	Body []byte
	At   time.Time
}

// Receiver is a webhook endpoint.
type Receiver struct {
	URL string

	key  []byte
	srv  *http.Server
	ln   net.Listener
	mu   sync.Mutex
	down bool
	// turnedAway counts the requests answered 503 while down: a test of
	// an outage waits on it, so that the outage path surely ran.
	turnedAway int
	got        []Delivery
	bad        []string // requests refused for a bad signature, and why
}

// NewReceiver listens on addr (127.0.0.1:0 for any port) and verifies
// requests with secret (whsec_...). Set it after AddWebhook with SetSecret.
func NewReceiver(addr string) (*Receiver, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return NewReceiverOn(ln), nil
}

// NewReceiverOn serves on ln (one opened in a test's network namespace).
func NewReceiverOn(ln net.Listener) *Receiver {
	r := &Receiver{URL: "http://" + ln.Addr().String() + "/hooks/lifeboat", ln: ln}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln)
	return r
}

// SetSecret sets the secret to verify with.
func (r *Receiver) SetSecret(secret string) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.key = key
	r.mu.Unlock()
	return nil
}

// SetDown makes the receiver answer 503 (true) or accept again (false).
func (r *Receiver) SetDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

// TurnedAway counts the requests answered 503 while the receiver was down.
func (r *Receiver) TurnedAway() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.turnedAway
}

// Close stops it.
func (r *Receiver) Close() error { return r.srv.Close() }

// Deliveries returns what was accepted, in order.
func (r *Receiver) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.got...)
}

// Refused returns why requests with bad signatures were refused.
func (r *Receiver) Refused() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bad...)
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		r.turnedAway++
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if why := verify(r.key, req.Header, body, time.Now()); why != "" {
		r.bad = append(r.bad, why)
		http.Error(w, why, http.StatusUnauthorized)
		return
	}
	d := Delivery{ID: req.Header.Get("webhook-id"), Body: body, At: time.Now()}
	var p struct {
		Type string `json:"type"`
		Data struct {
			Receipt json.RawMessage `json:"receipt"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &p); err != nil || json.Unmarshal(p.Data.Receipt, &d.Receipt) != nil {
		r.bad = append(r.bad, "body is not a notice")
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	d.Type = p.Type
	r.got = append(r.got, d)
	w.WriteHeader(http.StatusNoContent)
}

// verify checks a request as the Standard Webhooks scheme says: the
// signature is base64 HMAC-SHA256 of "id.timestamp.body", one of the
// space-separated "v1,..." values, and the timestamp is within 5 minutes.
func verify(key []byte, h http.Header, body []byte, now time.Time) string {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return "missing webhook headers"
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return "timestamp missing or too far off"
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	want := m.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		v, sig, ok := strings.Cut(s, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return ""
		}
	}
	return "no valid signature"
}

// Mail is one message the SMTP server took.
type Mail struct {
	From, To string
	TLS      bool // the session had switched to TLS (STARTTLS)
	Header   mail.Header
	Body     string
}

// MailServer is an SMTP server that offers STARTTLS with a certificate of
// its own, whose PEM is in CertPEM.
type MailServer struct {
	Addr    string
	CertPEM []byte

	srv *smtp.Server
	mu  sync.Mutex
	got []Mail
}

// NewMailServer listens on addr.
func NewMailServer(addr string) (*MailServer, error) {
	cert, certPEM, err := selfSigned()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	m := &MailServer{Addr: ln.Addr().String(), CertPEM: certPEM}
	m.srv = smtp.NewServer(backend{m})
	m.srv.Domain = "localhost"
	m.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	m.srv.ReadTimeout, m.srv.WriteTimeout = 10*time.Second, 10*time.Second
	m.srv.MaxMessageBytes = 1 << 20
	go m.srv.Serve(ln)
	return m, nil
}

// Close stops it.
func (m *MailServer) Close() error { return m.srv.Close() }

// Messages returns what was delivered.
func (m *MailServer) Messages() []Mail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Mail(nil), m.got...)
}

type backend struct{ m *MailServer }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) { return &session{m: b.m, c: c}, nil }

type session struct {
	m     *MailServer
	c     *smtp.Conn
	from  string
	rcpts []string
}

func (s *session) Reset()        { s.from, s.rcpts = "", nil }
func (s *session) Logout() error { return nil }
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("not a mail message: %w", err)
	}
	var br io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		br = quotedprintable.NewReader(br)
	}
	body, err := io.ReadAll(br)
	if err != nil {
		return fmt.Errorf("body: %w", err)
	}
	_, isTLS := s.c.TLSConnectionState()
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	for _, to := range s.rcpts {
		s.m.got = append(s.m.got, Mail{From: s.from, To: to, TLS: isTLS, Header: msg.Header, Body: string(body)})
	}
	return nil
}

func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		return tls.Certificate{}, nil, errors.Join(errors.New("self-signed certificate"), err)
	}
	return cert, certPEM, nil
}
