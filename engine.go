package xsync

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/wrap"
)

// target is what an acquisition takes: one lock of the backend, and how
// messages and events name it.
type target struct {
	// lock is the lock's value. A mutex's is taken from the Locker only
	// when something needs it (an ability, owner metadata, a waiter's
	// place): until then its attempts and release go to the Locker's own
	// Acquire and Release by key, which cost no value.
	lock backend.Lock
	l    backend.Locker // a mutex's Locker; nil for every other kind
	kind string         // Event.Lock: "mutex", "semaphore", "read", "write", "keys"
	name string         // the key; a multi-key lock's keys joined with spaces
	keys []string       // a multi-key lock's keys; nil: name is the one key
}

// String is the target as messages show it: the key (shortened), after
// its kind if it is not a mutex.
func (t *target) String() string {
	if t.kind == "mutex" {
		return keyString(t.name)
	}
	return t.kind + " " + keyString(t.name)
}

// value returns the lock's value, taking a mutex's from its Locker on
// first use. A hold shared between goroutines (a Lease) takes it before
// it is shared.
func (t *target) value() backend.Lock {
	if t.lock == nil {
		t.lock = wrap.Mutex(t.l, t.name)
	}
	return t.lock
}

// acquire is one attempt on the lock.
func (t *target) acquire(ctx context.Context, r backend.Request) (int64, error) {
	if t.lock == nil && r.Owner == "" && r.Waiter == "" {
		return t.l.Acquire(ctx, t.name, r.TTL)
	}
	return t.value().Acquire(ctx, r)
}

// release gives back what token holds.
func (t *target) release(ctx context.Context, token int64) (bool, error) {
	if t.lock == nil {
		return t.l.Release(ctx, t.name, token)
	}
	return t.lock.Release(ctx, token)
}

// The engine: one acquisition (attempts, waiting, watching), and Run
// around a hold. Every kind of lock goes through it the same way; a
// target names the lock.

// check says whether the backend can do what s asks of t, before any call.
func (c *Client) check(t *target, s *spec) error {
	if c.validity(s.ttl) <= 0 {
		return fmt.Errorf("%w: ttl %v: too short for %s, which can trust a lock for none of it (its allowance for clock drift is longer)", ErrInvalid, s.ttl, c.name)
	}
	if s.extend || s.atLeast > 0 {
		if _, refresh := t.value().(backend.Refresher); refresh {
			return nil
		}
		if s.extend {
			return fmt.Errorf("xsync: auto-extension: %s cannot refresh a %s: %w", c.name, t.kind, errors.ErrUnsupported)
		}
		if s.atLeast > s.ttl {
			return fmt.Errorf("xsync: hold at least %v > TTL %v: %s cannot refresh a %s: %w", s.atLeast, s.ttl, c.name, t.kind, errors.ErrUnsupported)
		}
	}
	return nil
}

// acquire takes t as opts say and returns the lease.
func (c *Client) acquire(ctx context.Context, t *target, opts []AcquireOption) (*Lease, error) {
	s, err := c.spec(opts)
	if err != nil {
		return nil, err
	}
	if err := c.check(t, &s); err != nil {
		return nil, err
	}
	a := acquisition{c: c, t: *t, s: s, o: c.observer()}
	g, err := a.obtain(ctx)
	if err != nil {
		return nil, err
	}
	return c.hold(ctx, &a.t, &s, a.o, g), nil
}

// run takes t as opts say, and runs cb while holding it.
func (c *Client) run(ctx context.Context, t *target, cb func(ctx context.Context) error, opts []AcquireOption) error {
	s, err := c.spec(opts)
	if err != nil {
		return err
	}
	s.run = true
	if err := c.check(t, &s); err != nil {
		return err
	}
	return c.runSpec(ctx, t, &s, cb)
}

// grant is how the lock was obtained: by a successful attempt, its token
// and when its request was sent; or by a grant of the backend
// ([backend.Granter]), its token and when the acquisition learnt of it,
// with how long the grant itself is sure to last.
type grant struct {
	token int64
	start time.Time
	// until is, for a lock granted by the backend, the end of the
	// validity the grant guarantees (keep from the waiter's request that
	// last renewed its place); zero for an attempt's, which the TTL
	// bounds alone.
	until time.Time
	// confirm says that the hold must confirm a backend's grant (the
	// grant lasts less than the TTL asked for, or there is an owner to
	// store) before it can trust the TTL.
	confirm bool
}

// deadline is the end of the validity the lock was obtained with.
func (h *hold) deadline() time.Time {
	d := h.g.start.Add(h.c.validity(h.s.ttl))
	if !h.g.until.IsZero() && h.g.until.Before(d) {
		return h.g.until
	}
	return d
}

// acquisition is the state of one acquisition until it holds the lock
// or gives up.
type acquisition struct {
	c *Client
	t target // a copy: the acquisition stays on its caller's stack
	s spec
	o Observer

	began    time.Time // on c's clock, if observed
	attempts int
	failure  error // the last attempt's backend error; nil if it found the lock held
	retries  int32 // timed retries made
	waitEnd  time.Time
	timer    ticker
	tick     <-chan time.Time
	ready    <-chan struct{}           // the watch's; nil: none (yet)
	leave    func()                    // ends the watch
	watched  bool                      // a watch is set up, or none can be
	waiter   string                    // this acquisition's name among the lock's waiters, once it watches
	granted  func() (token, seq int64) // a Granter's watch's; nil: none
	seq      int64                     // the last attempt's Seq, with granted
	sent     [8]sentAt                 // with granted: when recent requests were sent, by Seq
}

// sentAt is when the request with Seq seq was sent.
type sentAt struct {
	seq int64
	at  time.Time
}

// obtain makes the first attempt and, while the lock is held, more as
// the spec allows (retries, or until the wait has passed), plus one
// whenever the backend reports that the lock may have become free.
func (a *acquisition) obtain(ctx context.Context) (g grant, err error) {
	a.timer.clock = a.c.clock
	if a.o != nil {
		a.began = a.c.clock.Now()
	}
	if a.s.wait > 0 {
		a.waitEnd = a.c.clock.Now().Add(a.s.wait)
	}
	defer func() { a.end(ctx, g.token, err) }()
	for {
		if ended(ctx) {
			return grant{}, a.endedErr(ctx)
		}
		if g, ok := a.claim(); ok {
			return g, nil
		}
		g, err := a.attempt(ctx)
		switch {
		case err == nil && g.token > 0:
			return g, nil
		case err != nil && ended(ctx) && !errors.Is(err, backend.ErrUnavailable):
			// Cut short by ctx: the outcome is unknown (the backend cleaned
			// up), and what came before decides the error.
			return grant{}, a.endedErr(ctx)
		}
		a.failure = err
		if err := a.out(); err != nil {
			return grant{}, err
		}
		if a.tick == nil {
			a.tick = a.timer.wait(a.nextWait())
		}
		a.watch(ctx)
		if err := a.sleep(ctx); err != nil {
			return grant{}, err
		}
	}
}

// claim takes the lock the backend granted this waiter, if it did, and if
// the grant is sure to last long enough: half the validity it can have at
// most. (A grant that lasts less, from an old renewal, is taken by the
// next attempt instead, with a full TTL: the attempt takes the grant.)
//
// The grant is sure to last keep from when the waiter sent the request
// that last renewed its place (the store processed it before the grant),
// and the lease trusts it no longer than the TTL from now.
func (a *acquisition) claim() (grant, bool) {
	if a.granted == nil {
		return grant{}, false
	}
	token, seq := a.granted()
	if token <= 0 {
		return grant{}, false
	}
	a.granted = nil // taken: the lock is ours, or the next attempt's
	sent, ok := a.sentAt(seq)
	if !ok {
		return grant{}, false
	}
	now := a.c.clock.Now()
	keep := a.c.validity(keepTime(a.s.interval))
	g := grant{token: token, start: now, until: sent.Add(keep), confirm: a.s.owner != ""}
	want := now.Add(a.c.validity(a.s.ttl))
	if g.until.Before(want) {
		g.confirm = true
		if g.until.Sub(now) < min(keep, a.c.validity(a.s.ttl))/2 {
			return grant{}, false
		}
	}
	return g, true
}

// sentAt returns when the request with Seq seq was sent, if it is one of
// the recent ones.
func (a *acquisition) sentAt(seq int64) (time.Time, bool) {
	s := a.sent[seq%int64(len(a.sent))]
	return s.at, s.seq == seq && !s.at.IsZero()
}

// note records when the request with Seq seq was sent.
func (a *acquisition) note(seq int64, at time.Time) {
	a.sent[seq%int64(len(a.sent))] = sentAt{seq, at}
}

// attempt makes one attempt, as the waiter once it watches.
func (a *acquisition) attempt(ctx context.Context) (grant, error) {
	r := backend.Request{TTL: a.s.ttl, Owner: a.s.owner}
	if a.waiter != "" {
		r.Waiter, r.Keep = a.waiter, keepTime(a.s.interval)
	}
	start := a.c.clock.Now()
	if a.granted != nil {
		a.seq++
		r.Seq = a.seq
		a.note(a.seq, start)
	}
	token, err := a.t.acquire(ctx, r)
	a.attempts++
	if a.o != nil {
		a.o.Observe(ctx, Event{Kind: KindAttempt, Lock: a.t.kind, Backend: a.c.name, Key: a.t.name, Outcome: attemptOutcome(ctx, token, err),
			Start: start, Duration: a.c.clock.Now().Sub(start), Token: Item(max(token, 0)), Run: a.s.run, Err: err})
	}
	return grant{token: token, start: start}, err
}

// out returns the error that ends the acquisition if it may not try again.
func (a *acquisition) out() error {
	out := a.s.retries >= 0 && a.retries >= a.s.retries
	if !a.waitEnd.IsZero() && !a.c.clock.Now().Before(a.waitEnd) {
		out = true
	}
	switch {
	case !out:
		return nil
	case a.failure != nil:
		return fmt.Errorf("xsync: lock %s on %s: %w", a.t.String(), a.c.name, a.failure)
	}
	return fmt.Errorf("%w: %s is held", ErrMissingLock, a.t.String())
}

// endedErr is the error of an acquisition that ctx ended: the last
// backend failure if the last attempt that told anything failed,
// ErrMissingLock otherwise; and ctx's error in both cases.
func (a *acquisition) endedErr(ctx context.Context) error {
	if a.failure != nil {
		return fmt.Errorf("xsync: lock %s on %s: %w (then the context ended: %w)", a.t.String(), a.c.name, a.failure, ctxError(ctx))
	}
	return fmt.Errorf("%w: %s: %w", ErrMissingLock, a.t.String(), ctxError(ctx))
}

// watch starts watching the lock from the first contended attempt on,
// as a waiter of its own (with a zero interval there is no wait to cut
// short). The set-up may take the retry interval, or watchSetup if that
// is longer (a place in a queue takes a few round trips, which a loaded
// store may not answer within a short interval, time after time), within
// the wait. A watch that fails to start is not an error: the next
// contended attempt tries again.
func (a *acquisition) watch(ctx context.Context) {
	if a.watched || a.failure != nil || a.s.interval <= 0 {
		return
	}
	w, ok := a.t.value().(backend.Watcher)
	if !ok {
		a.watched = true // nothing to watch with: the interval alone
		return
	}
	name := strconv.FormatUint(rand.Uint64(), 36)
	setup := max(a.s.interval, watchSetup)
	if !a.waitEnd.IsZero() {
		setup = min(setup, max(a.waitEnd.Sub(a.c.clock.Now()), a.s.interval))
	}
	wctx, cancel := context.WithTimeout(ctx, setup)
	defer cancel()
	if g, ok := w.(backend.Granter); ok {
		sent := a.c.clock.Now()
		ready, granted, leave, err := g.WatchGrant(wctx, name, keepTime(a.s.interval))
		switch {
		case err == nil:
			a.watched, a.ready, a.leave, a.waiter, a.granted = true, ready, leave, name, granted
			a.note(0, sent)
			return
		case !errors.Is(err, errors.ErrUnsupported):
			return
		}
	}
	ready, leave, err := w.Watch(wctx, name, keepTime(a.s.interval))
	switch {
	case err == nil:
		a.watched, a.ready, a.leave, a.waiter = true, ready, leave, name
	case errors.Is(err, errors.ErrUnsupported):
		a.watched = true
	}
}

// watchSetup is the least time a watch's set-up is given.
const watchSetup = time.Second

// sleep waits for the next attempt: a notification, the next timed
// retry, or ctx's end. A notification leaves the timer running: attempts
// it causes do not use up a retry, and the timed retries keep their pace,
// so the whole wait stays within about retries × interval.
func (a *acquisition) sleep(ctx context.Context) error {
	select {
	case <-a.ready:
	case <-a.tick:
		a.retries++
		a.tick = a.timer.wait(a.nextWait())
	case <-ctx.Done():
		return a.endedErr(ctx)
	}
	return nil
}

// end leaves the lock's waiters, stops the timer, and reports the wait.
func (a *acquisition) end(ctx context.Context, token int64, err error) {
	if a.leave != nil {
		a.leave()
	}
	a.timer.done()
	if a.o == nil {
		return
	}
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
	a.o.Observe(ctx, Event{Kind: KindWait, Lock: a.t.kind, Backend: a.c.name, Key: a.t.name, Outcome: out, Start: a.began,
		Duration: a.c.clock.Now().Sub(a.began), Attempts: a.attempts, Token: Item(token), Run: a.s.run, Err: err})
}

// keepTime is how long a waiter's place stays alive after each attempt:
// it attempts at least once per retry interval while it waits, so 3
// intervals (at least a second) leave room for slow calls, and a waiter
// that died holds the others back no longer than that.
func keepTime(interval time.Duration) time.Duration {
	return max(3*interval, time.Second)
}

// nextWait returns how long to wait before the next timed attempt: a
// random time between interval/2 and interval, so that contenders that
// failed together do not retry together (Redlock's split votes need
// this), and never past the end of the wait.
func (a *acquisition) nextWait() time.Duration {
	d := a.s.interval
	if d > 1 {
		d = d/2 + rand.N(d/2+1)
	}
	if !a.waitEnd.IsZero() {
		d = max(min(d, a.waitEnd.Sub(a.c.clock.Now())), 0)
	}
	return d
}

// maxReleaseTimeout bounds how long Run spends releasing a lock after the
// callback returned. Release never takes longer than the lock's own TTL
// either: past that the lock has expired anyway.
const maxReleaseTimeout = 5 * time.Second

// hold is what every hold keeps, whether Run or a Lease keeps it: the
// lock, how it was taken, and its grant.
type hold struct {
	c    *Client
	t    target
	s    spec
	o    Observer
	g    grant
	held time.Time // when the lock was obtained, if observed
}

// letGo gives the lock back on rctx and, with an observer, reports the
// end of the hold (unless reported already: a loss is reported when it
// happens) and the release, with ctx's values. It returns the backend's
// answer and the loss: lost, or errNotFreed if the release found the
// lock gone.
func (h *hold) letGo(ctx, rctx context.Context, lost error, reported bool) (released bool, err, loss error) {
	var began time.Time
	if h.o != nil {
		began = h.c.clock.Now()
	}
	released, err = h.giveBack(rctx)
	if lost == nil && err == nil && !released {
		lost = errNotFreed
	}
	if h.o != nil {
		if !reported {
			h.reportEnd(ctx, lost)
		}
		h.reportRelease(ctx, began, released, err)
	}
	return released, err, lost
}

// giveBack is the backend call of letGo: a release, or with
// hold-at-least before its time, a refresh that makes the lock expire at
// that time.
func (h *hold) giveBack(ctx context.Context) (bool, error) {
	if h.s.atLeast > 0 {
		if rest := h.g.start.Add(h.s.atLeast).Sub(h.c.clock.Now()); rest > 0 {
			r, ok := h.t.value().(backend.Refresher)
			if !ok {
				return true, nil // the TTL covers it (checked before the lock was taken)
			}
			return r.Refresh(ctx, h.g.token, rest.Round(time.Millisecond)+time.Millisecond)
		}
	}
	return h.t.release(ctx, h.g.token)
}

// runSpec takes t as s says, and runs cb while holding it: the callback's
// context ends when the lock is lost, and the lock is released when cb
// returns, panics, or ctx has ended.
func (c *Client) runSpec(ctx context.Context, t *target, s *spec, cb func(ctx context.Context) error) (err error) {
	o := c.observer()
	if rs, ok := o.(RunStarter); ok {
		ctx = rs.StartRun(ctx, c.name, t.name)
	}
	a := acquisition{c: c, t: *t, s: *s, o: o}
	g, err := a.obtain(ctx)
	if err != nil {
		return err
	}
	h := hold{c: c, t: a.t, s: *s, o: o, g: g}
	if o != nil {
		h.held = c.clock.Now()
	}
	if _, real := c.clock.(systemClock); real && !s.extend && !g.confirm {
		// Without renewal on the system clock, the loss is a plain
		// deadline, and no lease is needed.
		return h.runToDeadline(ctx, cb)
	}
	l := newLease(ctx, h)
	defer func() {
		// This runs when cb panics too; the panic goes on afterwards.
		err = withLoss(err, l.finish(ctx))
	}()
	return cb(&l.scope.item)
}

// withLoss is Run's error: cb's, and the loss if there was one.
func withLoss(err, lost error) error {
	switch {
	case lost == nil:
		return err
	case err == nil:
		return lost
	}
	return &alsoLost{err, lost}
}

// runScope is what Run allocates once per hold: the callback's context
// with the token, and the context the lock is released with.
type runScope struct {
	item    itemCtx
	release detached
}

// runToDeadline runs cb while h holds a lock that is not renewed, on the
// system clock: the callback's context ends at the validity deadline. The
// hold stays on the caller's stack; the contexts are all Run allocates.
func (h *hold) runToDeadline(ctx context.Context, cb func(ctx context.Context) error) (err error) {
	scope := new(runScope)
	deadline := h.deadline()
	cctx, cancel := context.WithDeadlineCause(ctx, deadline, errExpired)
	scope.item = itemCtx{Context: cctx, item: Item(h.g.token)}
	var w *lossWatch
	if h.o != nil {
		w = watchLoss(ctx, cctx, *h)
	}
	defer func() {
		// This runs when cb panics too; the panic goes on afterwards.
		var lost error
		if cause := context.Cause(cctx); cause != nil && errors.Is(cause, ErrLockLost) {
			lost = cause
		} else if !h.c.clock.Now().Before(deadline) {
			// cb returned after the deadline, before its timer fired.
			lost = errExpired
		}
		reported := w != nil && w.wait()
		cancel()
		scope.release.init(ctx, min(h.s.ttl, maxReleaseTimeout))
		_, _, lost = h.letGo(ctx, &scope.release, lost, reported)
		scope.release.stop()
		err = withLoss(err, lost)
	}()
	return cb(&scope.item)
}

// lossWatch reports the loss of a lock that is not renewed at the moment
// its deadline passes, for an observer.
type lossWatch struct {
	h        hold
	stop     func() bool   // ends the watch of the context
	reported chan struct{} // closed once the watch has run
	lost     bool          // the watch reported a loss
}

func watchLoss(ctx, cctx context.Context, h hold) *lossWatch {
	w := &lossWatch{h: h, reported: make(chan struct{})}
	w.stop = context.AfterFunc(cctx, func() {
		defer close(w.reported)
		if cause := context.Cause(cctx); errors.Is(cause, ErrLockLost) {
			w.lost = true
			w.h.reportEnd(ctx, cause)
		}
	})
	return w
}

// wait ends the watch, or waits for it to finish if it has begun, and
// reports whether it reported a loss.
func (w *lossWatch) wait() bool {
	if !w.stop() {
		<-w.reported
	}
	return w.lost
}

// lockOnce is one attempt on key's mutex, without a lease: the seed's Lock.
func (c *Client) lockOnce(ctx context.Context, key string, ttl time.Duration) (Item, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("xsync: lock %s: %w", keyString(key), context.Cause(ctx))
	}
	var start time.Time
	o := c.observer()
	if o != nil {
		start = c.clock.Now()
	}
	token, err := c.l.Acquire(ctx, key, ttl)
	if o != nil {
		o.Observe(ctx, Event{Kind: KindAttempt, Lock: "mutex", Backend: c.name, Key: key, Outcome: attemptOutcome(ctx, token, err),
			Start: start, Duration: c.clock.Now().Sub(start), Token: Item(max(token, 0)), Err: err})
	}
	switch {
	case err != nil && ended(ctx):
		// The client may report its read deadline rather than ctx's.
		return 0, fmt.Errorf("xsync: lock %s on %s: %w (the context ended: %w)", keyString(key), c.name, err, ctxError(ctx))
	case err != nil:
		return 0, fmt.Errorf("xsync: lock %s on %s: %w", keyString(key), c.name, err)
	case token <= 0:
		return 0, nil
	}
	return Item(token), nil
}

// unlock releases key's mutex if item holds it, without a lease: the
// seed's Unlock.
func (c *Client) unlock(ctx context.Context, key string, item Item) (bool, error) {
	if item <= 0 {
		return false, nil
	}
	var start time.Time
	o := c.observer()
	if o != nil {
		start = c.clock.Now()
	}
	ok, err := c.l.Release(ctx, key, int64(item))
	if o != nil {
		o.Observe(ctx, Event{Kind: KindRelease, Lock: "mutex", Backend: c.name, Key: key, Outcome: releaseOutcome(ok, err),
			Start: start, Duration: c.clock.Now().Sub(start), Token: item, Err: err})
	}
	if err != nil {
		return false, fmt.Errorf("xsync: unlock %s on %s: %w", keyString(key), c.name, err)
	}
	return ok, nil
}
