package xsync

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/registry"
)

// Observer receives what the core does with locks, for logs, metrics and
// traces: every acquire attempt, every completed wait, every hold, renewal,
// lost lock and release, on every backend (the core makes every call, so
// no backend wrapper is needed and no optional capability can be lost).
// Adapters: package xslog (log/slog) and the module
// github.com/xsync-go/xsync/xotel (OpenTelemetry).
//
// Observe is called synchronously on the goroutine doing the work (the
// renewal goroutine for KindRenew): it must be quick, must not block, and
// must be safe for concurrent use. ctx is the caller's context (for
// KindRenew, the callback's). Event.Key is the lock's key as given, which
// often carries user ids: an adapter must not use it as a metric
// attribute.
//
// With no observer set, the core builds no event and looks nothing up.
type Observer interface {
	Observe(ctx context.Context, e Event)
}

// RunStarter is implemented by observers that want to wrap a whole Run
// (a tracing span, say). StartRun is called when Run starts, before its
// first attempt, and returns the context Run then uses for everything:
// the backend calls, the callback's context, and the ctx of later events.
// The run ends with the KindWait event if the lock was not obtained, and
// with the KindRelease event of Run otherwise.
type RunStarter interface {
	StartRun(ctx context.Context, backend, key string) context.Context
}

// ShortKey is key as xsync's messages show it, and as adapters should log
// it: quoted, and if it is long, cut to its first bytes plus its length and
// a hash.
func ShortKey(key string) string { return keyString(key) }

// EventKind says what an [Event] reports.
type EventKind string

// The kinds of events.
const (
	// KindAttempt: one acquire attempt, by Lock or Run. Outcome:
	// OutcomeAcquired, OutcomeHeld, OutcomeFailed or OutcomeCtxEnded.
	KindAttempt EventKind = "attempt"
	// KindWait: Run's whole obtaining phase, from Run's start to the lock
	// or the giving up. Outcome as for KindAttempt (of the last attempt);
	// Attempts counts them.
	KindWait EventKind = "wait"
	// KindHold: the callback of Run returned (or panicked). Duration is
	// from the lock's acquisition; Outcome is OutcomeKept, or OutcomeLost
	// if the lock was lost before the callback returned.
	KindHold EventKind = "hold"
	// KindRenew: one renewal under auto-extension. Outcome:
	// OutcomeExtended, OutcomeNotHeld or OutcomeFailed.
	KindRenew EventKind = "renew"
	// KindLost: the lock was lost while the callback ran; Err is the cause
	// (it matches ErrLockLost).
	KindLost EventKind = "lost"
	// KindRelease: one release, by Run or Unlock. Outcome:
	// OutcomeReleased, OutcomeNotHeld or OutcomeFailed.
	KindRelease EventKind = "release"
)

// Outcome says how the operation of an [Event] ended. The values are
// stable: adapters use them as attribute values.
type Outcome string

// The outcomes.
const (
	OutcomeAcquired Outcome = "acquired"  // the lock was obtained
	OutcomeHeld     Outcome = "held"      // another holder had the key
	OutcomeFailed   Outcome = "failed"    // the backend failed
	OutcomeCtxEnded Outcome = "ctx_ended" // the caller's context ended first
	OutcomeExtended Outcome = "extended"  // a renewal extended the lock
	OutcomeNotHeld  Outcome = "not_held"  // the token no longer held the key
	OutcomeReleased Outcome = "released"  // a release freed the lock
	OutcomeKept     Outcome = "kept"      // a hold ended with the lock still trusted
	OutcomeLost     Outcome = "lost"      // a hold ended after the lock was lost
)

// Event is one thing the core did. Which fields are set depends on Kind.
type Event struct {
	Kind     EventKind
	Backend  string // the name the backend is registered under (a Client's WithName)
	Key      string // the lock's key: never a metric attribute
	Outcome  Outcome
	Start    time.Time     // when the operation began
	Duration time.Duration // how long it took (KindAttempt, KindWait, KindHold, KindRenew, KindRelease)
	Attempts int           // KindWait: attempts made
	Token    Item          // the lock's token, where there is one
	Run      bool          // the event comes from Run (else from Lock or Unlock)
	Err      error         // the backend's error (OutcomeFailed), ctx's (OutcomeCtxEnded), the cause (KindLost)
}

var (
	observers = registry.New[Observer]("SetObserver", "observer")
	// anyObserver says whether any observer is set; while none is, the
	// core looks nothing up.
	anyObserver atomic.Int32
)

// SetObserver makes o the observer of the backend registered (now or
// later) as name, or of every backend without one of its own if name is
// "". It returns a function that restores what was set before. A nil o
// removes the observer.
func SetObserver(name string, o Observer) (restore func()) {
	var undo func()
	if o == nil {
		prev, had := observers.Lookup(name)
		observers.Delete(name)
		undo = func() {
			if had {
				observers.Swap(name, prev)
			}
		}
	} else {
		undo = observers.Swap(name, o)
	}
	anyObserver.Store(int32(len(observers.Names())))
	return func() {
		undo()
		anyObserver.Store(int32(len(observers.Names())))
	}
}

// observer returns the observer of the backend registered as name, or
// nil.
func observer(name string) Observer {
	if anyObserver.Load() == 0 {
		return nil
	}
	if o, ok := observers.Lookup(name); ok {
		return o
	}
	o, _ := observers.Lookup("")
	return o
}

// attemptOutcome classifies one acquire attempt.
func attemptOutcome(ctx context.Context, token int64, err error) Outcome {
	switch {
	case err == nil && token > 0:
		return OutcomeAcquired
	case err == nil:
		return OutcomeHeld
	case ended(ctx) && !errors.Is(err, backend.ErrUnavailable):
		return OutcomeCtxEnded
	default:
		return OutcomeFailed
	}
}

// releaseOutcome classifies one release.
func releaseOutcome(released bool, err error) Outcome {
	switch {
	case err != nil:
		return OutcomeFailed
	case released:
		return OutcomeReleased
	default:
		return OutcomeNotHeld
	}
}

// Tee returns an observer that passes every event to each of os in turn,
// for example to log with xslog and measure with xotel at once. It is a
// [RunStarter] if any of them is; their StartRun calls are chained.
func Tee(os ...Observer) Observer {
	var t tee
	for _, o := range os {
		if o != nil {
			t = append(t, o)
		}
	}
	return t
}

type tee []Observer

func (t tee) Observe(ctx context.Context, e Event) {
	for _, o := range t {
		o.Observe(ctx, e)
	}
}

func (t tee) StartRun(ctx context.Context, backend, key string) context.Context {
	for _, o := range t {
		if rs, ok := o.(RunStarter); ok {
			ctx = rs.StartRun(ctx, backend, key)
		}
	}
	return ctx
}
