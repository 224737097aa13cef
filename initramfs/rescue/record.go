package rescue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Sink stores the next piece of a recording, which starts offset bytes into
// it; it returns once the piece is durable. Pieces are sent in order, and a
// piece that failed is sent again (with more after it) at the next flush.
type Sink func(ctx context.Context, offset int64, data []byte) error

// Recorder writes a session's output as asciicast v2
// (https://docs.asciinema.org/manual/asciicast/v2/) and streams it to a
// Sink every FlushEvery, so that a power cut loses seconds of it at most.
// Input is never recorded: it may hold passwords.
type Recorder struct {
	Sink       Sink
	FlushEvery time.Duration // default 1s
	// MaxUnsent bounds what may wait for the server; beyond it Write fails,
	// which ends the session: a shell that cannot be recorded may not run.
	MaxUnsent int // default 4 MiB

	mu      sync.Mutex
	start   time.Time
	pending []byte
	sent    int64
	err     error
	wake    chan struct{}
	done    chan struct{}
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
	r.pending = append(line, '\n')
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

// flush sends what is pending; it reports whether the recorder is closed
// and everything is sent.
func (r *Recorder) flush(ctx context.Context) bool {
	r.mu.Lock()
	data, off, closing := r.pending, r.sent, r.err != nil
	r.mu.Unlock()
	if len(data) == 0 {
		return closing
	}
	if err := r.Sink(ctx, off, data); err != nil {
		return false // kept; tried again at the next tick
	}
	r.mu.Lock()
	r.pending = r.pending[len(data):]
	r.sent += int64(len(data))
	left := len(r.pending)
	r.mu.Unlock()
	return closing && left == 0
}

func (r *Recorder) event(kind, data string) error {
	line, _ := json.Marshal([]any{float64(time.Since(r.start).Microseconds()) / 1e6, kind, data})
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if len(r.pending) > r.MaxUnsent {
		return ErrUnrecorded
	}
	r.pending = append(append(r.pending, line...), '\n')
	return nil
}

// Write records output. Invalid UTF-8 is carried as U+FFFD by the JSON
// encoding, as asciinema's own recorder does.
func (r *Recorder) Write(p []byte) (int, error) {
	if err := r.event("o", string(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Resize records a terminal size change.
func (r *Recorder) Resize(cols, rows uint32) error {
	return r.event("r", fmt.Sprintf("%dx%d", cols, rows))
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
	if len(r.pending) > 0 {
		return r.sent, fmt.Errorf("%w: %d bytes not sent", ErrUnrecorded, len(r.pending))
	}
	return r.sent, nil
}
