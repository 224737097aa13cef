package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/store/kind"
)

// Wire types of the listings; their entries are in types.go.
type (
	// HostList answers GET /v1/hosts.
	HostList struct {
		Hosts []*Host `json:"hosts"`
	}
	// CustomerList answers GET /v1/customers.
	CustomerList struct {
		Customers []Customer `json:"customers"`
	}
	// BootList answers GET /v1/boots.
	BootList struct {
		Boots []Boot `json:"boots"`
	}
	// EventList answers GET /v1/events; Next is the After of the next page.
	EventList struct {
		Events []audit.Event `json:"events"`
		Next   int64         `json:"next"`
	}
	// Whoami answers GET /v1/whoami.
	Whoami struct {
		Operator string `json:"operator"`
		Customer string `json:"customer,omitempty"` // set for a customer's token
	}
	// AuditPage answers GET /v1/audit/records?after=SEQ.
	AuditPage struct {
		Records []audit.Event `json:"records"`
	}
	// Verification answers GET /v1/audit/verify.
	Verification struct {
		OK        bool       `json:"ok"`
		Head      audit.Head `json:"head"`    // the last record that verified
		Records   int64      `json:"records"` // how many were checked
		BadRecord int64      `json:"bad_record,omitempty"`
		Reason    string     `json:"reason,omitempty"`
	}
	// Token answers POST /v1/customers/{name}/token, once.
	Token struct {
		Token string `json:"token"`
	}
	// WebhookRequest is the body of POST /v1/customers/{name}/webhooks.
	WebhookRequest struct {
		URL string `json:"url"`
	}
	// WebhookCreated answers it; the secret is shown this once.
	WebhookCreated struct {
		Webhook Webhook `json:"webhook"`
		Secret  string  `json:"secret"`
	}
	// WebhookList answers GET /v1/customers/{name}/webhooks.
	WebhookList struct {
		Webhooks []Webhook `json:"webhooks"`
	}
	// NoticeList answers GET /v1/notices.
	NoticeList struct {
		Notices []Notice `json:"notices"`
	}
	// GrantList answers GET /v1/grants.
	GrantList struct {
		Grants []*Grant `json:"grants"`
	}
	// RecordingList answers GET /v1/recordings.
	RecordingList struct {
		Recordings []Recording `json:"recordings"`
	}
	// AgeRecipient is the body of PUT /v1/customers/{name}/age-recipient.
	AgeRecipient struct {
		Recipient string `json:"age_recipient"` // "" removes it
	}
	// PolicyList answers GET /v1/customers/{name}/policies.
	PolicyList struct {
		Policies []Policy `json:"policies"`
	}
	// AuditKey answers GET /v1/audit/key.
	AuditKey struct {
		Key string `json:"key"` // base64 ed25519 public key
	}
	// CheckpointList answers GET /v1/audit/checkpoints?after=SEQ.
	CheckpointList struct {
		Checkpoints []audit.Checkpoint `json:"checkpoints"`
	}
	// StaffList answers GET /v1/customers/{name}/staff.
	StaffList struct {
		Staff []Staff `json:"staff"`
	}
	// ProposalList answers GET /v1/customers/{name}/proposals.
	ProposalList struct {
		Proposals []Proposal `json:"proposals"`
	}
	// Proposed answers a change an operator may only propose (202): it
	// waits for the customer to accept it.
	Proposed struct {
		Proposal Proposal `json:"proposal"`
		Message  string   `json:"message"`
	}
	// Challenge answers GET /v1/customers/{name}/challenge: the text a
	// customer signs, once, to be given a token.
	Challenge struct {
		Nonce     string `json:"nonce"`
		Text      string `json:"text"`
		Namespace string `json:"namespace"`
	}
	// TokenRequest is the body of POST /v1/customers/{name}/token without
	// a bearer token: the signed challenge.
	TokenRequest struct {
		Nonce     string `json:"nonce"`
		Signature string `json:"signature"`
	}
	// Approval is the body of POST /v1/grants/{id}/approve: the customer's
	// signature over the grant's consent text.
	Approval struct {
		Signature string `json:"signature"`
	}
	// Consent answers GET /v1/grants/{id}/consent: the exact text to sign
	// for an approval, and how.
	Consent struct {
		Text      string `json:"text"`
		Namespace string `json:"namespace"`
	}
	// CA answers GET /v1/ca: the key customers trust for host certificates.
	CA struct {
		PublicKey  string `json:"public_key"`
		KnownHosts string `json:"known_hosts"` // the line for ~/.ssh/known_hosts
		// Hosts is the pattern of that line, for an ssh_config Host line.
		Hosts string `json:"hosts,omitempty"`
	}
	// KRL answers GET /v1/krl: the OpenSSH key revocation list of the host
	// certificates whose boot has ended (for ssh's RevokedHostKeys).
	KRL struct {
		Revoked int    `json:"revoked"`
		KRL     []byte `json:"krl"`
	}
)

// Error is an API failure: what went wrong and, where there is one, what
// to do about it.
type Error struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
	Hint    string `json:"hint,omitempty"`
}

func (e *Error) Error() string {
	if e.Hint != "" {
		return e.Message + " (" + e.Hint + ")"
	}
	return e.Message
}

// Error makes a proposal the error of the call that asked for a change:
// the change was not made; it waits for the customer.
func (p *Proposed) Error() string { return p.Message }

// ErrUnreachable wraps failures to reach the server at all.
var ErrUnreachable = errors.New("cannot reach lifeboatd")

// Client talks to the operator API.
type Client struct {
	Base  string // e.g. https://boot1.example:8081
	Token string
	HTTP  *http.Client
}

// NewClient returns a client for base; caFile, if set, is the PEM
// certificate(s) to trust for its TLS.
func NewClient(base, token, caFile string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q: want a URL like https://lifeboat.example:8081", base)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // operator traffic goes straight to the server
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{Base: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{Transport: tr}}, nil
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: bad answer from the server: %w", method, path, err)
	}
	return nil
}

// send makes one request and turns a non-2xx answer into an *Error.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %v", ErrUnreachable, c.Base, err)
	}
	if resp.StatusCode == http.StatusAccepted && method != "GET" {
		// A change that needs the customer: it was proposed, not made.
		defer resp.Body.Close()
		p := &Proposed{}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(p); err != nil {
			return nil, fmt.Errorf("%s %s: bad answer from the server: %w", method, path, err)
		}
		return nil, p
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	e := &Error{Status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, e) != nil || e.Message == "" {
		e.Message = fmt.Sprintf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil, e
}

// Whoami says whose the token is.
func (c *Client) Whoami(ctx context.Context) (Whoami, error) {
	var w Whoami
	err := c.do(ctx, "GET", "/v1/whoami", nil, &w)
	return w, err
}

// AuditRecords returns up to limit records of the chain after seq after.
func (c *Client) AuditRecords(ctx context.Context, after int64, limit int) ([]audit.Event, error) {
	var p AuditPage
	err := c.do(ctx, "GET", fmt.Sprintf("/v1/audit/records?after=%d&limit=%d", after, limit), nil, &p)
	return p.Records, err
}

// VerifyOnServer has the server check its chain.
func (c *Client) VerifyOnServer(ctx context.Context, receipts []audit.Receipt) (Verification, error) {
	v := url.Values{}
	for _, r := range receipts {
		v.Add("receipt", r.String())
	}
	var out Verification
	err := c.do(ctx, "GET", "/v1/audit/verify?"+v.Encode(), nil, &out)
	return out, err
}

// AuditKey returns the key lifeboatd signs checkpoints with.
func (c *Client) AuditKey(ctx context.Context) (string, error) {
	var k AuditKey
	err := c.do(ctx, "GET", "/v1/audit/key", nil, &k)
	return k.Key, err
}

// Checkpoints returns up to limit checkpoints after seq after.
func (c *Client) Checkpoints(ctx context.Context, after int64, limit int) ([]audit.Checkpoint, error) {
	var l CheckpointList
	err := c.do(ctx, "GET", fmt.Sprintf("/v1/audit/checkpoints?after=%d&limit=%d", after, limit), nil, &l)
	return l.Checkpoints, err
}

// Customer returns one customer.
func (c *Client) Customer(ctx context.Context, name string) (Customer, error) {
	var out Customer
	err := c.do(ctx, "GET", "/v1/customers/"+url.PathEscape(name), nil, &out)
	return out, err
}

// UpdateCustomer changes the fields of u that are set (an operator's
// change may come back as a *Proposed error).
func (c *Client) UpdateCustomer(ctx context.Context, name string, u CustomerUpdate) (Customer, error) {
	var out Customer
	err := c.do(ctx, "PATCH", "/v1/customers/"+url.PathEscape(name), u, &out)
	return out, err
}

// Staff lists the staff who may be granted a customer's hosts.
func (c *Client) Staff(ctx context.Context, customer string) ([]Staff, error) {
	var l StaffList
	err := c.do(ctx, "GET", "/v1/customers/"+url.PathEscape(customer)+"/staff", nil, &l)
	return l.Staff, err
}

// PutStaff adds a staff member to a customer's list (or replaces them).
func (c *Client) PutStaff(ctx context.Context, s Staff) error {
	return c.do(ctx, "PUT", "/v1/customers/"+url.PathEscape(s.Customer)+"/staff/"+url.PathEscape(s.Name), s, nil)
}

// RemoveStaff takes one off the list.
func (c *Client) RemoveStaff(ctx context.Context, customer, name string) error {
	return c.do(ctx, "DELETE", "/v1/customers/"+url.PathEscape(customer)+"/staff/"+url.PathEscape(name), nil, nil)
}

// Proposals lists the changes proposed to a customer.
func (c *Client) Proposals(ctx context.Context, customer string) ([]Proposal, error) {
	var l ProposalList
	err := c.do(ctx, "GET", "/v1/customers/"+url.PathEscape(customer)+"/proposals", nil, &l)
	return l.Proposals, err
}

// AnswerProposal accepts or declines a proposal (the customer's token);
// out, if set, takes the answer of the change accepted.
func (c *Client) AnswerProposal(ctx context.Context, id string, accept bool, out any) error {
	a := "decline"
	if accept {
		a = "accept"
	}
	resp, err := c.send(ctx, "POST", "/v1/proposals/"+url.PathEscape(id)+"/"+a, struct{}{})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}

// Consent returns the text to sign to approve a grant.
func (c *Client) Consent(ctx context.Context, id string) (Consent, error) {
	var out Consent
	err := c.do(ctx, "GET", "/v1/grants/"+url.PathEscape(id)+"/consent", nil, &out)
	return out, err
}

// ApproveGrant approves a grant with the customer's signature over its
// consent text.
func (c *Client) ApproveGrant(ctx context.Context, id string, signature []byte) (*Grant, error) {
	var g Grant
	err := c.do(ctx, "POST", "/v1/grants/"+url.PathEscape(id)+"/approve", Approval{Signature: string(signature)}, &g)
	return &g, err
}

// Challenge fetches the text to sign for a token (no token needed).
func (c *Client) Challenge(ctx context.Context, customer string) (Challenge, error) {
	var out Challenge
	err := c.do(ctx, "GET", "/v1/customers/"+url.PathEscape(customer)+"/challenge", nil, &out)
	return out, err
}

// SignedToken is given a customer's token for a signed challenge.
func (c *Client) SignedToken(ctx context.Context, customer, nonce string, signature []byte) (string, error) {
	var t Token
	err := c.do(ctx, "POST", "/v1/customers/"+url.PathEscape(customer)+"/token", TokenRequest{Nonce: nonce, Signature: string(signature)}, &t)
	return t.Token, err
}

// CustomerToken issues a customer's API token with the caller's token:
// the customer's own replaces it; an operator's works only where the
// provider's contract lets operators.
func (c *Client) CustomerToken(ctx context.Context, customer string) (string, error) {
	var t Token
	err := c.do(ctx, "POST", "/v1/customers/"+url.PathEscape(customer)+"/token", struct{}{}, &t)
	return t.Token, err
}

// AddWebhook adds a customer's webhook and returns it with its secret.
func (c *Client) AddWebhook(ctx context.Context, customer, u string) (WebhookCreated, error) {
	var out WebhookCreated
	err := c.do(ctx, "POST", "/v1/customers/"+url.PathEscape(customer)+"/webhooks", WebhookRequest{URL: u}, &out)
	return out, err
}

// Webhooks lists a customer's webhooks.
func (c *Client) Webhooks(ctx context.Context, customer string) ([]Webhook, error) {
	var l WebhookList
	err := c.do(ctx, "GET", "/v1/customers/"+url.PathEscape(customer)+"/webhooks", nil, &l)
	return l.Webhooks, err
}

// RemoveWebhook removes a customer's webhook.
func (c *Client) RemoveWebhook(ctx context.Context, customer, id string) error {
	return c.do(ctx, "DELETE", "/v1/customers/"+url.PathEscape(customer)+"/webhooks/"+url.PathEscape(id), nil, nil)
}

// Notices lists the outbox, newest first.
func (c *Client) Notices(ctx context.Context, customer string, limit int) ([]Notice, error) {
	v := url.Values{}
	if customer != "" {
		v.Set("customer", customer)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var l NoticeList
	err := c.do(ctx, "GET", "/v1/notices?"+v.Encode(), nil, &l)
	return l.Notices, err
}

// CA returns the SSH certificate authority of host keys.
func (c *Client) CA(ctx context.Context) (CA, error) {
	var ca CA
	err := c.do(ctx, "GET", "/v1/ca", nil, &ca)
	return ca, err
}

// KRL returns the revocation list of ended boots' host certificates.
func (c *Client) KRL(ctx context.Context) (KRL, error) {
	var k KRL
	err := c.do(ctx, "GET", "/v1/krl", nil, &k)
	return k, err
}

// Hosts lists the inventory.
func (c *Client) Hosts(ctx context.Context) ([]*Host, error) {
	var l HostList
	err := c.do(ctx, "GET", "/v1/hosts", nil, &l)
	return l.Hosts, err
}

// Host returns one host.
func (c *Client) Host(ctx context.Context, name string) (*Host, error) {
	var h Host
	err := c.do(ctx, "GET", "/v1/hosts/"+url.PathEscape(name), nil, &h)
	return &h, err
}

// AddHost adds a host; it must not exist.
func (c *Client) AddHost(ctx context.Context, h *Host) error {
	return c.do(ctx, "POST", "/v1/hosts", h, nil)
}

// SetHost replaces an existing host's entry.
func (c *Client) SetHost(ctx context.Context, h *Host) error {
	return c.do(ctx, "PUT", "/v1/hosts/"+url.PathEscape(h.Name), h, nil)
}

// RemoveHost removes a host.
func (c *Client) RemoveHost(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/v1/hosts/"+url.PathEscape(name), nil, nil)
}

// ResetAgent ends a host's live lifeboat agent, so that its next boot is
// certified at once (recorded; the customer is told).
func (c *Client) ResetAgent(ctx context.Context, name string) error {
	return c.do(ctx, "POST", "/v1/hosts/"+url.PathEscape(name)+"/reset-agent", nil, nil)
}

// Import adds or replaces the hosts of an inventory file, all or none.
func (c *Client) Import(ctx context.Context, hosts []*Host) (ChangeResult, error) {
	var r ChangeResult
	err := c.do(ctx, "POST", "/v1/hosts/import", HostList{Hosts: hosts}, &r)
	return r, err
}

// Customers lists the customers.
func (c *Client) Customers(ctx context.Context) ([]Customer, error) {
	var l CustomerList
	err := c.do(ctx, "GET", "/v1/customers", nil, &l)
	return l.Customers, err
}

// AddCustomer adds a customer.
func (c *Client) AddCustomer(ctx context.Context, cu Customer) error {
	return c.do(ctx, "POST", "/v1/customers", cu, nil)
}

// Boots lists boots, newest first; host and limit may be zero.
func (c *Client) Boots(ctx context.Context, host string, limit int) ([]Boot, error) {
	q := url.Values{}
	if host != "" {
		q.Set("host", host)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var l BootList
	err := c.do(ctx, "GET", "/v1/boots?"+q.Encode(), nil, &l)
	return l.Boots, err
}

// Hardware returns a host's newest hardware report.
func (c *Client) Hardware(ctx context.Context, host string) (*Hardware, error) {
	var h Hardware
	err := c.do(ctx, "GET", "/v1/hosts/"+url.PathEscape(host)+"/hardware", nil, &h)
	return &h, err
}

// Boot returns one boot with its stages.
func (c *Client) Boot(ctx context.Context, id string) (*Boot, error) {
	var b Boot
	err := c.do(ctx, "GET", "/v1/boots/"+url.PathEscape(id), nil, &b)
	return &b, err
}

// EventQuery selects events.
type EventQuery struct {
	After int64
	Host  string
	Boot  string
	Limit int
}

func (q EventQuery) values() url.Values {
	v := url.Values{}
	if q.After > 0 {
		v.Set("after", strconv.FormatInt(q.After, 10))
	}
	if q.Host != "" {
		v.Set("host", q.Host)
	}
	if q.Boot != "" {
		v.Set("boot", q.Boot)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// Events returns one page of events.
func (c *Client) Events(ctx context.Context, q EventQuery) (*EventList, error) {
	var l EventList
	err := c.do(ctx, "GET", "/v1/events?"+q.values().Encode(), nil, &l)
	return &l, err
}

// Follow streams events as they are written, starting after q.After,
// calling fn for each, until ctx ends, fn fails or the server goes away.
func (c *Client) Follow(ctx context.Context, q EventQuery, fn func(audit.Event) error) error {
	v := q.values()
	v.Set("follow", "1")
	resp, err := c.send(ctx, "GET", "/v1/events?"+v.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue // keep-alive
		}
		var e audit.Event
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("event stream: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("event stream: %w", err)
	}
	return fmt.Errorf("%w: the event stream ended (server stopped?)", ErrUnreachable)
}

// RequestGrant asks for a rescue grant as the token's operator.
func (c *Client) RequestGrant(ctx context.Context, r GrantRequest) (*Grant, error) {
	var g Grant
	err := c.do(ctx, "POST", "/v1/grants", r, &g)
	return &g, err
}

// Grants lists grants, newest first.
func (c *Client) Grants(ctx context.Context, f GrantFilter) ([]*Grant, error) {
	v := url.Values{}
	for k, x := range map[string]string{"host": f.Host, "customer": f.Customer, "state": string(f.State)} {
		if x != "" {
			v.Set(k, x)
		}
	}
	if f.Limit > 0 {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	var l GrantList
	err := c.do(ctx, "GET", "/v1/grants?"+v.Encode(), nil, &l)
	return l.Grants, err
}

// Grant returns one grant.
func (c *Client) Grant(ctx context.Context, id string) (*Grant, error) {
	var g Grant
	err := c.do(ctx, "GET", "/v1/grants/"+url.PathEscape(id), nil, &g)
	return &g, err
}

// RevokeGrant withdraws a grant.
func (c *Client) RevokeGrant(ctx context.Context, id string) (*Grant, error) {
	var g Grant
	err := c.do(ctx, "POST", "/v1/grants/"+url.PathEscape(id)+"/revoke", struct{}{}, &g)
	return &g, err
}

// Recordings lists the rescue shells' recordings the token may read.
func (c *Client) Recordings(ctx context.Context) ([]Recording, error) {
	var l RecordingList
	err := c.do(ctx, "GET", "/v1/recordings", nil, &l)
	return l.Recordings, err
}

// Recording opens one recording (asciicast v2); the caller closes it.
func (c *Client) Recording(ctx context.Context, id string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, "GET", "/v1/recordings/"+url.PathEscape(id), nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// SetAgeRecipient sets (or with "" removes) the age key a customer's
// recordings are sealed to.
func (c *Client) SetAgeRecipient(ctx context.Context, customer, recipient string) error {
	return c.do(ctx, "PUT", "/v1/customers/"+url.PathEscape(customer)+"/age-recipient", AgeRecipient{Recipient: recipient}, nil)
}

// Policies returns a customer's grant policies.
func (c *Client) Policies(ctx context.Context, customer string) ([]Policy, error) {
	var l PolicyList
	err := c.do(ctx, "GET", "/v1/customers/"+url.PathEscape(customer)+"/policies", nil, &l)
	return l.Policies, err
}

// SetPolicy sets a customer's policy for a scope.
func (c *Client) SetPolicy(ctx context.Context, customer string, scope kind.Scope, policy kind.Policy) error {
	return c.do(ctx, "PUT", "/v1/customers/"+url.PathEscape(customer)+"/policies/"+url.PathEscape(string(scope)), Policy{Scope: scope, Policy: policy}, nil)
}
