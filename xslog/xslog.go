// Package xslog is an xsync observer that logs through log/slog.
//
//	restore := xsync.SetObserver("", xslog.New(slog.Default()))
//
// Every event of the core becomes one record with stable attribute names:
// xsync.event (attempt, wait, hold, renew, lost, release), xsync.lock
// (mutex, semaphore, read, write, keys), xsync.backend, xsync.key,
// xsync.outcome, xsync.duration, xsync.attempts, xsync.token, xsync.run
// and error. Every kind of lock and every hold is logged the same way,
// whether a Lease or a Run holds it.
//
// Levels keep normal operation quiet at Info: attempts, waits, holds,
// renewals and releases that went as expected are Debug (contention is
// normal: Debug too, or what [WithContentionLevel] says); backend
// failures, failed renewals and releases that found the lock gone are
// Warn; a lost lock is Error, logged at the moment the lock is lost.
//
// Keys often carry user ids or emails: [WithKeys] logs a hash of them,
// or nothing, instead of the first 48 bytes.
package xslog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/internal/keys"
)

// Observer logs xsync's events. Build it with [New].
type Observer struct {
	l          *slog.Logger
	keys       KeyMode
	contention slog.Level
}

var _ xsync.Observer = (*Observer)(nil)

// KeyMode says how an [Observer] logs keys.
type KeyMode int

// The ways to log keys.
const (
	// KeysShort logs the key, shortened to its first 48 bytes with its
	// length and hash if it is longer. The default.
	KeysShort KeyMode = iota
	// KeysHash logs only a hash of the key (32-bit FNV-1a, in hex): records
	// of one key can be told apart and matched, the key not read.
	KeysHash
	// KeysNone logs no key.
	KeysNone
)

// Option configures an [Observer].
type Option func(*Observer)

// WithKeys sets how keys are logged (default [KeysShort]).
func WithKeys(m KeyMode) Option { return func(o *Observer) { o.keys = m } }

// WithContentionLevel sets the level of the records that say a lock was
// held by someone else (an attempt refused, a wait given up): Debug by
// default; Info makes contention visible in production logs.
func WithContentionLevel(l slog.Level) Option { return func(o *Observer) { o.contention = l } }

// New returns an observer that logs to l (slog.Default() if nil).
func New(l *slog.Logger, opts ...Option) *Observer {
	if l == nil {
		l = slog.Default()
	}
	o := &Observer{l: l, contention: slog.LevelDebug}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// Level returns the level an event is logged at by default: Error for a
// lost lock (or leadership), Warn for failures and locks found gone, Info
// for a leader elected or resigning, Debug otherwise.
func Level(e xsync.Event) slog.Level {
	switch {
	case e.Kind == xsync.KindLost:
		return slog.LevelError
	case e.Lock == "election" && (e.Kind == xsync.KindWait && e.Outcome == xsync.OutcomeAcquired ||
		e.Kind == xsync.KindRelease && e.Outcome == xsync.OutcomeReleased):
		return slog.LevelInfo
	case e.Outcome == xsync.OutcomeFailed,
		e.Kind == xsync.KindRenew && e.Outcome == xsync.OutcomeNotHeld,
		e.Kind == xsync.KindRelease && e.Outcome == xsync.OutcomeNotHeld,
		e.Kind == xsync.KindHold && e.Outcome == xsync.OutcomeLost:
		return slog.LevelWarn
	default:
		return slog.LevelDebug
	}
}

// level is the level o logs e at.
func (o *Observer) level(e xsync.Event) slog.Level {
	if e.Outcome == xsync.OutcomeHeld {
		return o.contention
	}
	return Level(e)
}

// Observe implements [xsync.Observer].
func (o *Observer) Observe(ctx context.Context, e xsync.Event) {
	level := o.level(e)
	if !o.l.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs,
		slog.String("xsync.event", string(e.Kind)),
		slog.String("xsync.lock", e.Lock),
		slog.String("xsync.backend", e.Backend),
	)
	switch o.keys {
	case KeysShort:
		attrs = append(attrs, slog.String("xsync.key", keys.Trim(e.Key)))
	case KeysHash:
		attrs = append(attrs, slog.String("xsync.key", fmt.Sprintf("fnv32a:%08x", keys.Hash(e.Key))))
	}
	attrs = append(attrs,
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
	o.l.LogAttrs(ctx, level, message(e), attrs...)
}

// message is a record's message: the event's kind, and for elections the
// words of elections.
func message(e xsync.Event) string {
	if e.Lock != "election" {
		return "xsync " + string(e.Kind)
	}
	switch {
	case e.Kind == xsync.KindAttempt:
		return "xsync campaign attempt"
	case e.Kind == xsync.KindWait && e.Outcome == xsync.OutcomeAcquired:
		return "xsync elected"
	case e.Kind == xsync.KindWait:
		return "xsync campaign ended"
	case e.Kind == xsync.KindRenew:
		return "xsync term renewed"
	case e.Kind == xsync.KindLost:
		return "xsync leadership lost"
	case e.Kind == xsync.KindHold:
		return "xsync term ended"
	case e.Kind == xsync.KindRelease:
		return "xsync resigned"
	}
	return "xsync " + string(e.Kind)
}
