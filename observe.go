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
// traces: every acquire attempt, every acquisition's wait, every hold's
// end, renewal, loss and release, for every kind of lock on every backend
// (the core makes every call, so no backend wrapper is needed and no
// optional capability can be lost). Adapters: package xslog (log/slog)
// and the module github.com/xsync-go/xsync/xotel (OpenTelemetry).
//
// Observe is called synchronously on the goroutine doing the work (a
// lease's timer or renewal goroutine for KindRenew, KindLost and a hold
// ended by a loss): it must be quick, must not block, and must be safe for
// concurrent use. ctx carries the caller's values. Event.Key is the lock's
// key as given, which often carries user ids: an adapter must not use it
// as a metric attribute.
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

// EventKind says what an [Event] reports.
type EventKind string

// The kinds of events. Every hold, whatever its kind of lock and whether
// Acquire or Run took it, is observed the same way: its attempts, its
// wait, its renewals, the end of the hold (with the loss, if lost), and
// its release. Lock and Unlock are observed as attempts and releases.
const (
	// KindAttempt: one acquire attempt. Outcome: OutcomeAcquired,
	// OutcomeHeld, OutcomeFailed or OutcomeCtxEnded.
	KindAttempt EventKind = "attempt"
	// KindWait: an acquisition's whole obtaining phase, from its start to
	// the lock or the giving up. Outcome as for KindAttempt (of the last
	// attempt); Attempts counts them.
	KindWait EventKind = "wait"
	// KindHold: a hold ended, once per hold: when its holder let it go
	// (Release, or Run's callback returned) or when it was lost, whichever
	// came first. Start is when the lock was obtained, Duration how long
	// it was held; Outcome is OutcomeKept, or OutcomeLost.
	KindHold EventKind = "hold"
	// KindRenew: one renewal (auto-extension or Extend). Outcome:
	// OutcomeExtended, OutcomeNotHeld or OutcomeFailed.
	KindRenew EventKind = "renew"
	// KindLost: a held lock was lost, reported at that moment (with the
	// hold's end): its validity ran out, a renewal found it gone, the
	// hold cap was reached, or its release found it gone. Err is the
	// cause (it matches ErrLockLost).
	KindLost EventKind = "lost"
	// KindRelease: one release. Outcome: OutcomeReleased, OutcomeNotHeld
	// or OutcomeFailed.
	KindRelease EventKind = "release"
)

// Outcome says how the operation of an [Event] ended. The values are
// stable: adapters use them as attribute values.
type Outcome string

// The outcomes.
const (
	OutcomeAcquired Outcome = "acquired"  // the lock was obtained
	OutcomeHeld     Outcome = "held"      // another holder had the lock
	OutcomeFailed   Outcome = "failed"    // the backend failed
	OutcomeCtxEnded Outcome = "ctx_ended" // the caller's context ended first
	OutcomeExtended Outcome = "extended"  // a renewal extended the lock
	OutcomeNotHeld  Outcome = "not_held"  // the token no longer held the lock
	OutcomeReleased Outcome = "released"  // a release freed the lock
	OutcomeKept     Outcome = "kept"      // a hold ended with the lock still trusted
	OutcomeLost     Outcome = "lost"      // a hold ended with the lock lost
)

// Event is one thing the core did. Which fields are set depends on Kind.
type Event struct {
	Kind     EventKind
	Lock     string // the kind of lock: "mutex", "semaphore", "read", "write" or "keys"
	Backend  string // the backend's name (a Client's WithName)
	Key      string // the lock's key (a multi-key lock's keys, joined with spaces): never a metric attribute
	Outcome  Outcome
	Start    time.Time     // when the operation began (KindHold: when the lock was obtained)
	Duration time.Duration // how long it took (KindLost: none)
	Attempts int           // KindWait: attempts made
	Token    Item          // the lock's token, where there is one
	Run      bool          // the event belongs to a Run (else to a Lease, or to Lock and Unlock)
	Err      error         // the backend's error (OutcomeFailed), ctx's (OutcomeCtxEnded), the cause (KindLost)
}

var (
	observers = registry.New[Observer]("SetObserver", "observer")
	// anyObserver says whether any observer is set; while none is, the
	// core looks nothing up.
	anyObserver atomic.Int32
)

// SetObserver makes o the observer of the backend named name (a Client's
// WithName, or the name it is registered under), or of every backend
// without one of its own if name is "". It returns a function that
// restores what was set before. A nil o removes the observer.
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

// observer returns the observer of the backend named name, or nil.
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

// renewOutcome classifies one renewal.
func renewOutcome(extended bool, err error) Outcome {
	switch {
	case err != nil:
		return OutcomeFailed
	case extended:
		return OutcomeExtended
	default:
		return OutcomeNotHeld
	}
}

// reportEnd tells the observer that the hold ended: kept, or lost with
// the loss (then also a KindLost event).
func (h *hold) reportEnd(ctx context.Context, lost error) {
	now := h.c.clock.Now()
	e := Event{Kind: KindHold, Lock: h.t.kind, Backend: h.c.name, Key: h.t.name, Outcome: OutcomeKept, Start: h.held,
		Duration: now.Sub(h.held), Token: Item(h.g.token), Run: h.s.run}
	if lost != nil {
		e.Outcome = OutcomeLost
	}
	h.o.Observe(ctx, e)
	if lost != nil {
		e.Kind, e.Start, e.Duration, e.Err = KindLost, now, 0, lost
		h.o.Observe(ctx, e)
	}
}

// reportRelease tells the observer of one release of the hold, begun at
// began.
func (h *hold) reportRelease(ctx context.Context, began time.Time, released bool, err error) {
	h.o.Observe(ctx, Event{Kind: KindRelease, Lock: h.t.kind, Backend: h.c.name, Key: h.t.name, Outcome: releaseOutcome(released, err),
		Start: began, Duration: h.c.clock.Now().Sub(began), Token: Item(h.g.token), Run: h.s.run, Err: err})
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
