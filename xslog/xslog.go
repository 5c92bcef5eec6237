// Package xslog is an xsync observer that logs through log/slog.
//
//	restore := xsync.SetObserver("", xslog.New(slog.Default()))
//
// Every event of the core becomes one record with stable attribute names:
// xsync.event (attempt, wait, hold, renew, lost, release), xsync.backend,
// xsync.key (shortened: at most 48 bytes of it, with its length and a hash),
// xsync.outcome, xsync.duration, xsync.attempts, xsync.token, xsync.run and
// error. Levels keep normal operation quiet at Info: attempts, waits, holds,
// renewals and releases that went as expected are Debug (contention is
// normal: Debug too); backend failures, failed renewals and releases that
// found the lock gone are Warn; a lost lock is Error.
package xslog

import (
	"context"
	"log/slog"

	"github.com/xsync-go/xsync"
)

// Observer logs xsync's events. Build it with [New].
type Observer struct {
	l *slog.Logger
}

var _ xsync.Observer = (*Observer)(nil)

// New returns an observer that logs to l (slog.Default() if nil).
func New(l *slog.Logger) *Observer {
	if l == nil {
		l = slog.Default()
	}
	return &Observer{l: l}
}

// Level returns the level an event is logged at.
func Level(e xsync.Event) slog.Level {
	switch {
	case e.Kind == xsync.KindLost:
		return slog.LevelError
	case e.Outcome == xsync.OutcomeFailed,
		e.Kind == xsync.KindRenew && e.Outcome == xsync.OutcomeNotHeld,
		e.Kind == xsync.KindRelease && e.Outcome == xsync.OutcomeNotHeld,
		e.Kind == xsync.KindHold && e.Outcome == xsync.OutcomeLost:
		return slog.LevelWarn
	default:
		return slog.LevelDebug
	}
}

// Observe implements [xsync.Observer].
func (o *Observer) Observe(ctx context.Context, e xsync.Event) {
	level := Level(e)
	if !o.l.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 9)
	attrs = append(attrs,
		slog.String("xsync.event", string(e.Kind)),
		slog.String("xsync.backend", e.Backend),
		slog.String("xsync.key", xsync.ShortKey(e.Key)),
		slog.String("xsync.outcome", string(e.Outcome)),
		slog.Bool("xsync.run", e.Run),
	)
	if e.Duration > 0 {
		attrs = append(attrs, slog.Duration("xsync.duration", e.Duration))
	}
	if e.Attempts > 0 {
		attrs = append(attrs, slog.Int("xsync.attempts", e.Attempts))
	}
	if e.Token > 0 {
		attrs = append(attrs, slog.Int64("xsync.token", int64(e.Token)))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("error", e.Err.Error()))
	}
	o.l.LogAttrs(ctx, level, "xsync "+string(e.Kind), attrs...)
}
