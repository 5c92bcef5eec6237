package xsync

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// ErrReleased is what [Lease.Err] returns once the lease was released.
var ErrReleased = errors.New("xsync: lease released")

// Lease is one held lock, as [Client.Acquire] returns it.
//
// Its life: the lock is trusted until its validity deadline ([Lease.Deadline]:
// the TTL, measured on the client's clock from just before the request,
// less the backend's drift allowance). [Lease.Extend] moves the deadline;
// with [WithAutoExtend] the lease renews itself every TTL/3. Once the
// deadline passes without a successful renewal, or a renewal finds the lock
// gone, the lease is lost: [Lease.Done] is closed and [Lease.Err] returns
// the cause, which matches [ErrLockLost]. A timer of the client keeps the
// deadline, so a renewal call that hangs cannot keep the lease alive past
// it. [Lease.Release] gives the lock back (Done is then closed too, and
// Err returns [ErrReleased]); a lease neither released nor renewed simply
// expires.
//
// The methods are safe for concurrent use.
type Lease struct {
	c      *Client
	key    string
	token  Item
	start  time.Time // when the successful request was sent, on c's clock
	spec   acquireSpec
	keys   []string                                                                // a multi-key lock's keys; nil: key alone
	r      func(ctx context.Context, token int64, ttl time.Duration) (bool, error) // nil: the backend cannot refresh
	o      Observer
	ctx    context.Context // for renewal calls and events; ends when the lease does
	cancel context.CancelCauseFunc
	run    bool // ctx is Run's callback context: a loss cancels it with its cause

	mu       sync.Mutex
	ttl      time.Duration // TTL of the last request
	valid    time.Duration // how long the lock is trusted after each request
	deadline time.Time
	expiry   alarm
	cap      *alarm // nil: no cap
	lastErr  error  // why renewals failed since the last success
	cause    error  // why the lease ended; nil while it holds
	done     chan struct{}
	renewing sync.WaitGroup
}

// newLease starts keeping a lock that was just acquired. For Run, cbCtx
// and cbCancel are the callback's context: the lease ends it, with the
// cause, when the lock is lost.
func (c *Client) newLease(ctx context.Context, key string, token int64, start time.Time, spec acquireSpec, o Observer,
	cbCtx context.Context, cbCancel context.CancelCauseFunc) *Lease {
	l := &Lease{c: c, key: key, token: Item(token), start: start, spec: spec, o: o, ttl: spec.ttl, done: make(chan struct{})}
	l.r = c.refresher(key, &spec)
	if spec.t != nil {
		l.keys = spec.t.keys
	}
	l.valid = c.validity(spec.ttl)
	l.deadline = start.Add(l.valid)
	if cbCtx != nil {
		l.ctx, l.cancel, l.run = cbCtx, cbCancel, true
	} else {
		l.ctx, l.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expiry = newAlarm(c.clock, l.deadline.Sub(c.clock.Now()), l.expire)
	if spec.maxHold > 0 {
		capAlarm := newAlarm(c.clock, start.Add(spec.maxHold).Sub(c.clock.Now()), func() { l.lose(errMaxHold) })
		l.cap = &capAlarm
	}
	if spec.extend && l.r != nil {
		l.renewing.Add(1)
		go l.renew()
	}
	return l
}

// validity is how long a lock of ttl is trusted after its request.
func (c *Client) validity(ttl time.Duration) time.Duration {
	if v, ok := c.l.(backend.Validity); ok {
		return min(max(v.Validity(ttl), 0), ttl)
	}
	return ttl
}

// Token returns the lock's token: a fencing token on backends with fencing
// (memory, redis, etcd). Pass it with every write to the protected
// resource.
func (l *Lease) Token() Item { return l.token }

// Key returns the lock's key; for a multi-key lock ([Client.AcquireAll]),
// its keys joined with spaces.
func (l *Lease) Key() string { return l.key }

// Keys returns the keys the lease holds: one, or those of a multi-key
// lock. The caller must not change the slice.
func (l *Lease) Keys() []string {
	if l.keys == nil {
		return []string{l.key}
	}
	return l.keys
}

// Done returns a channel that is closed when the lease ends: lost (its
// validity ran out, a renewal found the lock gone, or the auto-extension
// cap was reached) or released.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Err returns nil while the lease holds; once it is lost, the cause, which
// matches [ErrLockLost]; once it is released, [ErrReleased].
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cause
}

// Deadline returns the lease's current validity deadline, on the client's
// clock.
func (l *Lease) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

// lost reports the cause if the lease was lost (not released).
func (l *Lease) lost() error {
	if err := l.Err(); err != nil && errors.Is(err, ErrLockLost) {
		return err
	}
	return nil
}

// expire ends the lease at its deadline, unless a renewal moved it.
func (l *Lease) expire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c.clock.Now().Before(l.deadline) {
		return
	}
	cause := error(errExpired)
	if l.lastErr != nil {
		cause = &lostError{why: "its TTL ran out after failed renewals", err: l.lastErr}
	}
	l.endLocked(cause)
}

// lose ends the lease with cause, if it has not ended yet.
func (l *Lease) lose(cause error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.endLocked(cause)
}

// endLocked records the end of the lease, stops its timers and ends its
// context (for Run, with the cause of a loss).
func (l *Lease) endLocked(cause error) {
	if l.cause != nil {
		return
	}
	l.cause = cause
	close(l.done)
	l.expiry.Stop()
	if l.cap != nil {
		l.cap.Stop()
	}
	if l.run && cause != ErrReleased {
		l.cancel(cause)
	} else {
		l.cancel(nil)
	}
}

// renew refreshes the lock every TTL/3 until the lease ends.
func (l *Lease) renew() {
	defer l.renewing.Done()
	tick := ticker{clock: l.c.clock}
	defer tick.done()
	for {
		l.mu.Lock()
		every := l.ttl / 3
		l.mu.Unlock()
		select {
		case <-l.ctx.Done():
			return
		case <-tick.wait(every):
		}
		if done := l.refresh(l.ctx, 0, true); done {
			return
		}
	}
}

// refresh makes one renewal with ttl (0: the lease's current TTL) and
// applies its outcome. It reports whether the lease ended.
func (l *Lease) refresh(ctx context.Context, ttl time.Duration, auto bool) (ended bool) {
	l.mu.Lock()
	if ttl == 0 {
		ttl = l.ttl
	}
	remaining := l.deadline.Sub(l.c.clock.Now())
	l.mu.Unlock()
	sent := l.c.clock.Now()
	rctx, cancel := context.WithTimeout(ctx, remaining)
	ok, err := l.r(rctx, int64(l.token), ttl)
	cancel()
	if auto && l.ctx.Err() != nil {
		return true
	}
	if l.o != nil {
		out := OutcomeExtended
		switch {
		case err != nil:
			out = OutcomeFailed
		case !ok:
			out = OutcomeNotHeld
		}
		l.o.Observe(l.ctx, Event{Kind: KindRenew, Backend: l.c.name, Key: l.key, Outcome: out, Start: sent,
			Duration: l.c.clock.Now().Sub(sent), Token: l.token, Run: l.spec.run, Err: err})
	}
	switch {
	case err != nil:
		l.mu.Lock()
		// Keep the first failure's cause: a later renewal that ran into the
		// lock's own deadline says less.
		if l.lastErr == nil || !errors.Is(err, context.DeadlineExceeded) {
			l.lastErr = err
		}
		l.mu.Unlock()
		return false
	case !ok:
		l.lose(errNotHeld)
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// A renewal that answers after the deadline revives nothing: the
	// expiry has fired, or is about to.
	if l.cause != nil || !l.c.clock.Now().Before(l.deadline) || !l.expiry.Stop() {
		l.endLocked(errExpired)
		return true
	}
	l.lastErr = nil
	l.ttl, l.valid = ttl, l.c.validity(ttl)
	l.deadline = sent.Add(l.valid)
	l.expiry.Reset(l.deadline.Sub(l.c.clock.Now()))
	return false
}

// Extend renews the lock now for ttl (0: the lease's TTL), measured from
// just before the request, and moves the deadline. It returns nil if the
// lock was extended; an error matching [ErrLockLost] if the lease had
// ended or the backend no longer held the lock (the lease is then lost);
// an error matching errors.ErrUnsupported if the backend cannot refresh
// locks; and otherwise the backend's error (the lease keeps its deadline).
func (l *Lease) Extend(ctx context.Context, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("%w: ttl %v: must be >= 0", ErrInvalid, ttl)
	}
	if l.r == nil {
		return fmt.Errorf("xsync: extend %s: backend %q cannot refresh locks: %w", keyString(l.key), l.c.name, errors.ErrUnsupported)
	}
	if err := l.Err(); err != nil {
		return fmt.Errorf("xsync: extend %s: %w", keyString(l.key), err)
	}
	l.refresh(ctx, ttl, false)
	if err := l.Err(); err != nil {
		return fmt.Errorf("xsync: extend %s: %w", keyString(l.key), err)
	}
	l.mu.Lock()
	err := l.lastErr
	l.lastErr = nil
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("xsync: extend %s on backend %q: %w", keyString(l.key), l.c.name, err)
	}
	return nil
}

// TTL returns how long the lock has left as the backend sees it. It
// returns an error matching [ErrLockLost] if the lease's token no longer
// holds the key, and one matching errors.ErrUnsupported if the backend
// cannot inspect locks, or if the lease is not a mutex's (a semaphore's,
// a read-write lock's or a multi-key lock's).
func (l *Lease) TTL(ctx context.Context) (time.Duration, error) {
	if l.spec.t != nil {
		return 0, fmt.Errorf("xsync: ttl of %s: only a mutex's lease can tell: %w", keyString(l.key), errors.ErrUnsupported)
	}
	info, err := l.c.Inspect(ctx, l.key)
	if err != nil {
		return 0, err
	}
	if !info.Held || info.Token != l.token {
		return 0, fmt.Errorf("xsync: ttl of %s: %w", keyString(l.key), errNotHeld)
	}
	return info.TTL, nil
}

// Release gives the lock back, if the lease's token still holds it, and
// ends the lease. It returns (true, nil) if the lock was released (or,
// with [WithHoldAtLeast], set to expire at the earliest moment allowed);
// (false, nil) if the token no longer held it; (false, err) if the backend
// failed (the lock then expires after its TTL). Releasing twice returns
// (false, nil).
func (l *Lease) Release(ctx context.Context) (bool, error) {
	if again := l.finish(); again {
		return false, nil
	}
	var start time.Time
	if l.o != nil {
		start = l.c.clock.Now()
	}
	ok, err := l.release(ctx)
	if l.o != nil {
		l.o.Observe(ctx, Event{Kind: KindRelease, Backend: l.c.name, Key: l.key, Outcome: releaseOutcome(ok, err),
			Start: start, Duration: l.c.clock.Now().Sub(start), Token: l.token, Run: l.spec.run, Err: err})
	}
	if err != nil {
		return false, fmt.Errorf("xsync: release %s on backend %q: %w", keyString(l.key), l.c.name, err)
	}
	return ok, nil
}

// finish stops the renewal and ends the lease as released; it reports
// whether it had been released before.
func (l *Lease) finish() (again bool) {
	l.mu.Lock()
	again = l.cause == ErrReleased
	l.endLocked(ErrReleased) // also stops the renewal
	l.mu.Unlock()
	l.renewing.Wait()
	return again
}

// release is the backend call of Release.
func (l *Lease) release(ctx context.Context) (bool, error) {
	return l.c.release(ctx, l.key, int64(l.token), l.start, &l.spec)
}
