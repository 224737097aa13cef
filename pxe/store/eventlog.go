package store

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/audit"
)

// EventLog is an append-only JSON-lines file. Each Emit is written and
// synced before it returns, so a recorded event survives a crash.
type EventLog struct {
	mu  sync.Mutex
	f   *os.File
	now func() time.Time
	// subs receive a copy of every event after it is durable (tests, and
	// later the audit chain and notices).
	subs []chan<- audit.Event
}

// OpenEventLog opens (creating if needed) the log for appending.
func OpenEventLog(path string) (*EventLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("event log: %w", err)
	}
	return &EventLog{f: f, now: time.Now}, nil
}

// Subscribe delivers future events to ch without blocking the emitter: a
// subscriber that falls behind misses events rather than stalling DHCP.
func (l *EventLog) Subscribe(ch chan<- audit.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.subs = append(l.subs, ch)
}

// Emit implements audit.Emitter.
func (l *EventLog) Emit(_ context.Context, e audit.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	line = append(line, '\n')
	if _, err := l.f.Write(line); err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	for _, ch := range l.subs {
		select {
		case ch <- e:
		default:
		}
	}
	return nil
}

// Close closes the file.
func (l *EventLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// ReadEvents reads a whole event log file, for tests and tools.
func ReadEvents(path string) ([]audit.Event, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []audit.Event
	for i, line := range splitLines(data) {
		var e audit.Event
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		if i > 0 {
			out = append(out, b[:i])
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}
