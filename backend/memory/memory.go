// Package memory is an in-process lock backend for xsync: for unit tests
// and for applications that run as a single process.
//
// Locks live in the memory of one [Locker]; two Lockers, or two processes,
// do not exclude each other. Within one Locker every rule of the xsync
// contract holds:
//
//   - Acquire, Release and Refresh are atomic (one mutex per Locker).
//   - Tokens are fencing tokens: they come from one counter per Locker, so
//     every acquisition of a key gets a larger token than every earlier
//     acquisition of any key, including keys that were forgotten.
//   - A lock is free again once its TTL has passed on the Locker's clock
//     (nanosecond precision; expiry is checked on every call).
//   - Released and expired locks are forgotten: memory use follows the
//     number of locks held, not the number of keys ever used. No goroutine
//     or timer runs per held lock; a timer runs per key only while
//     somebody waits for that key.
//   - Waiters learn of a release through a channel at once ([Locker.Watch]),
//     and of an expiry when it is due on the real clock. They do not queue
//     (no backend.Queuer): every waiter of the key wakes and the first to
//     try wins, the releaser included. In one process a handoff costs
//     nanoseconds and barging keeps the lock's owner warm; order among
//     waiters is not promised.
//   - Operators: [Locker.Inspect] reports a key's holder, token, time left
//     and owner metadata ([Locker.AcquireOwner]); [Locker.ForceRelease]
//     frees a key whoever holds it and wakes its waiters.
//
// Semaphores, read-write locks and multi-key locks ([backend.Semaphorer],
// [backend.RWLocker], [backend.MultiLocker]) keep the same rules, under
// the same mutex; their tokens come from the same counter. Their waiters
// hear of releases at once and of expiries when due on the real clock.
//
// TestHistory holds it to conformance.RunHistory's checks too, in one
// process and without faults.
//
// # Testing with a manual clock
//
// [WithClock] replaces the clock, so that a test can expire locks without
// sleeping:
//
//	clock := memory.NewManualClock(time.Now())
//	l := memory.New(memory.WithClock(clock.Now))
//	// ... take a lock for 10s ...
//	clock.Advance(11 * time.Second) // the lock is now free
//
// The same clock passed to xsync.NewClient (xsync.WithClock(clock)) makes
// the core measure validity, waits and renewals on it as well: Advance
// then expires a lease, ends a callback's context and wakes a waiter's
// next attempt, all without sleeping. (The seed API measures on the real
// clock; a waiter learns of an expiry caused by Advance on its next
// attempt.)
//
// # URLs
//
// Importing this package registers the URL scheme "mem" with
// xsync.Open: "mem://" opens a new, empty in-memory Locker. It takes no
// host, path or options.
package memory

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/xsync-go/xsync/backend"
)

var (
	_ backend.Locker        = (*Locker)(nil)
	_ backend.Refresher     = (*Locker)(nil)
	_ backend.Watcher       = (*Locker)(nil)
	_ backend.Pinger        = (*Locker)(nil)
	_ backend.OwnerAcquirer = (*Locker)(nil)
	_ backend.Inspector     = (*Locker)(nil)
	_ backend.ForceReleaser = (*Locker)(nil)
)

// Option configures a Locker.
type Option func(*Locker)

// WithClock makes the Locker read the time from now instead of time.Now.
// now must be safe for concurrent use and should not go backwards.
//
// It panics if now is nil.
func WithClock(now func() time.Time) Option {
	if now == nil {
		panic("memory: WithClock(nil)")
	}
	return func(l *Locker) { l.now = now }
}

// Locker is an in-process lock backend. The zero value is not usable; call
// [New]. A Locker is safe for concurrent use.
type Locker struct {
	now  func() time.Time // nil: the real clock, read as monotonic time only
	base time.Time        // times below are nanoseconds since base

	mu       sync.Mutex
	seq      int64                      // last token handed out
	locks    map[string]held            // keys held now (or expired, not yet swept)
	due      expiryHeap                 // one entry per Acquire/Refresh not yet due
	watchers map[string][]chan struct{} // per key, the waiters' channels
	owners   map[string]string          // owner metadata of held keys that have some
	sems     groups                     // semaphores
	rws      groups                     // read-write locks
}

type held struct {
	token   int64
	expires int64       // nanoseconds since Locker.base
	timer   *time.Timer // wakes waiters at expiry; nil while nobody waits
}

// New returns an empty Locker that uses time.Now unless an option says
// otherwise.
func New(opts ...Option) *Locker {
	l := &Locker{
		locks:    make(map[string]held),
		watchers: make(map[string][]chan struct{}),
		owners:   make(map[string]string),
	}
	for _, o := range opts {
		o(l)
	}
	if l.now != nil {
		l.base = l.now()
	} else {
		l.base = time.Now()
	}
	return l
}

// clock returns the time in nanoseconds since l.base. With the real clock
// it reads only the monotonic clock, which is about twice as fast as
// time.Now and immune to wall-clock jumps.
func (l *Locker) clock() int64 {
	if l.now == nil {
		return int64(time.Since(l.base))
	}
	return int64(l.now().Sub(l.base))
}

// Acquire takes key for ttl if it is free. It implements [backend.Locker].
func (l *Locker) Acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	return l.AcquireOwner(ctx, key, ttl, "")
}

// AcquireOwner implements [backend.OwnerAcquirer]: Acquire, keeping owner
// with the lock for [Locker.Inspect].
func (l *Locker) AcquireOwner(_ context.Context, key string, ttl time.Duration, owner string) (int64, error) {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	if _, ok := l.locks[key]; ok {
		return 0, nil
	}
	l.seq++
	h := held{token: l.seq, expires: now + int64(ttl)}
	if owner != "" {
		l.owners[key] = owner
	}
	l.pushLocked(key, h)
	if len(l.watchers[key]) > 0 {
		l.armLocked(key, &h, now)
	}
	l.locks[key] = h
	return h.token, nil
}

// Release frees key if token holds it. It implements [backend.Locker].
func (l *Locker) Release(_ context.Context, key string, token int64) (bool, error) {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	h, ok := l.locks[key]
	if !ok || h.token != token {
		return false, nil
	}
	l.forgetLocked(key, h)
	return true, nil
}

// Refresh sets the lock's remaining lifetime to ttl if token holds key. It
// implements [backend.Refresher].
func (l *Locker) Refresh(_ context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	h, ok := l.locks[key]
	if !ok || h.token != token {
		return false, nil
	}
	h.expires = now + int64(ttl)
	l.pushLocked(key, h)
	if h.timer != nil {
		h.timer.Reset(ttl)
	}
	l.locks[key] = h
	return true, nil
}

// Watch reports through ready when key may have become free: at once if it
// is free now, on every release, and when the holder's TTL is due on the
// real clock. It implements [backend.Watcher].
func (l *Locker) Watch(_ context.Context, key string) (<-chan struct{}, func(), error) {
	ch := make(chan struct{}, 1)
	now := l.clock()
	l.mu.Lock()
	l.sweepLocked(now)
	l.watchers[key] = append(l.watchers[key], ch)
	if h, ok := l.locks[key]; !ok {
		ch <- struct{}{}
	} else if h.timer == nil {
		l.armLocked(key, &h, now)
		l.locks[key] = h
	}
	l.mu.Unlock()

	var once sync.Once
	stop := func() { once.Do(func() { l.unwatch(key, ch) }) }
	return ch, stop, nil
}

// Ping implements [backend.Pinger]: an in-process Locker can always serve.
func (l *Locker) Ping(context.Context) error { return nil }

// Inspect implements [backend.Inspector].
func (l *Locker) Inspect(_ context.Context, key string) (backend.LockInfo, error) {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	h, ok := l.locks[key]
	if !ok {
		return backend.LockInfo{}, nil
	}
	return backend.LockInfo{Held: true, Token: h.token, TTL: time.Duration(h.expires - now), Owner: l.owners[key]}, nil
}

// ForceRelease implements [backend.ForceReleaser]: it frees key whoever
// holds it and wakes its waiters; tokens keep growing (one counter per
// Locker).
func (l *Locker) ForceRelease(_ context.Context, key string) (bool, error) {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	h, ok := l.locks[key]
	if ok {
		l.forgetLocked(key, h)
	}
	return ok, nil
}

// Len reports how many keys the Locker holds now: mutex keys, and the
// semaphores and read-write locks that somebody holds or waits for.
// Released and expired locks are not counted: they are forgotten.
func (l *Locker) Len() int {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	l.sems.sweepAll(now)
	l.rws.sweepAll(now)
	return len(l.locks) + len(l.sems.m) + len(l.rws.m)
}

func (l *Locker) unwatch(key string, ch chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ws := l.watchers[key]
	if i := slices.Index(ws, ch); i >= 0 {
		ws[i] = ws[len(ws)-1]
		ws[len(ws)-1] = nil
		ws = ws[:len(ws)-1]
	}
	if len(ws) > 0 {
		l.watchers[key] = ws
		return
	}
	delete(l.watchers, key)
	if h, ok := l.locks[key]; ok && h.timer != nil {
		h.timer.Stop()
		h.timer = nil
		l.locks[key] = h
	}
}

// armLocked starts the timer that wakes key's waiters when h expires.
func (l *Locker) armLocked(key string, h *held, now int64) {
	h.timer = time.AfterFunc(time.Duration(h.expires-now), func() {
		now := l.clock()
		l.mu.Lock()
		l.sweepLocked(now)
		l.mu.Unlock()
	})
}

// forgetLocked deletes key's lock and wakes its waiters.
func (l *Locker) forgetLocked(key string, h held) {
	if h.timer != nil {
		h.timer.Stop()
	}
	delete(l.locks, key)
	if len(l.owners) > 0 {
		delete(l.owners, key)
	}
	for _, ch := range l.watchers[key] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// sweepLocked forgets every lock whose TTL has passed at now.
func (l *Locker) sweepLocked(now int64) {
	for len(l.due) > 0 && now >= l.due[0].expires {
		e := l.due.pop()
		if h, ok := l.locks[e.key]; ok && h.token == e.token && now >= h.expires {
			l.forgetLocked(e.key, h)
		}
	}
}

// pushLocked records h's expiry. Entries made stale by Release or Refresh
// stay until they are due; when they outnumber live locks the heap is
// rebuilt, so its size stays proportional to the number of locks held.
func (l *Locker) pushLocked(key string, h held) {
	if len(l.due) >= 64 && len(l.due) > 4*len(l.locks) {
		l.due = l.due[:0]
		for k, v := range l.locks {
			l.due = append(l.due, expiry{expires: v.expires, key: k, token: v.token})
		}
		for i := len(l.due)/2 - 1; i >= 0; i-- {
			l.due.down(i)
		}
	}
	l.due.push(expiry{expires: h.expires, key: key, token: h.token})
}

type expiry struct {
	expires int64
	key     string
	token   int64
}

// expiryHeap is a min-heap on expires. It is typed rather than built on
// container/heap, which would box every entry (one allocation per Acquire).
type expiryHeap []expiry

func (h *expiryHeap) push(e expiry) {
	*h = append(*h, e)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if s[i].expires >= s[p].expires {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *expiryHeap) pop() expiry {
	s := *h
	e := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s[n] = expiry{}
	*h = s[:n]
	h.down(0)
	return e
}

func (h expiryHeap) down(i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if r := c + 1; r < len(h) && h[r].expires < h[c].expires {
			c = r
		}
		if h[c].expires >= h[i].expires {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// ManualClock is a clock for tests that moves only when told to. Pass its
// Now method to [WithClock], and the clock itself to xsync.WithClock. It
// is safe for concurrent use.
type ManualClock struct {
	mu      sync.Mutex
	t       time.Time
	timers  []*manualTimer
	changed chan struct{} // closed and replaced whenever timers change
}

type manualTimer struct {
	at    time.Time
	f     func()
	fired bool
}

// NewManualClock returns a clock that reads start until it is advanced.
func NewManualClock(start time.Time) *ManualClock {
	return &ManualClock{t: start, changed: make(chan struct{})}
}

// notifyLocked wakes BlockUntil.
func (c *ManualClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// BlockUntil waits until at least n functions of AfterFunc are pending
// (registered and not yet due), or ctx ends: a test calls it before
// Advance, so that the goroutine it waits for has armed its timer.
func (c *ManualClock) BlockUntil(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		pending, changed := len(c.timers), c.changed
		c.mu.Unlock()
		if pending >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// AfterFunc calls f in its own goroutine once the clock has been advanced
// by d or more (at once if d <= 0), and returns a function that cancels
// the call if it has not started, as time.AfterFunc does.
func (c *ManualClock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{at: c.t.Add(d), f: f}
	if d <= 0 {
		t.fired = true
		go f()
	} else {
		c.timers = append(c.timers, t)
		c.notifyLocked()
	}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if t.fired {
			return false
		}
		t.fired = true
		c.timers = slices.DeleteFunc(c.timers, func(x *manualTimer) bool { return x == t })
		c.notifyLocked()
		return true
	}
}

// Advance moves the clock forward by d and starts the functions of
// AfterFunc that are due. A negative d is ignored: the clock never goes
// backwards.
func (c *ManualClock) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	c.t = c.t.Add(d)
	var due []*manualTimer
	c.timers = slices.DeleteFunc(c.timers, func(x *manualTimer) bool {
		if !x.at.After(c.t) {
			x.fired = true
			due = append(due, x)
			return true
		}
		return false
	})
	c.mu.Unlock()
	slices.SortStableFunc(due, func(a, b *manualTimer) int { return a.at.Compare(b.at) })
	for _, x := range due {
		go x.f()
	}
}
