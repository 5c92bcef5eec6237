package xsync

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// Lease is one held lock of any kind, as [Client.Acquire] and the other
// kinds' Acquire methods return it; Run holds one for its callback.
//
// Its life: the lock is trusted until its validity deadline ([Lease.Deadline]:
// the TTL, measured on the client's clock from just before the request,
// less the backend's drift allowance). A waiter that a release handed
// the lock to (a backend that grants its locks to the first waiter, as
// Redis does: [backend.Granter]) counts the TTL from when it heard of the
// grant, but trusts it no longer than the grant is sure to last: the
// waiter's keep time from its last request before the grant. The lease
// confirms the grant in the background (one call, like a renewal; it
// stores the owner metadata and moves the deadline to the TTL): at once
// if the caller asked for owner metadata ([WithOwner]), so the store
// shows it within a round trip; otherwise once half of that time has
// passed (a lease released sooner never makes the call, and the store
// shows no owner for it). A confirmation that finds the lock gone loses
// the lease. [Lease.Extend] moves the deadline;
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
	hold
	// ctx carries the caller's values to renewal calls and events; it
	// ends when the lease does. For Run it is the callback's context,
	// cancelled with the cause of a loss.
	ctx    context.Context
	cancel context.CancelCauseFunc
	scope  runScope // Run's callback context and release context

	mu        sync.Mutex
	ttl       time.Duration // TTL of the last request
	deadline  time.Time
	expiry    alarm
	cap       *alarm // nil: no cap
	lastErr   error  // why renewals failed since the last success
	cause     error  // why the lease ended; nil while it holds
	reported  bool   // the end of the hold was reported to the observer
	letGoOnce bool   // Release (or Run's end) has run
	done      chan struct{}
	renewing  sync.WaitGroup
}

// hold starts keeping a lock that was just obtained, for a Lease.
func (c *Client) hold(ctx context.Context, t *target, s *spec, o Observer, g grant) *Lease {
	h := hold{c: c, t: *t, s: *s, o: o, g: g}
	if o != nil {
		h.held = c.clock.Now()
	}
	return newLease(ctx, h)
}

// newLease starts keeping the lock of h.
func newLease(ctx context.Context, h hold) *Lease {
	h.t.value() // before the lease's goroutines share it
	l := &Lease{hold: h, ttl: h.s.ttl, done: make(chan struct{})}
	if h.s.run {
		l.ctx, l.cancel = context.WithCancelCause(ctx)
	} else {
		l.ctx, l.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	}
	l.deadline = h.deadline()
	l.scope.item = itemCtx{Context: l.ctx, item: Item(h.g.token)}
	if !h.s.extend {
		// The TTL's deadline: the lease's own, or for a grant to confirm,
		// the one the confirmation brings (the lease is lost before it if
		// the confirmation fails).
		l.scope.item.deadline = h.g.start.Add(h.c.validity(h.s.ttl))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expiry = newAlarm(h.c.clock, l.deadline.Sub(h.c.clock.Now()), l.expire)
	if h.s.maxHold > 0 {
		capAlarm := newAlarm(h.c.clock, h.g.start.Add(h.s.maxHold).Sub(h.c.clock.Now()), func() { l.lose(errMaxHold) })
		l.cap = &capAlarm
	}
	_, refresh := h.t.value().(backend.Refresher)
	switch {
	case h.g.confirm:
		l.renewing.Add(1)
		go l.confirm(refresh && h.s.extend)
	case refresh && h.s.extend:
		l.renewing.Add(1)
		go l.renew()
	}
	return l
}

// confirm confirms the backend's grant of the lock (it stores the owner,
// and gives the lock its TTL): at once if the caller asked for owner
// metadata, otherwise once half the time the grant is sure to last has
// passed (a lease released before then, as most holds taken in turns
// are, never needs the call). It tries again after a failure until the
// lease ends, and then renews the lease if renew is set. A release waits
// for a call in flight, as for a renewal.
func (l *Lease) confirm(renew bool) {
	g := l.t.value().(backend.Granter)
	r := backend.Request{TTL: l.s.ttl, Owner: l.s.owner}
	tick := ticker{clock: l.c.clock}
	defer tick.done()
	// The caller asked for owner metadata (WithOwner) if the owner is not
	// the client's default.
	if l.s.owner == l.c.owner {
		l.mu.Lock()
		due := l.deadline.Sub(l.c.clock.Now()) / 2
		l.mu.Unlock()
		select {
		case <-l.done:
			l.renewing.Done()
			return
		case <-tick.wait(due):
		}
	}
	for {
		l.mu.Lock()
		remaining := l.deadline.Sub(l.c.clock.Now())
		l.mu.Unlock()
		if remaining <= 0 {
			<-l.done // the expiry ends the lease
			l.renewing.Done()
			return
		}
		sent := l.c.clock.Now()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(l.ctx), remaining)
		ok, err := g.Confirm(rctx, l.g.token, r)
		cancel()
		if l.o != nil {
			l.o.Observe(l.ctx, Event{Kind: KindRenew, Lock: l.t.kind, Backend: l.c.name, Key: l.t.name, Outcome: renewOutcome(ok, err),
				Start: sent, Duration: l.c.clock.Now().Sub(sent), Token: Item(l.g.token), Run: l.s.run, Err: err})
		}
		switch {
		case errors.Is(err, errors.ErrUnsupported):
			// Cannot be confirmed after all: the lease keeps the grant's
			// deadline.
			l.renewing.Done()
			return
		case err == nil && !ok:
			l.lose(errNotHeld)
			l.renewing.Done()
			return
		case err == nil:
			// The lease trusts the TTL from when it got the lock (its
			// item's deadline): the lock now lasts the TTL from sent,
			// which is later.
			l.mu.Lock()
			if l.cause == nil && l.c.clock.Now().Before(l.deadline) && l.expiry.Stop() {
				l.lastErr = nil
				if d := l.g.start.Add(l.c.validity(l.s.ttl)); d.After(l.deadline) {
					l.deadline = d
				}
				l.expiry.Reset(l.deadline.Sub(l.c.clock.Now()))
			}
			l.mu.Unlock()
			if renew && l.Err() == nil {
				l.renew() // calls Done
				return
			}
			l.renewing.Done()
			return
		}
		l.mu.Lock()
		if l.lastErr == nil || !errors.Is(err, context.DeadlineExceeded) {
			l.lastErr = err
		}
		l.mu.Unlock()
		select {
		case <-l.done:
			l.renewing.Done()
			return
		case <-tick.wait(min(remaining/4, time.Second)):
		}
	}
}

// Token returns the lock's token: a fencing token on backends with fencing
// (memory, redis, etcd) for a mutex, a write lock or a multi-key lock.
// Pass it with every write to the protected resource.
func (l *Lease) Token() Item { return Item(l.g.token) }

// Key returns the lock's key; for a multi-key lock ([Client.AcquireAll]),
// its keys joined with spaces.
func (l *Lease) Key() string { return l.t.name }

// Keys returns the keys the lease holds: one, or those of a multi-key
// lock. The caller must not change the slice.
func (l *Lease) Keys() []string {
	if l.t.keys == nil {
		return []string{l.t.name}
	}
	return l.t.keys
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

// expire ends the lease at its deadline, unless a renewal moved it.
func (l *Lease) expire() {
	l.mu.Lock()
	if l.c.clock.Now().Before(l.deadline) {
		l.mu.Unlock()
		return
	}
	cause := error(errExpired)
	if l.lastErr != nil {
		cause = &lostError{why: "its TTL ran out after failed renewals", err: l.lastErr}
	}
	l.mu.Unlock()
	l.lose(cause)
}

// lose ends the lease with the loss cause, if it has not ended yet, and
// reports the end of the hold and the loss at once.
func (l *Lease) lose(cause error) {
	if l.end(cause) && l.o != nil {
		l.report(cause)
	}
}

// end records the end of the lease, stops its timers and ends its
// context (for Run, with the cause of a loss). It reports whether this
// call ended it.
func (l *Lease) end(cause error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cause != nil {
		return false
	}
	l.cause = cause
	close(l.done)
	l.expiry.Stop()
	if l.cap != nil {
		l.cap.Stop()
	}
	if l.s.run && cause != ErrReleased {
		l.cancel(cause)
	} else {
		l.cancel(nil)
	}
	return true
}

// report tells the observer that the hold ended, lost if lost is not
// nil, unless that was told already.
func (l *Lease) report(lost error) {
	if !l.markReported() {
		l.reportEnd(l.ctx, lost)
	}
}

// markReported records that the end of the hold is being reported, and
// says whether it was before.
func (l *Lease) markReported() (again bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	again, l.reported = l.reported, true
	return again
}

// lost returns the cause if the lease was lost (not released).
func (l *Lease) lost() error {
	if err := l.Err(); err != nil && errors.Is(err, ErrLockLost) {
		return err
	}
	return nil
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
		case <-l.done:
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
	ok, err := l.t.value().(backend.Refresher).Refresh(rctx, l.g.token, ttl)
	cancel()
	if errors.Is(err, errors.ErrUnsupported) {
		// The lock cannot be refreshed after all: it keeps its deadline.
		return auto
	}
	if auto && l.Err() != nil {
		return true
	}
	if l.o != nil {
		l.o.Observe(l.ctx, Event{Kind: KindRenew, Lock: l.t.kind, Backend: l.c.name, Key: l.t.name, Outcome: renewOutcome(ok, err),
			Start: sent, Duration: l.c.clock.Now().Sub(sent), Token: Item(l.g.token), Run: l.s.run, Err: err})
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
	return !l.extended(sent, ttl)
}

// extended moves the deadline after a renewal sent at sent, unless the
// lease ended meanwhile; it reports whether the lease still holds.
func (l *Lease) extended(sent time.Time, ttl time.Duration) bool {
	l.mu.Lock()
	// A renewal that answers after the deadline revives nothing: the
	// expiry has fired, or is about to.
	if l.cause != nil || !l.c.clock.Now().Before(l.deadline) || !l.expiry.Stop() {
		l.mu.Unlock()
		l.lose(errExpired)
		return false
	}
	defer l.mu.Unlock()
	l.lastErr = nil
	l.ttl = ttl
	l.deadline = sent.Add(l.c.validity(ttl))
	l.expiry.Reset(l.deadline.Sub(l.c.clock.Now()))
	return true
}

// Extend renews the lock now for ttl (0: the lease's TTL), measured from
// just before the request, and moves the deadline. It returns nil if the
// lock was extended; an error matching [ErrLockLost] if the lease was
// lost or the backend no longer held the lock (the lease is then lost);
// one matching [ErrReleased] if the lease was released; one matching
// errors.ErrUnsupported if the backend cannot refresh this lock; and
// otherwise the backend's error (the lease keeps its deadline).
func (l *Lease) Extend(ctx context.Context, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("%w: ttl %v: must be >= 0", ErrInvalid, ttl)
	}
	if _, ok := l.t.value().(backend.Refresher); !ok {
		return fmt.Errorf("xsync: extend %s: %s cannot refresh a %s: %w", keyString(l.t.name), l.c.name, l.t.kind, errors.ErrUnsupported)
	}
	if err := l.Err(); err != nil {
		return fmt.Errorf("xsync: extend %s: %w", keyString(l.t.name), err)
	}
	l.refresh(ctx, ttl, false)
	if err := l.Err(); err != nil {
		return fmt.Errorf("xsync: extend %s: %w", keyString(l.t.name), err)
	}
	l.mu.Lock()
	err := l.lastErr
	l.lastErr = nil
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("xsync: extend %s on %s: %w", keyString(l.t.name), l.c.name, err)
	}
	return nil
}

// TTL returns how long the lock has left as the backend sees it. It
// returns an error matching [ErrReleased] or [ErrLockLost] if the lease
// ended, one matching ErrLockLost if its token no longer holds the lock,
// and one matching errors.ErrUnsupported if the backend cannot inspect
// this lock. Backends count in their own precision: etcd reports whole
// seconds, rounded down, so a lock taken for 3s may show 2s at once.
func (l *Lease) TTL(ctx context.Context) (time.Duration, error) {
	if err := l.Err(); err != nil {
		return 0, fmt.Errorf("xsync: ttl of %s: %w", keyString(l.t.name), err)
	}
	in, ok := l.t.value().(backend.Inspector)
	if !ok {
		return 0, fmt.Errorf("xsync: ttl of %s: %s cannot inspect a %s: %w", keyString(l.t.name), l.c.name, l.t.kind, errors.ErrUnsupported)
	}
	info, err := in.Inspect(ctx)
	if err != nil {
		return 0, fmt.Errorf("xsync: ttl of %s on %s: %w", keyString(l.t.name), l.c.name, err)
	}
	for _, h := range info.Holders {
		if h.Token == l.g.token {
			return h.TTL, nil
		}
	}
	return 0, fmt.Errorf("xsync: ttl of %s: %w", keyString(l.t.name), errNotHeld)
}

// Release gives the lock back, if the lease's token still holds it, and
// ends the lease. It returns (true, nil) if the lock was released (or,
// with [WithHoldAtLeast], set to expire at the earliest moment allowed);
// (false, nil) if the token no longer held it; (false, err) if the backend
// failed (the lock then expires after its TTL). Releasing twice returns
// (false, nil).
func (l *Lease) Release(ctx context.Context) (bool, error) {
	released, err, _, first := l.release(ctx, ctx)
	if !first {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("xsync: release %s on %s: %w", &l.t, l.c.name, err)
	}
	return released, nil
}

// release ends the lease as released, stops the renewal, gives the lock
// back on rctx, and reports it to the observer (with ctx's values). first
// says whether this call released the lease; released and err are the
// backend's answer, and lost the loss (before the release, or found at
// it).
func (l *Lease) release(ctx, rctx context.Context) (released bool, err, lost error, first bool) {
	l.mu.Lock()
	first, l.letGoOnce = !l.letGoOnce, true
	l.mu.Unlock()
	if !first {
		return false, nil, nil, false
	}
	// A deadline that passed before the alarm fired is a loss all the
	// same: the holder let go too late to be sure it held.
	l.expire()
	l.end(ErrReleased)
	l.renewing.Wait()
	lost = l.lost()
	reported := l.o == nil || l.markReported()
	released, err, lost = l.letGo(ctx, rctx, lost, reported)
	return released, err, lost, true
}

// finish is Run's end of the hold: the lock is released on a context
// detached from ctx, with a short timeout. It returns the loss, if the
// lock was lost before the callback returned or found gone at release.
func (l *Lease) finish(ctx context.Context) error {
	l.scope.release.init(ctx, min(l.s.ttl, maxReleaseTimeout))
	_, _, lost, _ := l.release(ctx, &l.scope.release)
	l.scope.release.stop()
	return lost
}
