package xsync

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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

// SetRetry sets how many times Run tries again after the first attempt
// finds the key held (cnt), and the longest wait between two attempts
// (interval). Run waits a random time between interval/2 and interval, so
// that contenders do not retry in step; with a backend that reports
// releases, a waiter tries as soon as the key is released or expires. The
// default is no retry. cnt and interval must be >= 0;
// otherwise SetRetry returns an error matching [ErrInvalid] and changes
// nothing.
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
// Obtaining: Run makes at most 1+cnt attempts (see [Async.SetRetry]),
// waiting at most interval between two of them, and less when the backend
// reports that the key became free. If the lock is not obtained, Run
// returns an error matching [ErrMissingLock]; if ctx ends first, the error
// matches both ErrMissingLock and ctx's error. If the last attempt failed
// because the backend failed, Run returns that error, wrapped, and it does
// not match ErrMissingLock.
//
// Holding: cb receives a context derived from ctx that carries the Item
// ([ItemFromContext]) and that is cancelled, with a cause matching
// [ErrLockLost], when the lock can no longer be trusted: when its TTL
// (measured from just before the request to lock, and shortened by the
// backend's allowance for clock drift if it has one) runs out, or with
// auto-extension on when renewal fails or maxHold is reached. Without
// auto-extension the context's Deadline is that moment.
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
// finds nothing to release. Let Run release.)
//
// Bad input (empty key, nil cb, unknown backend) returns an error matching
// [ErrInvalid] or [ErrUnknownBackend] without reaching the backend.
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
	token, start, err := a.acquire(ctx, l)
	if err != nil {
		return err
	}
	valid := a.exp
	if v, ok := l.(backend.Validity); ok {
		valid = min(max(v.Validity(a.exp), 0), a.exp)
	}
	return a.hold(ctx, l, r, token, start, valid, cb)
}

// acquire makes up to 1+retries attempts. It returns the token and the time
// just before the successful request was sent.
func (a *Async) acquire(ctx context.Context, l Locker) (int64, time.Time, error) {
	// The first attempt, without set-up: the uncontended path.
	token, start, err, done := a.attempt(ctx, l, 0)
	if done {
		return token, start, err
	}
	var (
		ready   <-chan struct{}
		watched bool
		timer   = time.NewTimer(a.wait())
	)
	defer timer.Stop()
	for attempt := int32(1); ; attempt++ {
		// Watch the key from the first contended attempt on (with a zero
		// interval there is no wait to cut short). A watch that fails to
		// start is not an error: the interval bounds every wait, the
		// watch's set-up included.
		if w, ok := l.(backend.Watcher); ok && !watched && err == nil && a.interval > 0 {
			watched = true
			wctx, cancel := context.WithTimeout(ctx, a.interval)
			ch, stop, werr := w.Watch(wctx, a.key)
			cancel()
			if werr == nil {
				ready = ch
				defer stop()
			}
		}
		select {
		case <-ready:
		case <-timer.C:
		case <-ctx.Done():
			return 0, time.Time{}, a.ctxEnded(ctx)
		}
		if token, start, err, done = a.attempt(ctx, l, attempt); done {
			return token, start, err
		}
		timer.Reset(a.wait())
	}
}

// wait returns how long to wait before the next attempt at most: a random
// time between interval/2 and interval, so that contenders that failed
// together do not retry together (Redlock's split votes need this).
func (a *Async) wait() time.Duration {
	if a.interval <= 1 {
		return a.interval
	}
	return a.interval/2 + rand.N(a.interval/2+1)
}

// attempt makes attempt number n (from 0). done reports that acquire must
// return token, start and err; otherwise err is the attempt's backend
// error, if any, and another attempt follows.
func (a *Async) attempt(ctx context.Context, l Locker, n int32) (token int64, start time.Time, err error, done bool) {
	if ctx.Err() != nil {
		return 0, time.Time{}, a.ctxEnded(ctx), true
	}
	start = time.Now()
	token, err = l.Acquire(ctx, a.key, a.exp)
	switch {
	case err == nil && token > 0:
		return token, start, nil, true
	case err != nil && ctx.Err() != nil:
		return 0, time.Time{}, a.ctxEnded(ctx), true
	case n >= a.retries && err != nil:
		return 0, time.Time{}, fmt.Errorf("xsync: lock %q on backend %q: %w", a.key, a.name, err), true
	case n >= a.retries:
		return 0, time.Time{}, fmt.Errorf("%w: %q is held", ErrMissingLock, a.key), true
	}
	return 0, time.Time{}, err, false
}

func (a *Async) ctxEnded(ctx context.Context) error {
	return fmt.Errorf("%w: %q: %w", ErrMissingLock, a.key, context.Cause(ctx))
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

// hold runs cb while the lock is held and releases it afterwards.
// valid is how long the lock can be trusted after start (exp, or less if
// the backend says so).
func (a *Async) hold(ctx context.Context, l Locker, r backend.Refresher, token int64, start time.Time, valid time.Duration, cb func(context.Context) error) (err error) {
	var (
		cbCtx       context.Context
		cancel      context.CancelFunc      // without auto-extension
		cancelCause context.CancelCauseFunc // with it
		renewed     chan struct{}           // closed when the renewal goroutine ends
	)
	if r == nil {
		cbCtx, cancel = context.WithDeadlineCause(ctx, start.Add(valid), errExpired)
	} else {
		cbCtx, cancelCause = context.WithCancelCause(ctx)
		renewed = make(chan struct{})
		cp := *a // only this branch moves a copy of a to the heap
		go func() {
			defer close(renewed)
			cp.renew(cbCtx, cancelCause, r, token, start, valid)
		}()
	}

	defer func() {
		// Decide whether the lock was lost before cb returned, then stop
		// the renewal and release. This runs when cb panics too; the panic
		// goes on afterwards.
		var lost error
		if cause := context.Cause(cbCtx); cause != nil && errors.Is(cause, ErrLockLost) {
			lost = cause
		}
		if cancel != nil {
			cancel()
		} else {
			cancelCause(nil)
			<-renewed
		}
		rctx := newDetached(ctx, min(a.exp, maxReleaseTimeout))
		released, rerr := l.Release(rctx, a.key, token)
		rctx.stop()
		if lost == nil && rerr == nil && !released {
			lost = errNotFreed
		}
		if lost != nil {
			if err == nil {
				err = lost
			} else {
				err = errors.Join(err, lost)
			}
		}
	}()
	return cb(&itemCtx{Context: cbCtx, item: Item(token)})
}

// renew keeps the lock alive while cbCtx lives: a refresh every exp/3,
// each bounded by the lock's current validity. It cancels cbCtx with a
// cause matching ErrLockLost when the lock is gone, when its validity runs
// out without a successful refresh, or when maxHold is reached.
func (a *Async) renew(cbCtx context.Context, cancel context.CancelCauseFunc, r backend.Refresher, token int64, start time.Time, valid time.Duration) {
	deadline := start.Add(valid)
	expiry := time.NewTimer(time.Until(deadline))
	defer expiry.Stop()
	tick := time.NewTimer(a.exp / 3)
	defer tick.Stop()
	var capC <-chan time.Time
	if a.maxHold > 0 {
		capT := time.NewTimer(time.Until(start.Add(a.maxHold)))
		defer capT.Stop()
		capC = capT.C
	}
	var lastErr error
	for {
		select {
		case <-cbCtx.Done():
			return
		case <-capC:
			cancel(errMaxHold)
			return
		case <-expiry.C:
			if lastErr != nil {
				cancel(&lostError{why: "its TTL ran out after failed renewals", err: lastErr})
			} else {
				cancel(errExpired)
			}
			return
		case <-tick.C:
		}
		sent := time.Now()
		rctx, rcancel := context.WithDeadline(cbCtx, deadline)
		ok, err := r.Refresh(rctx, a.key, token, a.exp)
		rcancel()
		switch {
		case err != nil:
			if cbCtx.Err() != nil {
				return
			}
			// Keep the first failure's cause: a later renewal that ran into
			// the lock's own deadline says less.
			if lastErr == nil || !errors.Is(err, context.DeadlineExceeded) {
				lastErr = err
			}
		case !ok:
			cancel(errNotHeld)
			return
		default:
			lastErr = nil
			deadline = sent.Add(valid)
			expiry.Reset(time.Until(deadline))
		}
		tick.Reset(a.exp / 3)
	}
}
