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

// EventLog is an append-only JSON-lines file. Emit returns only once its
// event is written and synced, so a recorded event survives a crash.
// Concurrent emitters share fsyncs (group commit): while one sync runs, the
// lines written meanwhile wait for the next, which covers them all.
type EventLog struct {
	mu      sync.Mutex
	f       *os.File
	now     func() time.Time
	written uint64 // lines written to the file
	synced  uint64 // lines known to be on disk
	syncing bool
	err     error // a failed sync poisons the log: nothing after it is durable
	cond    *sync.Cond
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
	l := &EventLog{f: f, now: time.Now}
	l.cond = sync.NewCond(&l.mu)
	return l, nil
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
	if l.err != nil {
		return l.err
	}
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("event log: %w", err)
	}
	if _, err := l.f.Write(append(line, '\n')); err != nil {
		l.err = fmt.Errorf("event log: %w", err)
		return l.err
	}
	l.written++
	mine := l.written
	for l.synced < mine && l.err == nil {
		if l.syncing {
			l.cond.Wait()
			continue
		}
		// Become the syncer for everything written so far.
		l.syncing = true
		target := l.written
		l.mu.Unlock()
		err := l.f.Sync()
		l.mu.Lock()
		l.syncing = false
		if err != nil {
			l.err = fmt.Errorf("event log: %w", err)
		} else {
			l.synced = target
		}
		l.cond.Broadcast()
	}
	if l.err != nil {
		return l.err
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
