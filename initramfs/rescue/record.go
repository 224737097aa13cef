package rescue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Sink stores the next piece of a recording, which starts offset bytes into
// it; it returns once the piece is durable. Pieces are sent in order, and a
// piece that failed is sent again (with more after it) at the next flush.
type Sink func(ctx context.Context, offset int64, data []byte) error

// Recorder writes a session's output as asciicast v2
// (https://docs.asciinema.org/manual/asciicast/v2/) and streams it to a
// Sink every FlushEvery, so that a power cut loses seconds of it at most.
// Input is never recorded: it may hold passwords.
//
// Write only queues a copy of the output with its time; the encoding and
// the sending happen in the recorder's own goroutine, off the path from the
// shell to the client.
type Recorder struct {
	Sink       Sink
	FlushEvery time.Duration // default 1s
	// MaxUnsent bounds what may wait for the server; beyond it Write fails,
	// which ends the session: a shell that cannot be recorded may not run.
	MaxUnsent int // default 4 MiB

	mu     sync.Mutex
	start  time.Time
	queue  []rawEvent
	unsent int   // output bytes queued or encoded but not yet sent
	sent   int64 // recording bytes the server holds
	left   int   // encoded bytes not sent
	err    error
	wake   chan struct{}
	done   chan struct{}

	// Owned by the flushing goroutine.
	encoded    []byte    // encoded, not yet sent
	encodedRaw int       // output bytes in encoded
	sum        hash.Hash // SHA-256 of what the server holds, in order (under mu once sent)
}

type rawEvent struct {
	t    time.Duration
	kind string
	data []byte
}

// ErrUnrecorded means the recording could not reach the server in time.
var ErrUnrecorded = errors.New("the session's recording cannot reach the server")

// Header is the asciicast v2 header line.
type Header struct {
	Version   int               `json:"version"`
	Width     uint32            `json:"width"`
	Height    uint32            `json:"height"`
	Timestamp int64             `json:"timestamp"`
	Title     string            `json:"title,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
}

// Start writes the header and begins streaming until ctx ends or Close.
func (r *Recorder) Start(ctx context.Context, h Header) {
	r.start = time.Now()
	h.Version, h.Timestamp = 2, r.start.Unix()
	line, _ := json.Marshal(h)
	r.encoded = append(line, '\n')
	r.left = len(r.encoded)
	if r.FlushEvery == 0 {
		r.FlushEvery = time.Second
	}
	if r.MaxUnsent == 0 {
		r.MaxUnsent = 4 << 20
	}
	r.wake, r.done = make(chan struct{}, 1), make(chan struct{})
	go r.loop(ctx)
}

func (r *Recorder) loop(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.wake:
		}
		if r.flush(ctx) {
			return
		}
	}
}

// flush encodes what is queued and sends what is encoded; it reports
// whether the recorder is closed and everything is sent.
func (r *Recorder) flush(ctx context.Context) bool {
	r.mu.Lock()
	q, closing := r.queue, r.err != nil
	r.queue = nil
	r.mu.Unlock()
	for _, ev := range q {
		r.encoded = appendEvent(r.encoded, ev.t, ev.kind, ev.data)
		r.encodedRaw += len(ev.data)
	}
	r.mu.Lock()
	r.left = len(r.encoded)
	r.mu.Unlock()
	if len(r.encoded) == 0 {
		return closing
	}
	r.mu.Lock()
	off := r.sent
	r.mu.Unlock()
	if err := r.Sink(ctx, off, r.encoded); err != nil {
		return false // kept; sent again, with more, at the next tick
	}
	r.mu.Lock()
	if r.sum == nil {
		r.sum = sha256.New()
	}
	r.sum.Write(r.encoded)
	r.sent += int64(len(r.encoded))
	r.unsent -= r.encodedRaw
	r.left = 0
	more := len(r.queue) > 0
	r.mu.Unlock()
	r.encoded, r.encodedRaw = r.encoded[:0], 0
	return closing && !more
}

func (r *Recorder) event(kind string, data []byte) error {
	ev := rawEvent{t: time.Since(r.start), kind: kind, data: append([]byte(nil), data...)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if r.unsent > r.MaxUnsent {
		return ErrUnrecorded
	}
	r.queue = append(r.queue, ev)
	r.unsent += len(data)
	return nil
}

// appendEvent appends one event line, [seconds, kind, data], encoding data
// as a JSON string straight into b: a shell's output passes through here
// byte by byte, and encoding/json's reflection cost a fifth of the
// throughput.
func appendEvent(b []byte, t time.Duration, kind string, data []byte) []byte {
	b = append(b, '[')
	b = strconv.AppendFloat(b, t.Seconds(), 'f', 6, 64)
	b = append(b, `, "`...)
	b = append(b, kind...)
	b = append(b, `", "`...)
	b = appendJSONString(b, data)
	return append(b, "\"]\n"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s, escaped for a JSON string (RFC 8259), with
// invalid UTF-8 as U+FFFD, as asciinema's own recorder carries it.
func appendJSONString(b, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\\ufffd"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

// Write records output.
func (r *Recorder) Write(p []byte) (int, error) {
	if err := r.event("o", p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Resize records a terminal size change.
func (r *Recorder) Resize(cols, rows uint32) error {
	return r.event("r", fmt.Appendf(nil, "%dx%d", cols, rows))
}

// Sum is the SHA-256 (hex) of the recording as the server holds it, so
// far: its end record carries it, and whoever replays the recording can
// check that no piece was swapped, changed or cut.
func (r *Recorder) Sum() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sum == nil {
		return hex.EncodeToString(sha256.New().Sum(nil))
	}
	return hex.EncodeToString(r.sum.Sum(nil))
}

// Close ends the recording and waits (up to wait) until the rest is sent.
// It returns the bytes the server holds and an error if some did not reach it.
func (r *Recorder) Close(wait time.Duration) (int64, error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = errors.New("recording closed")
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	select {
	case <-r.done:
	case <-time.After(wait):
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.left > 0 || len(r.queue) > 0 || r.unsent > 0 {
		return r.sent, fmt.Errorf("%w: %d bytes of output not sent", ErrUnrecorded, r.unsent)
	}
	return r.sent, nil
}
