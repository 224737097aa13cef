package audit

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The chain: every record carries the hash of the record before it, so that
// changing, removing or reordering any record changes every hash after it.
//
//	digest(r) = SHA-256(canonical encoding of r's fields, see Encode)
//	hash(r)   = SHA-256("lifeboat-audit-v1" || hash(r-1) || digest(r))
//
// with hash(r0) = 32 zero bytes before the first record. Splitting the hash
// in two lets a customer verify the whole chain while reading only their own
// records in full: every other record is handed over redacted, as its
// sequence number and digest, and its hash is still computed, not trusted.
// A random salt in every record keeps the digest of a redacted record from
// revealing its fields to a guesser.

// Genesis is the hash before the first record.
var Genesis = strings.Repeat("0", 64)

const linkTag = "lifeboat-audit-v1"

// Encode returns the canonical encoding of e's recorded fields: a tag, then
// seq and time (unix nanoseconds) as 8 big-endian bytes each, then code,
// customer, MAC, host, boot, actor, the details as a count followed by their
// key/value pairs sorted by key, and the salt, every string preceded by its
// length as a uvarint. Prev and Hash are not part of it. Anyone can
// reimplement this to check the log with their own code.
func (e *Event) Encode() []byte {
	var b []byte
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	str("lifeboat-audit-record-v1")
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
	for _, s := range []string{string(e.Code), e.Customer, e.MAC, e.Host, e.Boot, e.Actor} {
		str(s)
	}
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		str(k)
		str(e.Details[k])
	}
	str(e.Salt)
	return b
}

// ComputeDigest returns the hex SHA-256 of e's canonical encoding.
func (e *Event) ComputeDigest() string {
	d := sha256.Sum256(e.Encode())
	return hex.EncodeToString(d[:])
}

// Link returns the hash of a record from the previous record's hash and its
// own digest, both hex. It fails on malformed input.
func Link(prev, digest string) (string, error) {
	p, err := hex.DecodeString(prev)
	if err != nil || len(p) != sha256.Size {
		return "", fmt.Errorf("previous hash %q: want 64 hex digits", prev)
	}
	d, err := hex.DecodeString(digest)
	if err != nil || len(d) != sha256.Size {
		return "", fmt.Errorf("digest %q: want 64 hex digits", digest)
	}
	h := sha256.New()
	h.Write([]byte(linkTag))
	h.Write(p)
	h.Write(d)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Head is a position in the chain: a sequence number and the hash of the
// record there. The zero Head (with Hash Genesis) is before the first
// record.
type Head struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// Start is the Head before the first record.
func Start() Head { return Head{Hash: Genesis} }

// Seal makes e the record after h: it sets e's sequence number, a fresh
// salt, Prev and Hash, and returns the new head. e.Time must be set.
func Seal(e *Event, h Head) Head {
	var salt [16]byte
	_, _ = rand.Read(salt[:]) // crypto/rand.Read never fails on Linux
	e.Seq = h.Seq + 1
	e.Salt = hex.EncodeToString(salt[:])
	e.Prev = h.Hash
	e.Digest = ""
	hash, err := Link(h.Hash, e.ComputeDigest())
	if err != nil {
		panic("audit: sealing after a malformed head: " + err.Error()) // heads come from Seal only
	}
	e.Hash = hash
	return Head{Seq: e.Seq, Hash: e.Hash}
}

// Redact returns e as a customer who may not read it receives it: its
// sequence number, digest and hash, and nothing else.
func Redact(e Event) Event {
	return Event{Seq: e.Seq, Digest: e.ComputeDigest(), Hash: e.Hash}
}

// Redacted reports whether e is a redacted record.
func (e *Event) Redacted() bool { return e.Digest != "" && e.Code == "" }

// Receipt is what a notice carries: the sequence number and hash of the
// record it reports. A customer who keeps receipts can tell that records up
// to that point were not removed from the tail later.
type Receipt = Head

// ParseReceipt reads a receipt written as SEQ:HASH.
func ParseReceipt(s string) (Receipt, error) {
	seq, hash, ok := strings.Cut(s, ":")
	n, err := strconv.ParseInt(seq, 10, 64)
	if !ok || err != nil || n < 1 {
		return Receipt{}, fmt.Errorf("receipt %q: want SEQ:HASH, as in a notice", s)
	}
	if b, err := hex.DecodeString(hash); err != nil || len(b) != sha256.Size {
		return Receipt{}, fmt.Errorf("receipt %q: the hash must be 64 hex digits", s)
	}
	return Receipt{Seq: n, Hash: strings.ToLower(hash)}, nil
}

func (r Receipt) String() string { return fmt.Sprintf("%d:%s", r.Seq, r.Hash) }

// BadRecord says where and why a chain failed to verify.
type BadRecord struct {
	Seq    int64  // the first record that does not verify
	Reason string // what is wrong with it
}

func (b *BadRecord) Error() string {
	return fmt.Sprintf("audit chain broken at record %d: %s", b.Seq, b.Reason)
}

// Verifier checks a chain read page by page. Feed it the records in order
// with Add, then call Finish.
type Verifier struct {
	head        Head
	receipts    map[int64]string
	checkpoints map[int64]string // signed heads: the chain must pass through them (redacted or not)
	maxSeq      int64            // the furthest receipt or checkpoint
	n           int64
}

// NewVerifier starts at from (Start() for the whole log). Every receipt
// must match the record at its sequence number; a receipt beyond the last
// record means the log was cut short.
func NewVerifier(from Head, receipts ...Receipt) *Verifier {
	v := &Verifier{head: from, receipts: map[int64]string{}, checkpoints: map[int64]string{}}
	for _, r := range receipts {
		v.receipts[r.Seq] = strings.ToLower(r.Hash)
		v.maxSeq = max(v.maxSeq, r.Seq)
	}
	return v
}

// Checkpoints adds signed heads the chain must pass through; their
// signatures are the caller's to check (Checkpoint.Verify) first.
func (v *Verifier) Checkpoints(cps ...Checkpoint) {
	for _, c := range cps {
		v.checkpoints[c.Seq] = strings.ToLower(c.Hash)
		v.maxSeq = max(v.maxSeq, c.Seq)
	}
}

// Add checks the next records. Redacted records are linked by their
// digest; full records by the digest computed from their fields, so a
// changed field is caught wherever it is. The error for a bad chain is a
// *BadRecord naming the first record at fault; after it, Add fails again.
func (v *Verifier) Add(recs []Event) error {
	for i := range recs {
		r := &recs[i]
		h := v.head
		bad := func(format string, a ...any) error {
			return &BadRecord{Seq: h.Seq + 1, Reason: fmt.Sprintf(format, a...)}
		}
		if r.Seq != h.Seq+1 {
			return bad("found record %d where %d belongs (records were removed, added or reordered)", r.Seq, h.Seq+1)
		}
		digest := r.Digest
		if _, held := v.receipts[r.Seq]; held && r.Redacted() {
			// A receipt is for the holder's own record: the server must
			// show it in full, or it could hide a change behind the digest.
			return bad("you hold a receipt for this record, but the server returned it redacted (it is yours: its contents must be shown)")
		}
		if !r.Redacted() {
			digest = r.ComputeDigest()
			if r.Prev != h.Hash {
				return bad("it names %.16s… as the record before it, but that record hashes to %.16s…", r.Prev, h.Hash)
			}
		}
		hash, err := Link(h.Hash, digest)
		if err != nil {
			return bad("%v", err)
		}
		if r.Hash != hash {
			return bad("its contents hash to %.16s…, but the chain holds %.16s… (the record was changed)", hash, r.Hash)
		}
		if w, ok := v.receipts[r.Seq]; ok && w != hash {
			return bad("a receipt says %.16s…, the log %.16s… (the log was rewritten after the receipt was issued)", w, hash)
		}
		if w, ok := v.checkpoints[r.Seq]; ok && w != hash {
			return bad("lifeboatd's signed checkpoint says %.16s…, the log %.16s… (the log was rewritten after the checkpoint was signed)", w, hash)
		}
		v.head = Head{Seq: r.Seq, Hash: hash}
		v.n++
	}
	return nil
}

// Progress returns the head at the last record that verified, and how many
// did.
func (v *Verifier) Progress() (Head, int64) { return v.head, v.n }

// Finish returns the head at the last record, and the number of records
// checked, once every receipt has been met.
func (v *Verifier) Finish() (Head, int64, error) {
	if v.maxSeq > v.head.Seq {
		return v.head, v.n, &BadRecord{Seq: v.head.Seq + 1, Reason: fmt.Sprintf(
			"the log ends at record %d, but a receipt or checkpoint names record %d (records were removed from the end)", v.head.Seq, v.maxSeq)}
	}
	return v.head, v.n, nil
}

// VerifyPages checks a whole log read page by page: page(after) returns
// the records after sequence number after, none at the end. It returns the
// head at the last record that verified and how many did; a broken chain
// gives a *BadRecord, a failed read that error.
func VerifyPages(page func(after int64) ([]Event, error), receipts ...Receipt) (Head, int64, error) {
	return VerifyPagesAt(page, nil, receipts...)
}

// VerifyPagesAt is VerifyPages with signed checkpoints (their signatures
// checked by the caller) the chain must pass through.
func VerifyPagesAt(page func(after int64) ([]Event, error), cps []Checkpoint, receipts ...Receipt) (Head, int64, error) {
	v := NewVerifier(Start(), receipts...)
	v.Checkpoints(cps...)
	var after int64
	for {
		recs, err := page(after)
		if err != nil {
			h, n := v.Progress()
			return h, n, err
		}
		if len(recs) == 0 {
			return v.Finish()
		}
		if err := v.Add(recs); err != nil {
			h, n := v.Progress()
			return h, n, err
		}
		after = recs[len(recs)-1].Seq
	}
}

// Verify checks recs, which start right after from, in one go.
func Verify(recs []Event, from Head, receipts ...Receipt) (Head, error) {
	v := NewVerifier(from, receipts...)
	if err := v.Add(recs); err != nil {
		return v.head, err
	}
	h, _, err := v.Finish()
	return h, err
}
