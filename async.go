package xsync

import (
	"context"
	"fmt"
	"time"
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

// deadlineCtx is itemCtx reporting the lease's validity deadline, where the
// context does not carry it itself (a client with a clock of its own).
type deadlineCtx struct {
	itemCtx
	deadline time.Time
}

func (c *deadlineCtx) Deadline() (time.Time, bool) {
	d, ok := c.Context.Deadline()
	if ok && d.Before(c.deadline) {
		return d, ok
	}
	return c.deadline, true
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
	if err := checkKey(a.key); err != nil {
		return err
	}
	c, err := registered(a.name)
	if err != nil {
		return err
	}
	if a.exp < time.Second { // only a zero Async (not made by New) gets here
		return fmt.Errorf("%w: exp %v: must be at least 1s", ErrInvalid, a.exp)
	}
	s := acquireSpec{ttl: a.exp, retries: a.retries, interval: a.interval, extend: a.extend, maxHold: a.maxHold, run: true}
	if err := c.capable(s); err != nil {
		return err
	}
	return c.run(ctx, a.key, cb, &s)
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
