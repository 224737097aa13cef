package audit

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// chain returns n sealed records, every third one of customer "acme".
func chain(n int) []Event {
	var recs []Event
	h := Start()
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 123456789, time.UTC)
	for i := range n {
		e := Event{Time: t0.Add(time.Duration(i) * time.Second), Code: BootStart, Host: fmt.Sprintf("web-%02d", i%5),
			Actor: "system", Details: map[string]string{"firmware": "bios", "n": fmt.Sprint(i)}}
		if i%3 == 0 {
			e.Customer = "acme"
		}
		h = Seal(&e, h)
		recs = append(recs, e)
	}
	return recs
}

func TestChainVerifies(t *testing.T) {
	recs := chain(20)
	h, err := Verify(recs, Start())
	if err != nil {
		t.Fatal(err)
	}
	if h.Seq != 20 || h.Hash != recs[19].Hash {
		t.Fatalf("head = %+v", h)
	}
	// From a later head, in pages.
	v := NewVerifier(Head{Seq: 5, Hash: recs[4].Hash}, Receipt{Seq: 12, Hash: recs[11].Hash})
	for _, page := range [][]Event{recs[5:9], recs[9:10], recs[10:]} {
		if err := v.Add(page); err != nil {
			t.Fatal(err)
		}
	}
	if h, n, err := v.Finish(); err != nil || h.Seq != 20 || n != 15 {
		t.Fatalf("Finish = %+v, %d, %v", h, n, err)
	}
	// Salts differ: equal records do not share digests.
	a, b := Event{Time: time.Unix(1, 0)}, Event{Time: time.Unix(1, 0)}
	Seal(&a, Start())
	Seal(&b, Start())
	if a.ComputeDigest() == b.ComputeDigest() {
		t.Error("two records with the same fields have the same digest")
	}
}

// A customer sees their own records and the digests of the others, and can
// verify the whole chain with that.
func TestRedactedChainVerifies(t *testing.T) {
	recs := chain(30)
	view := make([]Event, len(recs))
	for i, r := range recs {
		if r.Customer == "acme" {
			view[i] = r
		} else {
			view[i] = Redact(r)
			if view[i].Host != "" || view[i].Code != "" || len(view[i].Details) > 0 || view[i].Salt != "" {
				t.Fatalf("redacted record tells %+v", view[i])
			}
		}
	}
	if _, err := Verify(view, Start(), Receipt{Seq: 28, Hash: recs[27].Hash}); err != nil { // acme's last
		t.Fatal(err)
	}
	// Rewriting one of the customer's records and recomputing every hash
	// after it does not help: the receipt catches it.
	forged := slices.Clone(view)
	forged[3].Details = map[string]string{"firmware": "uefi"}
	h := Head{Seq: 3, Hash: forged[2].Hash}
	for i := 3; i < len(forged); i++ {
		if forged[i].Redacted() {
			forged[i].Hash, _ = Link(h.Hash, forged[i].Digest)
		} else {
			forged[i].Prev = h.Hash
			forged[i].Hash, _ = Link(h.Hash, forged[i].ComputeDigest())
		}
		h = Head{Seq: forged[i].Seq, Hash: forged[i].Hash}
	}
	if _, err := Verify(forged, Start()); err != nil {
		t.Fatalf("a consistently rewritten chain without receipts: %v (expected to pass: only a receipt can tell)", err)
	}
	var bad *BadRecord
	if _, err := Verify(forged, Start(), Receipt{Seq: 10, Hash: recs[9].Hash}); !errors.As(err, &bad) || bad.Seq != 10 {
		t.Fatalf("rewritten chain against a receipt: %v", err)
	}
}

// Every kind of tampering is detected, at the first record at fault.
func TestTamperDetected(t *testing.T) {
	tests := []struct {
		name     string
		tamper   func([]Event) []Event
		receipts func([]Event) []Receipt
		at       int64
		reason   string
	}{
		{"change a detail", func(r []Event) []Event { r[4].Details["firmware"] = "uefi"; return r }, nil, 5, "changed"},
		{"change the time", func(r []Event) []Event { r[6].Time = r[6].Time.Add(time.Nanosecond); return r }, nil, 7, "changed"},
		{"change the code", func(r []Event) []Event { r[0].Code = UnlockSuccess; return r }, nil, 1, "changed"},
		{"change the customer", func(r []Event) []Event { r[3].Customer = "other"; return r }, nil, 4, "changed"},
		{"flip a hash byte", func(r []Event) []Event { r[8].Hash = flip(r[8].Hash); return r }, nil, 9, "changed"},
		{"flip a prev byte", func(r []Event) []Event { r[8].Prev = flip(r[8].Prev); return r }, nil, 9, "before it"},
		{"flip a salt byte", func(r []Event) []Event { r[2].Salt = flip(r[2].Salt); return r }, nil, 3, "changed"},
		{"delete a record", func(r []Event) []Event { return slices.Delete(r, 5, 6) }, nil, 6, "removed"},
		{"delete the first", func(r []Event) []Event { return r[1:] }, nil, 1, "removed"},
		{"swap two records", func(r []Event) []Event { r[3], r[4] = r[4], r[3]; return r }, nil, 4, "reordered"},
		{"swap and renumber", func(r []Event) []Event {
			r[3], r[4] = r[4], r[3]
			r[3].Seq, r[4].Seq = 4, 5
			return r
		}, nil, 4, "before it"},
		{"insert a record", func(r []Event) []Event {
			e := r[2]
			e.Details = map[string]string{"x": "y"}
			return slices.Insert(r, 3, e)
		}, nil, 4, "reordered"},
		{"truncate the tail", func(r []Event) []Event { return r[:15] },
			func(r []Event) []Receipt { return []Receipt{{Seq: 18, Hash: r[17].Hash}} }, 16, "removed from the end"},
		{"rewrite before a receipt", func(r []Event) []Event {
			r[1].Hash = strings.Repeat("a", 64)
			return r
		}, func(r []Event) []Receipt { return []Receipt{{Seq: 2, Hash: r[1].Hash}} }, 2, "changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := chain(20)
			var receipts []Receipt
			if tt.receipts != nil {
				receipts = tt.receipts(recs)
			}
			_, err := Verify(tt.tamper(recs), Start(), receipts...)
			var bad *BadRecord
			if !errors.As(err, &bad) {
				t.Fatalf("Verify = %v, want a *BadRecord", err)
			}
			if bad.Seq != tt.at || !strings.Contains(bad.Reason, tt.reason) {
				t.Fatalf("Verify = %v, want record %d (%s)", err, tt.at, tt.reason)
			}
		})
	}
}

func flip(hexs string) string {
	b := []byte(hexs)
	if b[10] == '0' {
		b[10] = '1'
	} else {
		b[10] = '0'
	}
	return string(b)
}

func TestParseReceipt(t *testing.T) {
	good := "12:" + strings.Repeat("ab", 32)
	if r, err := ParseReceipt(good); err != nil || r.Seq != 12 || r.String() != good {
		t.Fatalf("ParseReceipt(%q) = %+v, %v", good, r, err)
	}
	for _, s := range []string{"", "12", "x:" + strings.Repeat("ab", 32), "0:" + strings.Repeat("ab", 32), "12:abc", "12:" + strings.Repeat("zz", 32)} {
		if _, err := ParseReceipt(s); err == nil {
			t.Errorf("ParseReceipt(%q) passed", s)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add(5, 2, byte('x'))
	f.Fuzz(func(t *testing.T, n, at int, c byte) {
		if n < 1 || n > 50 {
			return
		}
		recs := chain(n)
		i := ((at % n) + n) % n
		before := recs[i].Actor
		recs[i].Actor += string([]byte{c})
		_, err := Verify(recs, Start())
		if recs[i].Actor != before && err == nil {
			t.Fatalf("a changed actor at record %d went unnoticed", i+1)
		}
	})
}

// FuzzParseReceipt: receipts come from the command line and the API's query
// string; anything either accepted must print back to itself.
func FuzzParseReceipt(f *testing.F) {
	f.Add("12:" + strings.Repeat("ab", 32))
	f.Add("0:")
	f.Add("-1:" + strings.Repeat("AB", 32))
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReceipt(s)
		if err != nil {
			return
		}
		again, err := ParseReceipt(r.String())
		if err != nil || again != r || r.Seq < 1 || len(r.Hash) != 64 {
			t.Fatalf("ParseReceipt(%q) = %+v; again %+v, %v", s, r, again, err)
		}
	})
}

// BenchmarkSeal is the chain's CPU cost per record.
func BenchmarkSeal(b *testing.B) {
	e := Event{Time: time.Now(), Code: DHCPAck, Customer: "acme", MAC: "52:54:00:00:00:01", Host: "web-01", Boot: "b-0123456789abcdef",
		Actor: "system", Details: map[string]string{"ip": "10.0.0.11", "client": "ipxe", "firmware": "bios"}}
	h := Start()
	for b.Loop() {
		h = Seal(&e, h)
	}
}

// TestReceiptedRecordRedacted: a server that returns a record the
// customer holds a receipt for as a bare digest is caught, even with the
// right hash: the customer's own record must be shown.
func TestReceiptedRecordRedacted(t *testing.T) {
	recs := chain(10)
	view := slices.Clone(recs)
	view[4] = Redact(view[4])
	var bad *BadRecord
	if _, err := Verify(view, Start(), Receipt{Seq: 5, Hash: recs[4].Hash}); !errors.As(err, &bad) || bad.Seq != 5 || !strings.Contains(bad.Reason, "redacted") {
		t.Fatalf("receipted record redacted: %v", err)
	}
	if _, err := Verify(view, Start(), Receipt{Seq: 6, Hash: recs[5].Hash}); err != nil {
		t.Fatalf("another record redacted: %v", err)
	}
}
