package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"filippo.io/age"

	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
	"github.com/lifeboat-boot/lifeboat/pxe/recordings/sealed"
	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
	"github.com/lifeboat-boot/lifeboat/pxe/term"
)

func (e *env) recordingList(args []string) error {
	fs := e.flags("recording list")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if err := e.connect(); err != nil {
		return err
	}
	list, err := e.client.Recordings(e.ctx)
	if err != nil {
		return err
	}
	if e.json {
		return e.printJSON(nonNilList(list))
	}
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHOST\tSIZE\tLAST WRITTEN\tSEALED")
	for _, in := range list {
		sealed := "no"
		if in.Sealed {
			sealed = "yes (customer's age key)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", in.ID, clean(in.Host), in.Size, in.Modified.Local().Format(time.DateTime), sealed)
	}
	return tw.Flush()
}

func nonNilList(l []api.Recording) []api.Recording {
	if l == nil {
		return []api.Recording{}
	}
	return l
}

// openRecording fetches a recording, unsealed with the age identity file if
// one is given.
func (e *env) openRecording(id, identity string) (io.ReadCloser, error) {
	if err := e.connect(); err != nil {
		return nil, err
	}
	body, err := e.client.Recording(e.ctx, id)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(body)
	head, _ := br.Peek(len(sealed.Magic))
	if !sealed.IsSealed(head) {
		if identity != "" {
			body.Close()
			return nil, fmt.Errorf("recording %s is not sealed: drop --identity", id)
		}
		return struct {
			io.Reader
			io.Closer
		}{br, body}, nil
	}
	if identity == "" {
		return struct {
			io.Reader
			io.Closer
		}{br, body}, errSealed
	}
	defer body.Close()
	f, err := os.Open(identity)
	if err != nil {
		return nil, err
	}
	ids, err := age.ParseIdentities(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", identity, err)
	}
	var plain bytes.Buffer
	if err := sealed.Unseal(&plain, br, ids...); err != nil {
		return nil, fmt.Errorf("recording %s: %w", id, err)
	}
	return io.NopCloser(&plain), nil
}

var errSealed = errors.New("this recording is sealed to the customer's age key: give --identity FILE (their age identity)")

func (e *env) recordingGet(args []string) error {
	fs := e.flags("recording get")
	out := fs.String("o", "", "write to this file instead of standard output")
	identity := fs.String("identity", "", "age identity file to unseal a sealed recording with")
	pos, err := parse(fs, args, 1, "one recording ID")
	if err != nil {
		return err
	}
	body, err := e.openRecording(pos[0], *identity)
	if err != nil && !errors.Is(err, errSealed) {
		return err
	}
	defer body.Close()
	w := e.out
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	_, err = io.Copy(w, body)
	return err
}

// recordingPlay replays an asciicast v2 recording's output in the
// terminal, at its own pace (or faster), with long pauses cut short.
func (e *env) recordingPlay(args []string) error {
	fs := e.flags("recording play")
	speed := fs.Float64("speed", 1, "playback speed; 0 prints everything at once")
	idle := fs.Duration("idle-limit", 2*time.Second, "longest pause shown")
	identity := fs.String("identity", "", "age identity file to unseal a sealed recording with")
	pos, err := parse(fs, args, 1, "one recording ID")
	if err != nil {
		return err
	}
	body, err := e.openRecording(pos[0], *identity)
	if err != nil {
		return err
	}
	defer body.Close()
	return play(e, body, *speed, *idle)
}

func play(e *env, r io.Reader, speed float64, idle time.Duration) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 16<<20)
	if !sc.Scan() {
		return fmt.Errorf("recording: empty")
	}
	var h struct {
		Version int    `json:"version"`
		Title   string `json:"title"`
	}
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Version != 2 {
		return fmt.Errorf("recording: not asciicast v2 (header %q)", truncate(sc.Text(), 80))
	}
	last := 0.0
	for n := 2; sc.Scan(); n++ {
		var ev []json.RawMessage
		var t float64
		var kind, data string
		if json.Unmarshal(sc.Bytes(), &ev) != nil || len(ev) != 3 || json.Unmarshal(ev[0], &t) != nil ||
			json.Unmarshal(ev[1], &kind) != nil || json.Unmarshal(ev[2], &data) != nil {
			return fmt.Errorf("recording: line %d is not an event: %q", n, truncate(sc.Text(), 80))
		}
		if speed > 0 {
			wait := min(time.Duration((t-last)*float64(time.Second)/speed), idle)
			select {
			case <-e.ctx.Done():
				return e.ctx.Err()
			case <-time.After(wait):
			}
		}
		last = t
		if kind == "o" {
			if _, err := io.WriteString(e.out, data); err != nil {
				return err
			}
		}
	}
	return sc.Err()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// recordingVerify checks a recording against its audit record: the
// rescue.shell_end record of its session holds the SHA-256 of what the
// RAM image sent, so a piece swapped, changed or cut on the server shows.
func (e *env) recordingVerify(args []string) error {
	fs := e.flags("recording verify")
	identity := fs.String("identity", "", "age identity file to unseal a sealed recording with")
	pos, err := parse(fs, args, 1, "one recording ID")
	if err != nil {
		return err
	}
	id := pos[0]
	boot, name, ok := strings.Cut(id, ".")
	if !ok {
		return usageError{fmt.Sprintf("recording verify: %q is not a recording ID (BOOT.NAME, as recording list shows)", id)}
	}
	body, err := e.openRecording(id, *identity)
	if err != nil {
		return err
	}
	defer body.Close()
	h := sha256.New()
	n, err := io.Copy(h, body)
	if err != nil {
		return err
	}
	got := hex.EncodeToString(h.Sum(nil))
	var rec *audit.Event
	for after := int64(0); ; {
		page, err := e.client.AuditRecords(e.ctx, after, 1000)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		for i := range page {
			r := page[i]
			if r.Code == audit.RescueShellEnd && r.Boot == boot && r.Details["recording"] == name {
				rec = &r
			}
		}
		after = page[len(page)-1].Seq
	}
	if rec == nil {
		return fmt.Errorf("recording %s: no end record of its session among the records you may read (the session may still run, or the host lost power: then it cannot be checked)", id)
	}
	want := rec.Details["sha256"]
	if want == "" {
		return fmt.Errorf("recording %s: its end record %d holds no digest (a RAM image older than this check)", id, rec.Seq)
	}
	if got != want {
		return fmt.Errorf("RECORDING CHANGED: %s holds %d bytes with sha256 %s, but audit record %d says %s bytes with sha256 %s", id, n, got, rec.Seq, term.Clean(rec.Details["bytes"]), term.Clean(want))
	}
	fmt.Fprintf(e.out, "recording %s OK: %d bytes, sha256 %s, as audit record %d (receipt %d:%s) says\n", id, n, got, rec.Seq, rec.Seq, rec.Hash)
	return nil
}
