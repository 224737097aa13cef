package store

import (
	"context"
	"time"

	"github.com/lifeboat-boot/lifeboat/pxe/store/audit"
)

// StageHistory keeps the stages boots reach (the store's boot history).
// It is derived state: queued in order with the records, not waited for.
type StageHistory interface {
	QueueStage(b Boot, s Stage, at time.Time)
}

// Steps is the one way a boot step is taken, by every protocol alike: its
// record is written first (audit rule: record, then act), then the boot
// reaches the step's stage, then that stage goes into the boot's history.
// Nothing else moves a boot's stage.
type Steps struct {
	Events  audit.Emitter
	Boots   *Boots
	History StageHistory // nil: stages are kept in memory only
}

// Begin applies a DISCOVER (or, where the site's DHCP is not ours, a
// script fetch) to the boot state machine. When it opens a new boot, the
// boot's start is recorded with ev (its Boot set here) and the error is
// that record's. It returns the boot the request belongs to (nil for an
// agent's DISCOVER with no boot in flight) and whether it just began.
func (s *Steps) Begin(ctx context.Context, mac, host string, c Client, firmware Firmware, ev audit.Event) (*Boot, bool, error) {
	b, started := s.Boots.OnDiscover(mac, host, c, firmware)
	if !started {
		return b, false, nil
	}
	ev.Boot, ev.MAC, ev.Host = b.ID, mac, host
	if err := s.Events.Emit(ctx, ev); err != nil {
		return b, true, err
	}
	if s.History != nil {
		s.History.QueueStage(*b, StageDHCP, b.Started)
	}
	return b, true, nil
}

// Step records ev and, once it is recorded, moves ev's boot (ev.MAC,
// ev.Boot) to stage. A step outside any boot (ev.Boot empty) is only
// recorded. When the record fails the stage does not move, and the caller
// must not act.
func (s *Steps) Step(ctx context.Context, ev audit.Event, stage Stage) error {
	if err := s.Events.Emit(ctx, ev); err != nil {
		return err
	}
	if ev.Boot != "" {
		s.Reached(ev.MAC, ev.Boot, stage)
	}
	return nil
}

// Record records ev, a step that moves no stage (a DHCP answer, a refused
// login, a rescue action).
func (s *Steps) Record(ctx context.Context, ev audit.Event) error { return s.Events.Emit(ctx, ev) }

// Queue records ev in order with every other record without waiting for
// it where the store can (audit.Queuer): for DHCP answers only, whose boot
// record (boot.start) was waited for.
func (s *Steps) Queue(ctx context.Context, ev audit.Event) error {
	if q, ok := s.Events.(audit.Queuer); ok {
		return q.Queue(ev)
	}
	return s.Events.Emit(ctx, ev)
}

// Reached moves a boot to stage for a step whose record a store call of
// its own already wrote in its transaction (the check-in; a report that
// ends a grant).
func (s *Steps) Reached(mac, boot string, stage Stage) {
	b, ok := s.Boots.advance(mac, boot, stage)
	if ok && s.History != nil {
		s.History.QueueStage(*b, stage, b.Times[stage])
	}
}

// Current returns a copy of the boot in flight for mac.
func (s *Steps) Current(mac string) (*Boot, bool) { return s.Boots.Current(mac) }
