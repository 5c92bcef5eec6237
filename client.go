package xsync

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// Client locks keys on one backend instance: the handle a service keeps,
// as it keeps a *sql.DB. Build it with [NewClient] from a backend value,
// or get the one behind a registered name with [Registered]; the seed API
// ([New], [Lock], [Item.Unlock]) is a thin layer over it.
//
//	locks := xsync.NewClient(redis.New(rdb))
//	lease, err := locks.Acquire(ctx, "invoice:42", xsync.WithTTL(30*time.Second), xsync.WithWait(5*time.Second))
//	if err != nil {
//		return err // xsync.IsMissingLockErr(err): held by someone else for the whole wait
//	}
//	defer lease.Release(context.WithoutCancel(ctx))
//	select {
//	case <-lease.Done(): // lost: stop, the work is no longer protected
//	case ...:
//	}
//
// A Client is safe for concurrent use and holds no resources of its own:
// closing the backend's client is the application's business.
type Client struct {
	l     Locker
	name  string   // in messages and events
	clock Clock    // never nil
	obs   Observer // nil: the observer set for name (SetObserver)
	owner string   // owner metadata by default
}

// ClientOption configures a [Client].
type ClientOption func(*Client)

// WithName names the backend in error messages and observer events (and
// selects the observer set for that name with [SetObserver], unless
// [WithObserver] sets one). The default is "client".
func WithName(name string) ClientOption { return func(c *Client) { c.name = name } }

// WithClock replaces the system clock: the client then measures validity,
// waits and renewals on clock. Tests use a manual clock shared with the
// memory backend (memory.ManualClock) to expire or lose locks without
// sleeping.
func WithClock(clock Clock) ClientOption { return func(c *Client) { c.clock = clock } }

// WithObserver makes o the client's observer, whatever SetObserver says.
func WithObserver(o Observer) ClientOption { return func(c *Client) { c.obs = o } }

// NewClient returns a client of the backend l. It panics if l is nil.
func NewClient(l Locker, opts ...ClientOption) *Client {
	if l == nil {
		panic("xsync: NewClient backend is nil")
	}
	c := &Client{l: l, name: "client", clock: systemClock{}, owner: defaultOwner}
	for _, o := range opts {
		o(c)
	}
	if c.clock == nil {
		c.clock = systemClock{}
	}
	return c
}

// Registered returns a client of the backend registered as name (see
// [Register]); it follows later changes of the registration ([Swap]) only
// if called again. It returns an error matching [ErrUnknownBackend] if no
// backend is registered under name.
func Registered(name string) (*Client, error) {
	return registered(name)
}

// Locker returns the backend the client locks on.
func (c *Client) Locker() Locker { return c.l }

func (c *Client) observer() Observer {
	if c.obs != nil {
		return c.obs
	}
	return observer(c.name)
}

// MaxOwnerLen is the longest owner description [WithOwner] accepts.
const MaxOwnerLen = 256

// defaultOwner is the owner metadata a client stores by default.
var defaultOwner = func() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	return host + "/" + strconv.Itoa(os.Getpid())
}()

// DefaultTTL is the TTL of a lock taken through a [Client] without
// [WithTTL].
const DefaultTTL = 10 * time.Second

// DefaultRetryInterval is how often a waiting [Client.Acquire] tries again
// at most, when no release notification wakes it first.
const DefaultRetryInterval = 100 * time.Millisecond

// WaitForever makes [WithWait] wait until the context ends.
const WaitForever time.Duration = -1

// acquireSpec is everything that shapes one acquisition and hold.
type acquireSpec struct {
	ttl      time.Duration
	retries  int32 // timed retries after the first attempt; -1: as many as the wait allows
	interval time.Duration
	wait     time.Duration // > 0: give up once it has passed; WaitForever: when ctx ends
	extend   bool
	maxHold  time.Duration
	owner    string
	atLeast  time.Duration
	run      bool    // events come from Run
	t        *target // another lock type than the mutex; nil: the mutex
	err      error
}

// AcquireOption configures one [Client.Acquire] or [Client.Run].
type AcquireOption func(*acquireSpec)

// WithTTL sets the lock's TTL (default [DefaultTTL]). It must be at least
// a millisecond; backends round it up to their precision (etcd: whole
// seconds, at least 2s), and the lease trusts only what was asked. A TTL
// that the backend can trust for none of its length (Redlock: within its
// allowance for clock drift, about 2ms) is [ErrInvalid].
func WithTTL(ttl time.Duration) AcquireOption {
	return func(s *acquireSpec) {
		if ttl < time.Millisecond {
			s.err = fmt.Errorf("%w: ttl %v: must be at least 1ms", ErrInvalid, ttl)
		}
		s.ttl = ttl
	}
}

// WithWait sets how long to wait for a held key: 0 (the default) makes one
// attempt; d > 0 tries again until d has passed on the client's clock (a
// deadline, not a number of attempts); [WaitForever] waits until ctx ends.
// A waiter tries again as soon as the backend reports a release, and
// otherwise every [DefaultRetryInterval] or so.
func WithWait(d time.Duration) AcquireOption {
	return func(s *acquireSpec) {
		if d < 0 && d != WaitForever {
			s.err = fmt.Errorf("%w: wait %v: must be >= 0 or WaitForever", ErrInvalid, d)
		}
		s.wait = d
	}
}

// WithRetryInterval sets the longest time between two timed attempts
// while waiting (default [DefaultRetryInterval]); each wait is random
// between interval/2 and interval. On a backend that queues waiters
// (backend.Queuer: Redis and etcd), a waiter stays alive in the queue for
// its keep time, max(3 × interval, 1s), after each attempt: a caller that
// dies while waiting holds the others back for its keep time as the
// backend rounds it (etcd: up to whole seconds and at least 2s, plus its
// expiry delay; see each backend's documentation).
func WithRetryInterval(d time.Duration) AcquireOption {
	return func(s *acquireSpec) {
		if d <= 0 {
			s.err = fmt.Errorf("%w: retry interval %v: must be > 0", ErrInvalid, d)
		}
		s.interval = d
	}
}

// WithAutoExtend renews the lock every TTL/3 for as long as the lease is
// held (until Release, or until the callback of Run returns). maxHold > 0
// caps the hold: the lease is lost maxHold after the lock was requested;
// 0 means no cap. It needs a backend that can refresh locks.
func WithAutoExtend(maxHold time.Duration) AcquireOption {
	return func(s *acquireSpec) {
		if maxHold < 0 {
			s.err = fmt.Errorf("%w: max hold %v: must be >= 0", ErrInvalid, maxHold)
		}
		s.extend, s.maxHold = true, maxHold
	}
}

// WithOwner adds caller to the owner metadata stored with the lock, after
// the default host/pid: what an operator sees with [Client.Inspect]. It
// never affects who holds the lock. At most [MaxOwnerLen] bytes in all;
// backends that cannot store metadata ignore it.
func WithOwner(caller string) AcquireOption {
	return func(s *acquireSpec) {
		s.owner = defaultOwner + " " + caller
		if len(s.owner) > MaxOwnerLen {
			s.err = fmt.Errorf("%w: owner of %d bytes: at most MaxOwnerLen (%d) in all", ErrInvalid, len(s.owner), MaxOwnerLen)
		}
	}
}

// WithHoldAtLeast keeps the lock until at least d after it was requested,
// even if it is released earlier (ShedLock's lockAtLeastFor): a job
// scheduled on several replicas whose clocks or ticks differ then runs
// once per period. Release before that moment sets the lock to expire
// then instead (a refresh), and Run's release does the same. On a backend
// that cannot refresh, the TTL must cover d.
func WithHoldAtLeast(d time.Duration) AcquireOption {
	return func(s *acquireSpec) {
		if d < 0 {
			s.err = fmt.Errorf("%w: hold at least %v: must be >= 0", ErrInvalid, d)
		}
		s.atLeast = d
	}
}

func (c *Client) spec(opts []AcquireOption) (acquireSpec, error) {
	return c.specFor(nil, opts)
}

// specFor is spec for an acquisition of t (nil: the mutex).
func (c *Client) specFor(t *target, opts []AcquireOption) (acquireSpec, error) {
	s := acquireSpec{ttl: DefaultTTL, interval: DefaultRetryInterval, owner: c.owner, t: t}
	for _, o := range opts {
		o(&s)
	}
	if s.err != nil {
		return s, s.err
	}
	s.retries = 0
	if s.wait != 0 {
		s.retries = -1
		if t != nil && t.giveUp != nil {
			t.waiter = strconv.FormatUint(rand.Uint64(), 36)
		}
	}
	return s, c.capable(s)
}

// capable checks that the backend can do what s asks, before any call.
func (c *Client) capable(s acquireSpec) error {
	if v := c.validity(s.ttl); v <= 0 {
		return fmt.Errorf("%w: ttl %v: too short for backend %q, which can trust a lock for none of it (its allowance for clock drift is longer)", ErrInvalid, s.ttl, c.name)
	}
	_, refresh := c.l.(backend.Refresher)
	if s.t != nil {
		refresh = s.t.refresh != nil
	}
	if s.extend && !refresh {
		return fmt.Errorf("xsync: auto-extension: backend %q cannot refresh locks: %w", c.name, errors.ErrUnsupported)
	}
	if s.atLeast > s.ttl && !refresh {
		return fmt.Errorf("xsync: hold at least %v > TTL %v: backend %q cannot refresh locks: %w", s.atLeast, s.ttl, c.name, errors.ErrUnsupported)
	}
	return nil
}

// checkKey validates a key.
func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalid)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: key %s: longer than MaxKeyLen (%d bytes)", ErrInvalid, keyString(key), MaxKeyLen)
	}
	return nil
}

// Acquire takes the lock on key, waiting for it as [WithWait] says, and
// returns the lease. The error matches [ErrMissingLock] if the key was
// held for the whole wait (or ctx ended while waiting, then with ctx's
// error too), and is otherwise the backend's failure or bad input
// ([ErrInvalid]; bad input never reaches the backend). The caller must
// Release the lease, or let it expire.
func (c *Client) Acquire(ctx context.Context, key string, opts ...AcquireOption) (*Lease, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return c.acquireLease(ctx, key, nil, opts)
}

// acquireLease is Acquire after the key was checked: of the mutex key
// (t nil), or of t (key is its label).
func (c *Client) acquireLease(ctx context.Context, key string, t *target, opts []AcquireOption) (*Lease, error) {
	s, err := c.specFor(t, opts)
	if err != nil {
		return nil, err
	}
	o := c.observer()
	var began time.Time
	if o != nil {
		began = c.clock.Now()
	}
	token, start, attempts, err := c.acquire(ctx, key, &s, o)
	if o != nil && s.wait != 0 {
		c.observeWait(ctx, key, &s, o, began, attempts, token, err)
	}
	if err != nil {
		s.t.gaveUp(ctx)
		return nil, err
	}
	return c.newLease(ctx, key, token, start, s, o, nil, nil), nil
}

// Run takes the lock on key as [Client.Acquire] does, calls cb while
// holding it, and releases it: the semantics of [Async.Run] (the
// callback's context, ErrLockLost, release on panic), with the options of
// Acquire.
func (c *Client) Run(ctx context.Context, key string, cb func(ctx context.Context) error, opts ...AcquireOption) error {
	if cb == nil {
		return fmt.Errorf("%w: nil callback", ErrInvalid)
	}
	if err := checkKey(key); err != nil {
		return err
	}
	s, err := c.spec(opts)
	if err != nil {
		return err
	}
	s.run = true
	return c.run(ctx, key, cb, &s)
}

// attemptOwner makes one acquire attempt, with owner metadata where the
// backend stores it.
func (c *Client) attempt(ctx context.Context, key string, s *acquireSpec) (int64, error) {
	if s.owner != "" {
		if oa, ok := c.l.(backend.OwnerAcquirer); ok {
			return oa.AcquireOwner(ctx, key, s.ttl, s.owner)
		}
	}
	return c.l.Acquire(ctx, key, s.ttl)
}

// acquire makes the first attempt and, while the key is held, more as s
// allows (retries, or until the wait has passed), plus one whenever the
// backend reports that the key may have become free. It returns the
// token, the time just before the successful request was sent, and how
// many attempts it made.
func (c *Client) acquire(ctx context.Context, key string, s *acquireSpec, o Observer) (int64, time.Time, int, error) {
	var (
		n       int
		failure error // the last attempt's backend error; nil if it found the key held
		retries int32 // timed retries made
		ready   <-chan struct{}
		watched bool
		waiter  string // this acquisition's identity in the key's queue (backend.Queuer)
		tick    <-chan time.Time
		timer   = ticker{clock: c.clock}
		waitEnd time.Time
	)
	defer timer.done()
	if s.wait > 0 {
		waitEnd = c.clock.Now().Add(s.wait)
	}
	for {
		if ended(ctx) {
			return 0, time.Time{}, n, c.endedErr(ctx, key, failure)
		}
		start := c.clock.Now()
		var token int64
		var err error
		switch {
		case waiter != "":
			token, err = c.l.(backend.Queuer).AcquireQueued(ctx, key, s.ttl, s.owner, waiter, queueKeep(s.interval))
		case s.t != nil:
			token, err = s.t.attempt(ctx, s.ttl, s.interval)
		default:
			token, err = c.attempt(ctx, key, s)
		}
		n++
		if o != nil {
			o.Observe(ctx, Event{Kind: KindAttempt, Backend: c.name, Key: key, Outcome: attemptOutcome(ctx, token, err),
				Start: start, Duration: c.clock.Now().Sub(start), Token: Item(max(token, 0)), Run: s.run, Err: err})
		}
		switch {
		case err == nil && token > 0:
			return token, start, n, nil
		case err != nil && ended(ctx) && !errors.Is(err, backend.ErrUnavailable):
			// Cut short by ctx: the outcome is unknown (the backend cleaned
			// up), and what came before decides the error.
			return 0, time.Time{}, n, c.endedErr(ctx, key, failure)
		}
		failure = err
		out := s.retries >= 0 && retries >= s.retries
		if !waitEnd.IsZero() && !c.clock.Now().Before(waitEnd) {
			out = true
		}
		if out {
			if failure != nil {
				return 0, time.Time{}, n, fmt.Errorf("xsync: lock %s on backend %q: %w", keyString(key), c.name, failure)
			}
			return 0, time.Time{}, n, fmt.Errorf("%w: %s is held", ErrMissingLock, keyString(key))
		}
		if tick == nil {
			tick = timer.wait(c.nextWait(s, waitEnd))
		}
		// Watch the key from the first contended attempt on (with a zero
		// interval there is no wait to cut short): queued, where the
		// backend queues waiters. A watch that fails to start is not an
		// error: the interval bounds every wait, the watch's set-up
		// included, and the next contended attempt tries again (a set-up
		// slower than the interval once, under load, must not leave the
		// waiter unqueued for its whole wait).
		if !watched && failure == nil && s.interval > 0 {
			wctx, cancel := context.WithTimeout(ctx, s.interval)
			var (
				ch        <-chan struct{}
				stopWatch func()
				werr      = errors.ErrUnsupported
			)
			if s.t != nil {
				if s.t.watch != nil {
					ch, stopWatch, werr = s.t.watch(wctx)
				}
			} else if q, ok := c.l.(backend.Queuer); ok {
				waiter = strconv.FormatUint(rand.Uint64(), 36)
				ch, stopWatch, werr = q.WatchQueue(wctx, key, waiter, queueKeep(s.interval))
				if werr != nil {
					waiter = ""
				}
			}
			if w, ok := c.l.(backend.Watcher); ok && s.t == nil && errors.Is(werr, errors.ErrUnsupported) {
				ch, stopWatch, werr = w.Watch(wctx, key)
			}
			cancel()
			switch {
			case werr == nil:
				watched = true
				ready = ch
				defer stopWatch()
			case errors.Is(werr, errors.ErrUnsupported):
				watched = true // nothing to watch with: the interval alone
			}
		}
		// A notification leaves the timer running: attempts it causes do
		// not use up a retry, and the timed retries keep their pace, so the
		// whole wait stays within about retries × interval.
		select {
		case <-ready:
		case <-tick:
			retries++
			tick = timer.wait(c.nextWait(s, waitEnd))
		case <-ctx.Done():
			return 0, time.Time{}, n, c.endedErr(ctx, key, failure)
		}
	}
}

// queueKeep is how long a queued waiter stays alive in the queue after
// each attempt: it attempts at least once per retry interval while it
// waits, so 3 intervals (at least a second) leave room for slow calls,
// and a waiter that died holds the queue back no longer than that.
func queueKeep(interval time.Duration) time.Duration {
	return max(3*interval, time.Second)
}

// nextWait returns how long to wait before the next timed attempt: a
// random time between interval/2 and interval, so that contenders that
// failed together do not retry together (Redlock's split votes need
// this), and never past the end of the wait.
func (c *Client) nextWait(s *acquireSpec, waitEnd time.Time) time.Duration {
	d := s.interval
	if d > 1 {
		d = d/2 + rand.N(d/2+1)
	}
	if !waitEnd.IsZero() {
		d = max(min(d, waitEnd.Sub(c.clock.Now())), 0)
	}
	return d
}

// endedErr is the error of an acquire that ctx ended: the last backend
// failure if the last attempt that told anything failed, ErrMissingLock
// otherwise; and ctx's error in both cases.
func (c *Client) endedErr(ctx context.Context, key string, failure error) error {
	if failure != nil {
		return fmt.Errorf("xsync: lock %s on backend %q: %w (then the context ended: %w)", keyString(key), c.name, failure, ctxError(ctx))
	}
	return fmt.Errorf("%w: %s: %w", ErrMissingLock, keyString(key), ctxError(ctx))
}

func (c *Client) observeWait(ctx context.Context, key string, s *acquireSpec, o Observer, began time.Time, attempts int, token int64, err error) {
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
	o.Observe(ctx, Event{Kind: KindWait, Backend: c.name, Key: key, Outcome: out, Start: began,
		Duration: c.clock.Now().Sub(began), Attempts: attempts, Token: Item(token), Run: s.run, Err: err})
}

// run is Run after validation: Async.Run and Client.Run.
func (c *Client) run(ctx context.Context, key string, cb func(ctx context.Context) error, s *acquireSpec) (err error) {
	o := c.observer()
	var began time.Time
	if o != nil {
		began = c.clock.Now()
		if rs, ok := o.(RunStarter); ok {
			ctx = rs.StartRun(ctx, c.name, key)
		}
	}
	token, start, attempts, err := c.acquire(ctx, key, s, o)
	if o != nil {
		c.observeWait(ctx, key, s, o, began, attempts, token, err)
	}
	if err != nil {
		s.t.gaveUp(ctx)
		return err
	}
	var acquired time.Time
	if o != nil {
		acquired = c.clock.Now()
	}
	// The callback's context ends when the lease is lost. Without renewal
	// on the system clock, that is a plain deadline, and no lease is
	// needed (the fast path of the seed's Run).
	var (
		cbCtx       context.Context
		stop        context.CancelFunc
		cancelCause context.CancelCauseFunc
		lease       *Lease
		dl          time.Time
	)
	if _, real := c.clock.(systemClock); real && !s.extend {
		cbCtx, stop = context.WithDeadlineCause(ctx, start.Add(c.validity(s.ttl)), errExpired)
	} else {
		cbCtx, cancelCause = context.WithCancelCause(ctx)
		lease = c.newLease(ctx, key, token, start, *s, o, cbCtx, cancelCause)
		if !s.extend {
			dl = lease.Deadline()
		}
	}
	defer func() {
		// Decide whether the lock was lost before cb returned, then stop
		// the renewal and release. This runs when cb panics too; the panic
		// goes on afterwards.
		var lost error
		if lease != nil {
			lost = lease.lost()
		}
		if cause := context.Cause(cbCtx); lost == nil && cause != nil && errors.Is(cause, ErrLockLost) {
			lost = cause
		}
		if stop != nil {
			stop()
		}
		var returned time.Time
		if o != nil {
			returned = c.clock.Now()
		}
		rctx := newDetached(ctx, min(s.ttl, maxReleaseTimeout))
		if lease != nil {
			lease.finish() // ends cbCtx too
		}
		released, rerr := c.release(rctx, key, token, start, s)
		rctx.stop()
		if lost == nil && rerr == nil && !released {
			lost = errNotFreed
		}
		if o != nil {
			c.observeEnd(ctx, o, key, token, acquired, returned, released, rerr, lost)
		}
		if lost != nil {
			if err == nil {
				err = lost
			} else {
				err = errors.Join(err, lost)
			}
		}
	}()
	if !dl.IsZero() {
		return cb(&deadlineCtx{itemCtx{Context: cbCtx, item: Item(token)}, dl})
	}
	return cb(&itemCtx{Context: cbCtx, item: Item(token)})
}

// release gives a lock back: a release, or with hold-at-least before its
// time, a refresh that makes the lock expire at that time.
func (c *Client) release(ctx context.Context, key string, token int64, start time.Time, s *acquireSpec) (bool, error) {
	if s.atLeast > 0 {
		if rest := start.Add(s.atLeast).Sub(c.clock.Now()); rest > 0 {
			refresh := c.refresher(key, s)
			if refresh == nil {
				return true, nil // the TTL covers it (checked before the lock was taken)
			}
			return refresh(ctx, token, rest.Round(time.Millisecond)+time.Millisecond)
		}
	}
	if s.t != nil {
		return s.t.release(ctx, token)
	}
	return c.l.Release(ctx, key, token)
}

// refresher returns the backend call that renews what s takes on key;
// nil if the backend cannot.
func (c *Client) refresher(key string, s *acquireSpec) func(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	if s.t != nil {
		return s.t.refresh
	}
	r, ok := c.l.(backend.Refresher)
	if !ok {
		return nil
	}
	return func(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
		return r.Refresh(ctx, key, token, ttl)
	}
}

// observeEnd reports the end of a hold of Run: the hold, the loss if any,
// and the release.
func (c *Client) observeEnd(ctx context.Context, o Observer, key string, token int64, acquired, returned time.Time, released bool, rerr, lost error) {
	e := Event{Backend: c.name, Key: key, Token: Item(token), Run: true}
	hold := e
	hold.Kind, hold.Start, hold.Duration, hold.Outcome = KindHold, acquired, returned.Sub(acquired), OutcomeKept
	if lost != nil {
		hold.Outcome = OutcomeLost
	}
	o.Observe(ctx, hold)
	if lost != nil {
		l := e
		l.Kind, l.Outcome, l.Start, l.Err = KindLost, OutcomeLost, returned, lost
		o.Observe(ctx, l)
	}
	r := e
	r.Kind, r.Outcome, r.Start, r.Duration, r.Err = KindRelease, releaseOutcome(released, rerr), returned, c.clock.Now().Sub(returned), rerr
	o.Observe(ctx, r)
}

// Info is what [Client.Inspect] finds about a key.
type Info struct {
	Key   string
	Held  bool
	Token Item          // the holder's token (0 if not held)
	TTL   time.Duration // how long the lock has left, on the server's clock
	Owner string        // the holder's owner metadata, if the backend stores it
}

// Inspect reports whether key is held, by which token, for how long
// still, and by whom (where the backend stores owner metadata). It returns
// an error matching errors.ErrUnsupported if the backend cannot inspect
// locks.
func (c *Client) Inspect(ctx context.Context, key string) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, err
	}
	in, ok := c.l.(backend.Inspector)
	if !ok {
		return Info{}, fmt.Errorf("xsync: inspect: backend %q cannot inspect locks: %w", c.name, errors.ErrUnsupported)
	}
	li, err := in.Inspect(ctx, key)
	if err != nil {
		return Info{}, fmt.Errorf("xsync: inspect %s on backend %q: %w", keyString(key), c.name, err)
	}
	if !li.Held {
		return Info{Key: key}, nil
	}
	return Info{Key: key, Held: true, Token: Item(li.Token), TTL: li.TTL, Owner: li.Owner}, nil
}

// ForceRelease frees key whoever holds it: an operator's action for a
// lock whose holder is stuck. Waiters are woken as by a release, and the
// fencing counter is kept, so the next holder's token is still larger
// (the stuck holder's writes stay fenced off). It returns whether a lock
// was held, and an error matching errors.ErrUnsupported if the backend
// cannot force a release.
func (c *Client) ForceRelease(ctx context.Context, key string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	fr, ok := c.l.(backend.ForceReleaser)
	if !ok {
		return false, fmt.Errorf("xsync: force release: backend %q cannot: %w", c.name, errors.ErrUnsupported)
	}
	freed, err := fr.ForceRelease(ctx, key)
	if err != nil {
		return false, fmt.Errorf("xsync: force release %s on backend %q: %w", keyString(key), c.name, err)
	}
	return freed, nil
}

// Ping checks that the backend can serve locks now (see [Ping]).
func (c *Client) Ping(ctx context.Context) error {
	p, ok := c.l.(backend.Pinger)
	if !ok {
		return fmt.Errorf("xsync: ping: backend %q cannot tell: %w", c.name, errors.ErrUnsupported)
	}
	if err := p.Ping(ctx); err != nil {
		return fmt.Errorf("xsync: ping backend %q: %w", c.name, err)
	}
	return nil
}
