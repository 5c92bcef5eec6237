package xsync

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// DefaultExp is the lock lifetime (TTL) that [New] gives an Async.
const DefaultExp = time.Second

// maxReleaseTimeout bounds how long Run spends releasing a lock after the
// callback returned. Release never takes longer than the lock's own TTL
// either: past that the lock has expired anyway.
const maxReleaseTimeout = 5 * time.Second

// Async runs a callback while holding a lock on one key. Build it with
// [New], adjust it with the Set* methods, and call [Async.Run]. An Async
// may be reused and its Run called concurrently; the Set* methods must not
// race with Run on the same Async.
type Async struct {
	name, key string
	exp       time.Duration
	retries   int32
	interval  time.Duration
	extend    bool
	maxHold   time.Duration
}

// New returns an Async for key on the backend registered as name, with a
// lock lifetime (exp) of 1s ([DefaultExp]), no retry, and no
// auto-extension. New does not validate its arguments; Run does.
func New(name string, key string) *Async {
	return &Async{name: name, key: key, exp: DefaultExp}
}

// SetExp sets the lock's lifetime (TTL). exp must be at least one second;
// size it to the time the callback may take (for example the timeout of
// the request that runs it). The default is 1s. On bad input SetExp
// returns an error matching [ErrInvalid] and changes nothing.
func (a *Async) SetExp(exp time.Duration) error {
	if exp < time.Second {
		return fmt.Errorf("%w: exp %v: must be at least 1s", ErrInvalid, exp)
	}
	a.exp = exp
	return nil
}

// SetRetry sets how long Run waits for a held key: up to cnt more timed
// attempts after the first one, each after a random wait between
// interval/2 and interval (so that contenders do not retry in step), in all
// at most about cnt × interval. With a backend that reports releases, a
// waiter also tries as soon as the key is released or expires; such an
// attempt does not use up one of the cnt. The default is no retry. cnt and
// interval must be >= 0; otherwise SetRetry returns an error matching
// [ErrInvalid] and changes nothing.
func (a *Async) SetRetry(cnt int32, interval time.Duration) error {
	if cnt < 0 {
		return fmt.Errorf("%w: retry count %d: must be >= 0", ErrInvalid, cnt)
	}
	if interval < 0 {
		return fmt.Errorf("%w: retry interval %v: must be >= 0", ErrInvalid, interval)
	}
	a.retries, a.interval = cnt, interval
	return nil
}

// SetAutoExtend turns auto-extension on or off. With it on, Run renews the
// lock in the background, every exp/3, for as long as the callback runs;
// if a renewal finds the lock gone, or no renewal succeeds before the lock
// expires, the callback's context is cancelled with a cause matching
// [ErrLockLost]. maxHold > 0 caps the total hold time: renewal stops and
// the callback's context is cancelled (cause matching ErrLockLost) maxHold
// after the lock was requested. maxHold == 0 means no cap. The default is
// off.
//
// Auto-extension needs a backend that can refresh locks
// ([backend.Refresher]); on one that cannot, Run fails with an error
// matching errors.ErrUnsupported before it tries to lock. maxHold must be
// >= 0; otherwise SetAutoExtend returns an error matching [ErrInvalid] and
// changes nothing.
func (a *Async) SetAutoExtend(on bool, maxHold time.Duration) error {
	if maxHold < 0 {
		return fmt.Errorf("%w: max hold %v: must be >= 0", ErrInvalid, maxHold)
	}
	a.extend, a.maxHold = on, maxHold
	return nil
}

type itemKey struct{}

// itemCtx carries the held Item. It is context.WithValue without boxing
// the Item on every Run; every other Value lookup (including the one
// context.Cause makes) goes to the wrapped context.
type itemCtx struct {
	context.Context
	item Item
}

func (c *itemCtx) Value(key any) any {
	if _, ok := key.(itemKey); ok {
		return c.item
	}
	return c.Context.Value(key)
}

// ItemFromContext returns the Item held by the [Async.Run] whose callback
// received ctx (or a context derived from it), or 0 if there is none. Pass
// it to the protected resource as a fencing token.
func ItemFromContext(ctx context.Context) Item {
	item, _ := ctx.Value(itemKey{}).(Item)
	return item
}

// Run obtains the lock, calls cb while holding it, and releases it.
//
// Obtaining: Run makes one attempt and, if the key is held, waits and tries
// again (see [Async.SetRetry]): in all about cnt × interval. Each of the cnt
// retries waits between interval/2 and interval; with a backend that reports
// releases, a waiter also tries as soon as the key is released or expires,
// and such an attempt does not use up a retry. The error says what happened:
//
//   - the key was held at the last attempt: [ErrMissingLock];
//   - ctx ended while Run waited for a held key, or before an attempt could
//     tell (a deadline that passed during the request counts as ctx's
//     error even if the client reported a read timeout first): ErrMissingLock
//     and ctx's error;
//   - the last attempt failed on the backend (server down, network): that
//     error, wrapped, and ctx's error too if ctx ended while Run waited to
//     try again. It does not match ErrMissingLock: an outage is not
//     contention.
//
// An attempt whose outcome is unknown (ctx ended or the call failed after
// the request may have reached the server) is cleaned up by the backend,
// best effort and bounded, so that a lock taken by it does not stay held
// for its TTL; each backend's documentation states the window that
// remains.
//
// Holding: cb receives a context derived from ctx that carries the Item
// ([ItemFromContext]) and that is cancelled, with a cause matching
// [ErrLockLost], when the lock can no longer be trusted: when its TTL
// (measured from just before the request to lock, and shortened by the
// backend's allowance for clock drift if it has one) runs out, or with
// auto-extension on when renewal finds the lock gone, when no renewal
// succeeded before that moment, or when maxHold is reached. The moment is
// kept by a timer of the core: a renewal call that hangs, or a client that
// ignores its context, cannot keep the context alive past it, and a
// renewal that answers after it cannot revive it. Without auto-extension
// the context's Deadline is that moment.
//
// Releasing: the lock is released when cb returns, also when it panics (the
// panic then goes on) and also when ctx has ended: the release runs on a
// context detached from ctx, with a timeout of exp or 5s, whichever is
// shorter. Run returns cb's error as it is, except that if the lock was lost
// before cb returned (or the backend no longer held it at release), the
// returned error also matches ErrLockLost: mutual exclusion may not have
// held, so the caller should treat the work as unprotected. A failed
// release is not reported: the lock expires after its TTL anyway. (Unlocking
// the Item inside cb is therefore reported as a loss too: Run's own release
// finds nothing to release. Let Run release.) Run returns once the renewal
// and the release have returned: with a client that ignores contexts and a
// frozen server, that is the client's own timeout, although cb's context
// ended on time.
//
// Bad input (empty key, key over [MaxKeyLen], nil cb, unknown backend)
// returns an error matching [ErrInvalid] or [ErrUnknownBackend] without
// reaching the backend.
func (a Async) Run(ctx context.Context, cb func(ctx context.Context) error) error {
	if cb == nil {
		return fmt.Errorf("%w: nil callback", ErrInvalid)
	}
	l, err := check(a.name, a.key)
	if err != nil {
		return err
	}
	if a.exp < time.Second { // only a zero Async (not made by New) gets here
		return fmt.Errorf("%w: exp %v: must be at least 1s", ErrInvalid, a.exp)
	}
	var r backend.Refresher
	if a.extend {
		var ok bool
		if r, ok = l.(backend.Refresher); !ok {
			return fmt.Errorf("xsync: auto-extension: backend %q cannot refresh locks: %w", a.name, errors.ErrUnsupported)
		}
	}
	o := observer(a.name)
	var began time.Time
	if o != nil {
		began = time.Now()
		if rs, ok := o.(RunStarter); ok {
			ctx = rs.StartRun(ctx, a.name, a.key)
		}
	}
	token, start, attempts, err := a.acquire(ctx, l, o)
	if o != nil {
		out := OutcomeAcquired
		switch {
		case err == nil:
		case errors.Is(err, ErrMissingLock) && ended(ctx):
			out = OutcomeCtxEnded
		case errors.Is(err, ErrMissingLock):
			out = OutcomeHeld
		default:
			out = OutcomeFailed
		}
		o.Observe(ctx, Event{Kind: KindWait, Backend: a.name, Key: a.key, Outcome: out, Start: began,
			Duration: time.Since(began), Attempts: attempts, Token: Item(token), Run: true, Err: err})
	}
	if err != nil {
		return err
	}
	h := held{a: a, l: l, o: o, token: token, deadline: start.Add(a.exp)}
	if o != nil {
		h.acquired = time.Now()
	}
	if v, ok := l.(backend.Validity); ok {
		h.deadline = start.Add(min(max(v.Validity(a.exp), 0), a.exp))
	}
	if r != nil {
		return h.runRenewing(ctx, r, start, cb)
	}
	return h.run(ctx, cb)
}

// held is one lock that Run obtained: what holding and releasing it need.
type held struct {
	a        Async // a copy: the Set* methods may run after Run returns
	l        Locker
	o        Observer // nil: nothing observes
	token    int64
	deadline time.Time // the lock can be trusted until then (its first validity)
	acquired time.Time // when acquire returned (set only for an observer)
}

// run calls cb with a context that ends at the lock's deadline.
func (h *held) run(ctx context.Context, cb func(context.Context) error) error {
	cbCtx, cancel := context.WithDeadlineCause(ctx, h.deadline, errExpired)
	return h.call(ctx, cbCtx, cancel, cb)
}

// ended reports whether ctx has ended, or its deadline has passed although
// its timer has not fired yet (a client's read deadline can fire first).
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// ctxError is ctx's error once [ended] is true.
func ctxError(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return context.DeadlineExceeded
}

// acquire makes the first attempt and, while the key is held, up to
// a.retries more at timed intervals, plus one whenever the backend reports
// that the key may have become free. It returns the token, the time just
// before the successful request was sent, and how many attempts it made.
func (a *Async) acquire(ctx context.Context, l Locker, o Observer) (int64, time.Time, int, error) {
	var (
		n       int
		failure error // the last attempt's backend error; nil if it found the key held
		retries int32 // timed retries made
		ready   <-chan struct{}
		watched bool
		timer   *time.Timer
	)
	for {
		if ended(ctx) {
			return 0, time.Time{}, n, a.endedErr(ctx, failure)
		}
		start := time.Now()
		token, err := l.Acquire(ctx, a.key, a.exp)
		n++
		if o != nil {
			o.Observe(ctx, Event{Kind: KindAttempt, Backend: a.name, Key: a.key, Outcome: attemptOutcome(ctx, token, err),
				Start: start, Duration: time.Since(start), Token: Item(max(token, 0)), Run: true, Err: err})
		}
		switch {
		case err == nil && token > 0:
			return token, start, n, nil
		case err != nil && ended(ctx) && !errors.Is(err, backend.ErrUnavailable):
			// Cut short by ctx: the outcome is unknown (the backend cleaned
			// up), and what came before decides the error.
			return 0, time.Time{}, n, a.endedErr(ctx, failure)
		}
		failure = err
		if retries >= a.retries {
			if failure != nil {
				return 0, time.Time{}, n, fmt.Errorf("xsync: lock %s on backend %q: %w", keyString(a.key), a.name, failure)
			}
			return 0, time.Time{}, n, fmt.Errorf("%w: %s is held", ErrMissingLock, keyString(a.key))
		}
		if timer == nil {
			timer = time.NewTimer(a.wait())
			defer timer.Stop()
		}
		// Watch the key from the first contended attempt on (with a zero
		// interval there is no wait to cut short). A watch that fails to
		// start is not an error: the interval bounds every wait, the
		// watch's set-up included.
		if w, ok := l.(backend.Watcher); ok && !watched && failure == nil && a.interval > 0 {
			watched = true
			wctx, cancel := context.WithTimeout(ctx, a.interval)
			ch, stop, werr := w.Watch(wctx, a.key)
			cancel()
			if werr == nil {
				ready = ch
				defer stop()
			}
		}
		// A notification leaves the timer running: attempts it causes do
		// not use up a retry, and the timed retries keep their pace, so the
		// whole wait stays within about retries × interval.
		select {
		case <-ready:
		case <-timer.C:
			retries++
			timer.Reset(a.wait())
		case <-ctx.Done():
			return 0, time.Time{}, n, a.endedErr(ctx, failure)
		}
	}
}

// wait returns how long to wait before the next timed attempt at most: a
// random time between interval/2 and interval, so that contenders that
// failed together do not retry together (Redlock's split votes need this).
func (a *Async) wait() time.Duration {
	if a.interval <= 1 {
		return a.interval
	}
	return a.interval/2 + rand.N(a.interval/2+1)
}

// endedErr is the error of an acquire that ctx ended: the last backend
// failure if the last attempt that told anything failed, ErrMissingLock
// otherwise; and ctx's error in both cases.
func (a *Async) endedErr(ctx context.Context, failure error) error {
	if failure != nil {
		return fmt.Errorf("xsync: lock %s on backend %q: %w (then the context ended: %w)", keyString(a.key), a.name, failure, ctxError(ctx))
	}
	return fmt.Errorf("%w: %s: %w", ErrMissingLock, keyString(a.key), ctxError(ctx))
}

// lostError is the cause of a callback context's cancellation when the
// lock can no longer be trusted. It matches ErrLockLost and, if set, err.
type lostError struct {
	why string
	err error
}

func (e *lostError) Error() string {
	if e.err != nil {
		return ErrLockLost.Error() + ": " + e.why + ": " + e.err.Error()
	}
	return ErrLockLost.Error() + ": " + e.why
}

func (e *lostError) Unwrap() []error {
	if e.err != nil {
		return []error{ErrLockLost, e.err}
	}
	return []error{ErrLockLost}
}

var (
	errExpired  = &lostError{why: "its TTL ran out"}
	errMaxHold  = &lostError{why: "the maximum hold time was reached"}
	errNotHeld  = &lostError{why: "the backend no longer held it"}
	errNotFreed = &lostError{why: "the backend no longer held it at release"}
)

// call runs cb with cbCtx while the lock is held and releases it
// afterwards, on a context detached from ctx. stop ends cbCtx and whatever
// keeps the lock (renewal).
func (h *held) call(ctx, cbCtx context.Context, stop func(), cb func(context.Context) error) (err error) {
	defer func() {
		// Decide whether the lock was lost before cb returned, then stop
		// the renewal and release. This runs when cb panics too; the panic
		// goes on afterwards.
		var lost error
		if cause := context.Cause(cbCtx); cause != nil && errors.Is(cause, ErrLockLost) {
			lost = cause
		}
		stop()
		var returned time.Time
		if h.o != nil {
			returned = time.Now()
		}
		rctx := newDetached(ctx, min(h.a.exp, maxReleaseTimeout))
		released, rerr := h.l.Release(rctx, h.a.key, h.token)
		rctx.stop()
		if lost == nil && rerr == nil && !released {
			lost = errNotFreed
		}
		if h.o != nil {
			h.observeEnd(ctx, returned, released, rerr, lost)
		}
		if lost != nil {
			if err == nil {
				err = lost
			} else {
				err = errors.Join(err, lost)
			}
		}
	}()
	return cb(&itemCtx{Context: cbCtx, item: Item(h.token)})
}

// observeEnd reports the end of a hold: the hold, the loss if any, and
// the release.
func (h *held) observeEnd(ctx context.Context, returned time.Time, released bool, rerr, lost error) {
	e := Event{Backend: h.a.name, Key: h.a.key, Token: Item(h.token), Run: true}
	hold := e
	hold.Kind, hold.Start, hold.Duration, hold.Outcome = KindHold, h.acquired, returned.Sub(h.acquired), OutcomeKept
	if lost != nil {
		hold.Outcome = OutcomeLost
	}
	h.o.Observe(ctx, hold)
	if lost != nil {
		l := e
		l.Kind, l.Outcome, l.Start, l.Err = KindLost, OutcomeLost, returned, lost
		h.o.Observe(ctx, l)
	}
	r := e
	r.Kind, r.Outcome, r.Start, r.Duration, r.Err = KindRelease, releaseOutcome(released, rerr), returned, time.Since(returned), rerr
	h.o.Observe(ctx, r)
}

// renewal keeps one lock alive while its callback runs: the state of
// auto-extension, shared by the renewing goroutine and the expiry timer.
type renewal struct {
	a      *Async // a copy: the Set* methods may run after Run returns
	r      backend.Refresher
	o      Observer // nil: nothing observes
	token  int64
	valid  time.Duration // how long the lock is trusted after each request
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the renewing goroutine ends

	mu       sync.Mutex
	deadline time.Time   // the lock is trusted until then
	expiry   *time.Timer // fires at deadline: cancels ctx
	lastErr  error       // why renewals failed since the last success
}

// runRenewing is run with auto-extension: a goroutine refreshes the lock
// every exp/3, and a timer of its own cancels the callback's context at the
// lock's validity deadline, whatever the refresh calls are doing. start is
// when the lock was requested (maxHold counts from then).
func (h *held) runRenewing(ctx context.Context, r backend.Refresher, start time.Time, cb func(context.Context) error) error {
	parent := ctx
	var stopCap context.CancelFunc = func() {}
	if h.a.maxHold > 0 {
		parent, stopCap = context.WithDeadlineCause(ctx, start.Add(h.a.maxHold), errMaxHold)
	}
	cp := h.a
	rn := &renewal{a: &cp, r: r, o: h.o, token: h.token, valid: h.deadline.Sub(start), done: make(chan struct{}), deadline: h.deadline}
	rn.ctx, rn.cancel = context.WithCancelCause(parent)
	rn.mu.Lock()
	rn.expiry = time.AfterFunc(time.Until(rn.deadline), rn.expire)
	rn.mu.Unlock()
	go rn.run()
	return h.call(ctx, rn.ctx, func() {
		rn.cancel(nil)
		rn.mu.Lock()
		rn.expiry.Stop()
		rn.mu.Unlock()
		<-rn.done
		stopCap()
	}, cb)
}

// expire cancels the callback's context: the lock's validity ran out
// before a renewal succeeded.
func (rn *renewal) expire() {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	if time.Now().Before(rn.deadline) {
		return // a renewal moved the deadline while this call was starting
	}
	rn.expireLocked()
}

func (rn *renewal) expireLocked() {
	if rn.lastErr != nil {
		rn.cancel(&lostError{why: "its TTL ran out after failed renewals", err: rn.lastErr})
	} else {
		rn.cancel(errExpired)
	}
}

// run refreshes the lock every exp/3 until the callback's context ends.
func (rn *renewal) run() {
	defer close(rn.done)
	tick := time.NewTimer(rn.a.exp / 3)
	defer tick.Stop()
	for {
		select {
		case <-rn.ctx.Done():
			return
		case <-tick.C:
		}
		rn.mu.Lock()
		deadline := rn.deadline
		rn.mu.Unlock()
		sent := time.Now()
		rctx, rcancel := context.WithDeadline(rn.ctx, deadline)
		ok, err := rn.r.Refresh(rctx, rn.a.key, rn.token, rn.a.exp)
		rcancel()
		if rn.ctx.Err() != nil {
			return
		}
		if rn.o != nil {
			out := OutcomeExtended
			switch {
			case err != nil:
				out = OutcomeFailed
			case !ok:
				out = OutcomeNotHeld
			}
			rn.o.Observe(rn.ctx, Event{Kind: KindRenew, Backend: rn.a.name, Key: rn.a.key, Outcome: out, Start: sent,
				Duration: time.Since(sent), Token: Item(rn.token), Run: true, Err: err})
		}
		switch {
		case err != nil:
			rn.mu.Lock()
			// Keep the first failure's cause: a later renewal that ran into
			// the lock's own deadline says less.
			if rn.lastErr == nil || !errors.Is(err, context.DeadlineExceeded) {
				rn.lastErr = err
			}
			rn.mu.Unlock()
		case !ok:
			rn.cancel(errNotHeld)
			return
		default:
			rn.mu.Lock()
			// A renewal that answers after the deadline revives nothing:
			// the expiry timer has fired, or is about to.
			if !time.Now().Before(rn.deadline) || !rn.expiry.Stop() {
				rn.expireLocked()
				rn.mu.Unlock()
				return
			}
			rn.lastErr = nil
			rn.deadline = sent.Add(rn.valid)
			rn.expiry.Reset(time.Until(rn.deadline))
			rn.mu.Unlock()
		}
		tick.Reset(rn.a.exp / 3)
	}
}
