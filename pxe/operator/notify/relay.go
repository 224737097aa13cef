package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/lifeboat-boot/lifeboat/pxe/keys/keyring"
	"github.com/lifeboat-boot/lifeboat/pxe/metrics"
	"github.com/lifeboat-boot/lifeboat/pxe/store"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// Outbox is what the relay needs of the store; sqlite.DB is one.
type Outbox interface {
	DueNotices(ctx context.Context, now time.Time, limit int) ([]store.Notice, error)
	NoticeDelivered(ctx context.Context, id string) error
	NoticeRetry(ctx context.Context, id, why string, next time.Time) error
	NoticeFailed(ctx context.Context, n store.Notice, why string) error
	Changed() <-chan struct{}
}

// SMTP is how e-mail leaves: a relay the provider runs.
type SMTP struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`     // default 25
	From     string `json:"from"`     // e.g. "lifeboat <lifeboat@provider.example>"
	Username string `json:"username"` // if set, PLAIN auth after STARTTLS
	// PasswordFile holds the password, so that it is in neither the
	// config nor the environment.
	PasswordFile string `json:"password_file"`
	// RequireTLS refuses to send without STARTTLS; by default STARTTLS is
	// used whenever the server offers it.
	RequireTLS bool   `json:"require_tls"`
	CAFile     string `json:"ca_file"` // extra CA to trust for STARTTLS (a private relay)
	password   string
	tls        *tls.Config
}

// Relay delivers the outbox.
type Relay struct {
	Outbox Outbox
	Keys   *keyring.Keyring
	SMTP   *SMTP // nil: e-mail notices wait until it is configured
	Log    *slog.Logger
	// HTTP posts webhooks; its transport decides how to reach receivers.
	HTTP *http.Client
	// MinBackoff is the wait after the first failure; each failure
	// doubles it, up to MaxBackoff. GiveUp ends the tries of a notice
	// that old.
	MinBackoff, MaxBackoff, GiveUp time.Duration
	// Workers bounds the deliveries in flight.
	Workers int
	// ApprovalURL returns the approval page of a grant, for notices of
	// grants that wait for their customer; nil leaves the link out.
	ApprovalURL func(grantID string) string
	// Checkpoint returns lifeboatd's newest signed checkpoint of the audit
	// chain, sent with each notice so that customers hold one; nil sends
	// none.
	Checkpoint func(ctx context.Context) *audit.Checkpoint
	Now        func() time.Time

	// Deliveries in flight: one at a time per target (a webhook or an
	// address), so that a receiver gets its notices in order and a slow or
	// dead one holds up only itself; Workers in all.
	mu   sync.Mutex
	busy map[string]bool
	// recent are the notices whose delivery ended since the due list was
	// last read: that list may still show them as due.
	recent   map[string]bool
	sem      chan struct{}
	inflight sync.WaitGroup
	freed    chan struct{} // a delivery ended: its target may take the next
}

// Defaults of Relay.
const (
	DefaultMinBackoff = 10 * time.Second
	DefaultMaxBackoff = time.Hour
	DefaultGiveUp     = 72 * time.Hour
)

// Run delivers due notices until ctx ends: at every commit to the log, when
// a delivery ends, and at least every second for retries coming due. It
// returns once the deliveries in flight have ended.
func (r *Relay) Run(ctx context.Context) error {
	r.defaults()
	defer r.inflight.Wait()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		changed := r.Outbox.Changed()
		if _, err := r.dispatch(ctx); err != nil && ctx.Err() == nil {
			r.Log.Error("notice relay: reading the outbox failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			// A burst of commits wakes the relay at most 40 times a second.
			select {
			case <-time.After(25 * time.Millisecond):
			case <-ctx.Done():
				return nil
			}
		case <-r.freed:
		case <-tick.C:
		}
	}
}

// defaults fills in what was left zero.
func (r *Relay) defaults() {
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.HTTP == nil {
		r.HTTP = &http.Client{Timeout: 15 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	r.MinBackoff = cmpOr(r.MinBackoff, DefaultMinBackoff)
	r.MaxBackoff = cmpOr(r.MaxBackoff, DefaultMaxBackoff)
	r.GiveUp = cmpOr(r.GiveUp, DefaultGiveUp)
	if r.Workers <= 0 {
		r.Workers = 8
	}
	r.mu.Lock()
	if r.busy == nil {
		r.busy, r.sem, r.freed = map[string]bool{}, make(chan struct{}, r.Workers), make(chan struct{}, 1)
	}
	r.mu.Unlock()
}

// Pass delivers the notices due now, target by target in order, waits
// until they are done, and returns how many it tried. (Run does not wait:
// it starts what it can at each wake.)
func (r *Relay) Pass(ctx context.Context) (int, error) {
	r.defaults()
	total := 0
	for range 1000 { // bounded: each round takes at least one notice per target off the due list, or ends
		n, err := r.dispatch(ctx)
		r.inflight.Wait()
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
	return total, nil
}

// dispatch starts the deliveries of the notices due now whose target is
// not busy, in the order of their records, while workers are free; it does
// not wait for them.
func (r *Relay) dispatch(ctx context.Context) (int, error) {
	r.mu.Lock()
	r.recent = map[string]bool{}
	r.mu.Unlock()
	due, err := r.Outbox.DueNotices(ctx, r.Now(), 100)
	if err != nil {
		return 0, err
	}
	started := 0
	held := map[string]bool{} // targets whose earlier notice waits: keep the order
	for _, n := range due {
		key := n.Channel + "\x00" + n.Target
		r.mu.Lock()
		if r.recent[n.ID] {
			r.mu.Unlock()
			continue // just delivered, retried later or given up
		}
		if r.busy[key] || held[key] {
			held[key] = true
			r.mu.Unlock()
			continue
		}
		select {
		case r.sem <- struct{}{}:
		default:
			r.mu.Unlock()
			return started, nil // every worker busy: the rest at the next wake
		}
		r.busy[key] = true
		r.mu.Unlock()
		started++
		r.inflight.Add(1)
		go func() {
			defer r.inflight.Done()
			r.deliver(ctx, n)
			r.mu.Lock()
			delete(r.busy, key)
			r.recent[n.ID] = true
			r.mu.Unlock()
			<-r.sem
			select {
			case r.freed <- struct{}{}:
			default:
			}
		}()
	}
	return started, nil
}

// grantLink are the codes whose notices carry the grant's page: to approve
// or deny one that waits, to end one that may be used.
var grantLink = map[audit.Code]bool{audit.RescueRequest: true, audit.RescueApprove: true, audit.RescueActive: true}

func (r *Relay) deliver(ctx context.Context, n store.Notice) {
	link := ""
	if r.ApprovalURL != nil && grantLink[n.Event.Code] {
		link = r.ApprovalURL(n.Event.Details["grant"])
	}
	var cp *audit.Checkpoint
	if r.Checkpoint != nil {
		cp = r.Checkpoint(ctx)
	}
	msg := Render(n.Event, link, cp)
	var err error
	switch n.Channel {
	case store.ChannelWebhook:
		err = r.postWebhook(ctx, n, msg)
	case store.ChannelEmail:
		err = r.sendMail(ctx, n, msg)
	default:
		err = fmt.Errorf("unknown channel %q", n.Channel)
	}
	if ctx.Err() != nil {
		return // shutting down: the notice stays due, and goes out after the restart
	}
	log := r.Log.With("notice", n.ID, "record", n.Event.Seq, "customer", n.Customer, "channel", n.Channel, "target", n.Target, "attempt", n.Attempts+1)
	if err == nil {
		metrics.Notices.WithLabelValues(n.Channel, "delivered").Inc()
		metrics.NoticeLatency.WithLabelValues(n.Channel).Observe(r.Now().Sub(n.Event.Time).Seconds())
		log.Info("notice delivered", "after", r.Now().Sub(n.Event.Time).Round(time.Millisecond))
		if err := r.Outbox.NoticeDelivered(ctx, n.ID); err != nil {
			log.Error("notice relay: marking delivered failed (it will be sent again)", "err", err)
		}
		return
	}
	why := err.Error()
	if r.Now().Sub(n.Created) >= r.GiveUp {
		metrics.Notices.WithLabelValues(n.Channel, "failed").Inc()
		log.Error("notice given up", "err", why, "created", n.Created)
		if err := r.Outbox.NoticeFailed(ctx, n, why); err != nil {
			log.Error("notice relay: marking failed failed", "err", err)
		}
		return
	}
	metrics.Notices.WithLabelValues(n.Channel, "retry").Inc()
	next := r.Now().Add(r.backoff(n.Attempts))
	log.Warn("notice not delivered; will retry", "err", why, "next", next.Format(time.RFC3339))
	if err := r.Outbox.NoticeRetry(ctx, n.ID, why, next); err != nil {
		log.Error("notice relay: scheduling the retry failed", "err", err)
	}
}

// backoff is the wait after the failure of attempt n+1: doubling from
// MinBackoff up to MaxBackoff, with a fifth of jitter so that a receiver
// coming back is not hit by every notice at once.
func (r *Relay) backoff(attempts int) time.Duration {
	d := r.MinBackoff
	for i := 0; i < attempts && d < r.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// Sign returns the webhook-signature value of Standard Webhooks.
func Sign(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.", id, ts)
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func (r *Relay) postWebhook(ctx context.Context, n store.Notice, msg Message) error {
	if n.Webhook == nil || n.Webhook.URL == "" {
		return errors.New("the webhook was removed")
	}
	key, err := r.Keys.Unseal(n.Webhook.Sealed)
	if err != nil {
		return err
	}
	ts := r.Now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.Webhook.URL, bytes.NewReader(msg.JSON))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "lifeboat-notify/1")
	req.Header.Set("webhook-id", n.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(key, n.ID, ts, msg.JSON))
	resp, err := r.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the receiver answered HTTP %d", resp.StatusCode)
	}
	return nil
}

func (r *Relay) sendMail(ctx context.Context, n store.Notice, msg Message) error {
	if r.SMTP == nil || r.SMTP.Host == "" {
		return errors.New("no smtp relay configured in lifeboatd")
	}
	m := mail.NewMsg()
	if err := m.From(r.SMTP.From); err != nil {
		return fmt.Errorf("smtp.from: %w", err)
	}
	if err := m.To(n.Target); err != nil {
		return fmt.Errorf("address %q: %w", n.Target, err)
	}
	m.Subject(msg.Subject)
	m.SetMessageIDWithValue(n.ID + "@lifeboat")
	m.SetDate()
	m.SetGenHeader("Auto-Submitted", "auto-generated")
	m.SetBodyString(mail.TypeTextPlain, msg.Text)
	policy := mail.TLSOpportunistic
	if r.SMTP.RequireTLS {
		policy = mail.TLSMandatory
	}
	opts := []mail.Option{mail.WithPort(cmpOr(r.SMTP.Port, 25)), mail.WithTLSPolicy(policy), mail.WithTimeout(20 * time.Second),
		mail.WithHELO("lifeboat")}
	if r.SMTP.tls != nil {
		opts = append(opts, mail.WithTLSConfig(r.SMTP.tls))
	}
	if r.SMTP.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthPlain), mail.WithUsername(r.SMTP.Username), mail.WithPassword(r.SMTP.password))
	}
	c, err := mail.NewClient(r.SMTP.Host, opts...)
	if err != nil {
		return err
	}
	return c.DialAndSendWithContext(ctx, m)
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

// Check validates the SMTP settings and reads the password and CA files.
func (s *SMTP) Check() error {
	if s.Host == "" {
		return errors.New("smtp.host: missing")
	}
	if s.Port < 0 || s.Port > 65535 {
		return fmt.Errorf("smtp.port %d: want 1..65535", s.Port)
	}
	if err := mail.NewMsg().From(s.From); err != nil || s.From == "" {
		return fmt.Errorf("smtp.from %q: want an address like \"lifeboat <lifeboat@provider.example>\"", s.From)
	}
	if s.Username != "" {
		if s.PasswordFile == "" {
			return errors.New("smtp.username is set: smtp.password_file must name the file holding the password")
		}
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return fmt.Errorf("smtp.password_file: %w", err)
		}
		s.password = strings.TrimRight(string(b), "\r\n")
	}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return fmt.Errorf("smtp.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("smtp.ca_file %s: no PEM certificate in it", s.CAFile)
		}
		s.tls = &tls.Config{RootCAs: pool, ServerName: s.Host, MinVersion: tls.VersionTLS12}
	}
	return nil
}
