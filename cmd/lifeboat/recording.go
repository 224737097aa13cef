package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"filippo.io/age"

	"github.com/lifeboat-boot/lifeboat/pxe/operator/api"
	"github.com/lifeboat-boot/lifeboat/pxe/recordings/sealed"
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
