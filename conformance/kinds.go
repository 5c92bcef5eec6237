package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/wrap"
)

// The rules of the kinds beyond the mutex: semaphores, read-write locks
// and multi-key locks, and what every kind shares (auto-extension, other
// clients' tokens, waking waiters, no orphans, bounded state). Contenders
// are Clients on Lockers of their own (separate connections, as separate
// processes), and the checks are made by the callbacks themselves: a
// counter of holders that must stay within the rule, kept with atomics,
// so that two holders at once are seen whatever the order of their
// events.

// The rules of the other lock types: semaphores (backend.Semaphorer),
// read-write locks (backend.RWLocker) and multi-key locks
// (backend.MultiLocker). Contenders are Clients on Lockers of their own
// (separate connections, as separate processes), and the checks are made
// by the callbacks themselves: a counter of holders that must stay within
// the rule, kept with atomics, so that two holders at once are seen
// whatever the order of their events.

// typesHold is how long a contender holds: long enough for holds to
// overlap, so that a broken exclusion shows.
const typesHold = 2 * time.Millisecond

// longTTL is the TTL of locks that must not expire during a rule.
func (e *env) longTTL() time.Duration { return e.ttl() + 30*time.Second }

// separate returns a Client on a new Locker of the store.
func (e *env) separate() *xsync.Client { return xsync.NewClient(e.h.Locker(e.t)) }

func needSemaphore(e *env) {
	if _, ok := e.l.(backend.Semaphorer); !ok {
		e.t.Skip("the backend has no semaphore (no backend.Semaphorer)")
	}
}

func needRW(e *env) {
	if _, ok := e.l.(backend.RWLocker); !ok {
		e.t.Skip("the backend has no read-write lock (no backend.RWLocker)")
	}
}

func needMulti(e *env) {
	if _, ok := e.l.(backend.MultiLocker); !ok {
		e.t.Skip("the backend has no multi-key lock (no backend.MultiLocker)")
	}
}

// contend runs n workers, each with a client of its own, rounds times
// each, and fails the test with the first error.
func (e *env) contend(n, rounds int, work func(c *xsync.Client, worker, round int) error) {
	e.t.Helper()
	errs := make(chan error, n*rounds)
	var wg sync.WaitGroup
	for w := range n {
		c := e.separate()
		wg.Go(func() {
			for r := range rounds {
				if err := work(c, w, r); err != nil {
					errs <- fmt.Errorf("worker %d, round %d: %w", w, r, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Fatal(err)
	}
}

func (e *env) mustRelease(l *xsync.Lease, what string) {
	e.t.Helper()
	if ok, err := l.Release(e.ctx); !ok || err != nil {
		e.t.Fatalf("release of %s = %v, %v; want true, nil", what, ok, err)
	}
}

func (e *env) mustBeMissing(err error, what string) {
	e.t.Helper()
	if !errors.Is(err, xsync.ErrMissingLock) {
		e.t.Fatalf("%s = %v; want ErrMissingLock", what, err)
	}
}

// semaphoreLimit: limit permits can be held at once, one more cannot; a
// release frees one; under contention the holders never exceed the limit.
func semaphoreLimit(e *env) {
	needSemaphore(e)
	key := e.key("s")
	const limit = 3
	var leases []*xsync.Lease
	for i := range limit {
		l, err := e.separate().Semaphore(key, limit).Acquire(e.ctx, xsync.WithTTL(e.longTTL()))
		if err != nil {
			e.t.Fatalf("permit %d of %d: %v", i+1, limit, err)
		}
		for _, o := range leases {
			if o.Token() == l.Token() {
				e.t.Fatalf("token %d handed to two permits", l.Token())
			}
		}
		leases = append(leases, l)
	}
	_, err := e.separate().Semaphore(key, limit).Acquire(e.ctx, xsync.WithTTL(e.longTTL()))
	e.mustBeMissing(err, fmt.Sprintf("a permit beyond the %d held", limit))
	e.mustRelease(leases[0], "a permit")
	if ok, err := leases[0].Release(e.ctx); ok || err != nil {
		e.t.Errorf("second release of a permit = %v, %v; want false, nil", ok, err)
	}
	again, err := e.separate().Semaphore(key, limit).Acquire(e.ctx, xsync.WithTTL(e.longTTL()))
	if err != nil {
		e.t.Fatalf("a permit after one was released: %v", err)
	}
	for _, l := range append(leases[1:], again) {
		e.mustRelease(l, "a permit")
	}

	var in, most, over atomic.Int32
	e.contend(8, 6, func(c *xsync.Client, _, _ int) error {
		return c.Semaphore(key, limit).Run(e.ctx, func(context.Context) error {
			n := in.Add(1)
			defer in.Add(-1)
			if n > limit {
				over.Add(1)
			}
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(typesHold)
			return nil
		}, xsync.WithTTL(e.longTTL()), xsync.WithWait(45*time.Second), xsync.WithRetryInterval(50*time.Millisecond))
	})
	if n := over.Load(); n > 0 {
		e.t.Errorf("%d times more than %d holders of a %d-permit semaphore at once (most: %d)", n, limit, limit, most.Load())
	}
	e.t.Logf("48 permits taken by 8 contenders: at most %d held at once", most.Load())
}

// semaphoreExpiry: a permit not released is free after its TTL, and its
// holder's release is then false; an extended permit outlives its TTL.
func semaphoreExpiry(e *env) {
	needSemaphore(e)
	key := e.key("s")
	const limit = 2
	var leases []*xsync.Lease
	var granted time.Time // when the first permit's Acquire returned (see freeAfterTTL)
	for i := range limit {
		l, err := e.separate().Semaphore(key, limit).Acquire(e.ctx, xsync.WithTTL(e.ttl()))
		if err != nil {
			e.t.Fatal(err)
		}
		if i == 0 {
			granted = time.Now()
		}
		leases = append(leases, l)
	}
	_, err := e.separate().Semaphore(key, limit).Acquire(e.ctx, xsync.WithTTL(e.ttl()))
	e.mustBeMissing(err, "a permit beyond the two held")
	if err := leases[1].Extend(e.ctx, 3*e.ttl()); err != nil {
		e.t.Fatalf("Extend of a permit: %v", err)
	}
	e.sleepUntil(granted.Add(e.ttl() + e.opts.ExpiryTolerance))
	next, err := e.separate().Semaphore(key, limit).Acquire(e.ctx, xsync.WithTTL(e.longTTL()))
	if err != nil {
		e.t.Fatalf("a permit after one expired: %v", err)
	}
	_, err = e.separate().Semaphore(key, limit).Acquire(e.ctx, xsync.WithTTL(e.longTTL()))
	e.mustBeMissing(err, "a permit while the extended one and a new one are held")
	if ok, err := leases[0].Release(e.ctx); ok || err != nil {
		e.t.Errorf("release of an expired permit = %v, %v; want false, nil", ok, err)
	}
	e.mustRelease(leases[1], "the extended permit")
	e.mustRelease(next, "a permit")
}

// rwExclusion: readers share, a writer excludes readers and writers; a
// writer that was refused keeps new readers out; under contention no
// writer overlaps anyone, and writers' tokens grow in grant order.
func rwExclusion(e *env) {
	needRW(e)
	key := e.key("rw")
	r1, err := e.separate().RWLock(key).AcquireRead(e.ctx, xsync.WithTTL(e.longTTL()))
	if err != nil {
		e.t.Fatal(err)
	}
	r2, err := e.separate().RWLock(key).AcquireRead(e.ctx, xsync.WithTTL(e.longTTL()))
	if err != nil {
		e.t.Fatalf("a second reader while one reads: %v", err)
	}
	_, err = e.separate().RWLock(key).AcquireWrite(e.ctx, xsync.WithTTL(e.longTTL()))
	e.mustBeMissing(err, "a writer while two read")
	waiting := e.waitingWriter(e.ctx, key, xsync.WithWait(30*time.Second))
	_, err = e.separate().RWLock(key).AcquireRead(e.ctx, xsync.WithTTL(e.longTTL()))
	e.mustBeMissing(err, "a new reader while a writer waits (writers first)")
	e.mustRelease(r1, "a read lock")
	e.mustRelease(r2, "a read lock")
	got := <-waiting
	w, err := got.lease, got.err
	if err != nil {
		e.t.Fatalf("a waiting writer once the readers left: %v", err)
	}
	e.checkNewer(r2.Token(), w.Token())
	_, err = e.separate().RWLock(key).AcquireRead(e.ctx, xsync.WithTTL(e.longTTL()))
	e.mustBeMissing(err, "a reader while a writer holds")
	_, err = e.separate().RWLock(key).AcquireWrite(e.ctx, xsync.WithTTL(e.longTTL()))
	e.mustBeMissing(err, "a writer while a writer holds")
	e.mustRelease(w, "the write lock")

	var readers, writers, bad atomic.Int32
	var (
		mu     sync.Mutex
		tokens []xsync.Item
	)
	opts := []xsync.AcquireOption{xsync.WithTTL(e.longTTL()), xsync.WithWait(45 * time.Second), xsync.WithRetryInterval(50 * time.Millisecond)}
	e.contend(6, 6, func(c *xsync.Client, worker, _ int) error {
		rw := c.RWLock(key)
		if worker < 2 {
			return rw.RunWrite(e.ctx, func(ctx context.Context) error {
				if writers.Add(1) != 1 || readers.Load() != 0 {
					bad.Add(1)
				}
				mu.Lock()
				tokens = append(tokens, xsync.ItemFromContext(ctx))
				mu.Unlock()
				time.Sleep(typesHold)
				writers.Add(-1)
				return nil
			}, opts...)
		}
		return rw.RunRead(e.ctx, func(context.Context) error {
			readers.Add(1)
			if writers.Load() != 0 {
				bad.Add(1)
			}
			time.Sleep(typesHold)
			readers.Add(-1)
			return nil
		}, opts...)
	})
	if n := bad.Load(); n > 0 {
		e.t.Errorf("%d times a writer held beside another holder", n)
	}
	for i := 1; i < len(tokens); i++ {
		e.checkNewer(tokens[i-1], tokens[i])
	}
}

// acquired is the outcome of an acquisition made in a goroutine.
type acquired struct {
	lease *xsync.Lease
	err   error
}

// waitingWriter starts a writer of key's read-write lock on a client of
// its own, waiting as opts say (after a long TTL), and returns once it
// waits: its watch has taken effect, so that the backend keeps new readers
// out for it (on a backend without a watch, once its first attempt was
// refused). The channel gets the outcome.
func (e *env) waitingWriter(ctx context.Context, key string, opts ...xsync.AcquireOption) <-chan acquired {
	e.t.Helper()
	waiting := newSignal()
	w := &wrap.Locker{Base: e.h.Locker(e.t)}
	onWatch(w, func(ref wrap.Ref) {
		if ref.Kind == "write" {
			waiting.fire()
		}
	})
	c := xsync.NewClient(w, xsync.WithObserver(observerFunc(func(ev xsync.Event) {
		if ev.Kind == xsync.KindAttempt && ev.Outcome == xsync.OutcomeHeld && !e.writersWatch() {
			waiting.fire()
		}
	})))
	out := make(chan acquired, 1)
	go func() {
		l, err := c.RWLock(key).AcquireWrite(ctx, append([]xsync.AcquireOption{xsync.WithTTL(e.longTTL())}, opts...)...)
		out <- acquired{l, err}
	}()
	e.await(waiting, "the writer to wait")
	return out
}

// writersWatch reports whether the backend's writers watch (and so keep
// new readers out while they wait).
func (e *env) writersWatch() bool {
	_, w := e.l.(backend.RWLocker).RWLock(e.key("probe"))
	_, ok := w.(backend.Watcher)
	return ok
}

// rwMarkOnlyWhileWaiting: what keeps new readers out is a writer that
// waits now. A writer that makes one attempt leaves no mark; a writer
// whose wait ended, or whose context ended, takes its mark away as it
// returns, and a reader that the mark kept waiting is woken by that,
// well before its retry interval (where the backend notifies).
func rwMarkOnlyWhileWaiting(e *env) {
	needRW(e)
	key := e.key("rw")
	r1, err := e.separate().RWLock(key).AcquireRead(e.ctx, xsync.WithTTL(e.longTTL()))
	if err != nil {
		e.t.Fatal(err)
	}
	readNow := func(after string) {
		e.t.Helper()
		r, err := e.separate().RWLock(key).AcquireRead(e.ctx, xsync.WithTTL(e.longTTL()))
		if err != nil {
			e.t.Fatalf("a reader just after %s: %v; only a writer that waits now keeps readers out", after, err)
		}
		e.mustRelease(r, "a read lock")
	}
	_, err = e.separate().RWLock(key).AcquireWrite(e.ctx, xsync.WithTTL(e.longTTL()))
	e.mustBeMissing(err, "a writer's single attempt while a reader holds")
	readNow("a writer's single refused attempt")
	_, err = e.separate().RWLock(key).AcquireWrite(e.ctx, xsync.WithTTL(e.longTTL()),
		xsync.WithWait(300*time.Millisecond), xsync.WithRetryInterval(50*time.Millisecond))
	e.mustBeMissing(err, "a writer whose wait ended while a reader holds")
	readNow("a writer's wait ended")

	// A writer whose mark would live 30s (its keep time) is cancelled
	// while it waits, and a reader it keeps out waits with a 30s interval.
	wctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	writer := e.waitingWriter(wctx, key, xsync.WithWait(time.Minute), xsync.WithRetryInterval(10*time.Second))
	refused := newSignal()
	rc := xsync.NewClient(e.h.Locker(e.t), xsync.WithObserver(observerFunc(func(ev xsync.Event) {
		if ev.Kind == xsync.KindAttempt && ev.Outcome == xsync.OutcomeHeld {
			refused.fire()
		}
	})))
	reader := make(chan acquired, 1)
	go func() {
		l, err := rc.RWLock(key).AcquireRead(e.ctx, xsync.WithTTL(e.longTTL()), xsync.WithWait(time.Minute),
			xsync.WithRetryInterval(30*time.Second))
		reader <- acquired{l, err}
	}()
	e.await(refused, "the reader's refused attempt while the writer waits")
	cancel()
	if got := <-writer; !errors.Is(got.err, xsync.ErrMissingLock) || !errors.Is(got.err, context.Canceled) {
		e.t.Fatalf("a waiting writer whose context was cancelled = %v; want ErrMissingLock and context.Canceled", got.err)
	}
	gaveUp := time.Now()
	patience := 40 * time.Second // beyond the reader's interval
	if read, _ := e.l.(backend.RWLocker).RWLock(key); read != nil {
		if _, ok := read.(backend.Watcher); ok {
			patience = 5 * time.Second
		}
	}
	select {
	case got := <-reader:
		if got.err != nil {
			e.t.Fatalf("the reader the writer's mark kept out: %v", got.err)
		}
		e.t.Logf("the reader got the lock %v after the writer gave up", time.Since(gaveUp).Round(time.Millisecond))
		e.mustRelease(got.lease, "a read lock")
	case <-time.After(patience):
		e.t.Errorf("the reader that a writer's mark kept out did not get the lock within %v after the writer gave up (the mark's keep time is 30s, the reader's retry interval 30s)", patience)
		<-reader
	}
	readNow("a waiting writer gave up")
	e.mustRelease(r1, "a read lock")
}

// rwWriterNotStarved: readers that keep the lock held between them, each
// taking it again as soon as it let go, do not keep a writer out.
func rwWriterNotStarved(e *env) {
	needRW(e)
	key := e.key("rw")
	const readers = 3
	const hold = 100 * time.Millisecond
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := range readers {
		c := e.separate()
		holding := newSignal()
		wg.Go(func() {
			for !stop.Load() {
				err := c.RWLock(key).RunRead(e.ctx, func(context.Context) error {
					holding.fire()
					time.Sleep(hold) // a reader's work
					return nil
				}, xsync.WithTTL(e.longTTL()), xsync.WithWait(45*time.Second), xsync.WithRetryInterval(20*time.Millisecond))
				if err != nil {
					errs <- err
					return
				}
			}
		})
		e.await(holding, fmt.Sprintf("reader %d", i))
		if i < readers-1 {
			time.Sleep(hold / readers) // stagger the readers, so that one always holds
		}
	}
	start := time.Now()
	w, err := e.separate().RWLock(key).AcquireWrite(e.ctx, xsync.WithTTL(e.longTTL()), xsync.WithWait(15*time.Second),
		xsync.WithRetryInterval(250*time.Millisecond))
	took := time.Since(start)
	stop.Store(true)
	if err != nil {
		e.t.Errorf("a writer among readers that keep the lock held: %v after %v; writers must not starve", err, took)
	} else {
		e.t.Logf("the writer got the lock after %v among %d readers holding %v each", took, readers, hold)
		e.mustRelease(w, "the write lock")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Errorf("reader: %v", err)
	}
}

// multiAllOrNothing: several keys are taken all or none; they exclude the
// mutex of each key both ways; under contention over overlapping sets no
// key has two holders.
func multiAllOrNothing(e *env) {
	needMulti(e)
	// One hash tag: Redis Cluster takes several keys at once in one slot.
	k := func(s string) string { return e.key("{multi}:" + s) }
	a, b, c := k("a"), k("b"), k("c")
	hb, err := e.separate().Acquire(e.ctx, b, xsync.WithTTL(e.longTTL()))
	if err != nil {
		e.t.Fatal(err)
	}
	_, err = e.separate().AcquireAll(e.ctx, []string{a, b}, xsync.WithTTL(e.longTTL()))
	e.mustBeMissing(err, "AcquireAll of a free key and a held one")
	la, err := e.separate().Acquire(e.ctx, a, xsync.WithTTL(e.longTTL()))
	if err != nil {
		e.t.Fatalf("the free key after a refused AcquireAll: %v (all or nothing: the refusal must take nothing)", err)
	}
	e.mustRelease(la, "the free key")
	e.mustRelease(hb, "the held key")

	m, err := e.separate().AcquireAll(e.ctx, []string{a, b, c}, xsync.WithTTL(e.longTTL()))
	if err != nil {
		e.t.Fatalf("AcquireAll of free keys: %v", err)
	}
	if !slices.Equal(m.Keys(), []string{a, b, c}) {
		e.t.Errorf("Keys() = %q; want the keys asked for", m.Keys())
	}
	e.checkNewer(hb.Token(), m.Token())
	for _, key := range []string{a, b, c} {
		_, err := e.separate().Acquire(e.ctx, key, xsync.WithTTL(e.longTTL()))
		e.mustBeMissing(err, "the mutex of a key held by AcquireAll")
	}
	_, err = e.separate().AcquireAll(e.ctx, []string{c, k("d")}, xsync.WithTTL(e.longTTL()))
	e.mustBeMissing(err, "AcquireAll overlapping one that holds")
	e.mustRelease(m, "the multi-key lock")
	for _, key := range []string{a, b, c, k("d")} {
		l, err := e.separate().Acquire(e.ctx, key, xsync.WithTTL(e.longTTL()))
		if err != nil {
			e.t.Fatalf("a key after the multi-key lock was released: %v", err)
		}
		e.mustRelease(l, "a key")
	}

	keys := []string{a, b, c, k("d")}
	var inUse [4]atomic.Bool
	var bad atomic.Int32
	enter := func(idx ...int) func() {
		for _, i := range idx {
			if !inUse[i].CompareAndSwap(false, true) {
				bad.Add(1)
			}
		}
		return func() {
			for _, i := range idx {
				inUse[i].Store(false)
			}
		}
	}
	opts := []xsync.AcquireOption{xsync.WithTTL(e.longTTL()), xsync.WithWait(45 * time.Second), xsync.WithRetryInterval(50 * time.Millisecond)}
	e.contend(6, 6, func(cl *xsync.Client, worker, round int) error {
		if worker == 0 { // a mutex contender on one key
			i := round % len(keys)
			return cl.Run(e.ctx, keys[i], func(context.Context) error {
				defer enter(i)()
				time.Sleep(typesHold)
				return nil
			}, opts...)
		}
		i, j := (worker+round)%len(keys), (worker+round+1+worker%2)%len(keys)
		return cl.RunAll(e.ctx, []string{keys[i], keys[j]}, func(context.Context) error {
			defer enter(i, j)()
			time.Sleep(typesHold)
			return nil
		}, opts...)
	})
	if n := bad.Load(); n > 0 {
		e.t.Errorf("%d times a key had two holders at once", n)
	}
}

// multiPartialRelease: the token of a multi-key lock releases one of its
// keys alone (Item.Unlock of one key, which the seed API allows); the
// other keys stay held and still expire at their TTL, also while locks
// of the same TTL are taken and renewed through the same client (a
// backend must not reuse for them what the other keys still depend on);
// the lease's release then frees what is left and says false.
func multiPartialRelease(e *env) {
	needMulti(e)
	k := func(s string) string { return e.key("{partial}:" + s) }
	c := e.client()
	m, err := c.AcquireAll(e.ctx, []string{k("a"), k("b"), k("c")}, xsync.WithTTL(e.ttl()))
	if err != nil {
		e.t.Fatalf("AcquireAll of free keys: %v", err)
	}
	// The keys' TTL runs from the grant, which came before the call
	// returned (how long after the call's start, a first dial or a loaded
	// server decides, and this rule is not about that).
	granted := time.Now()
	e.unlock(e.name, k("a"), m.Token(), true)
	e.mustBeFree(e.peer, k("a"))
	e.mustBeHeld(e.peer, k("b"))
	e.mustBeHeld(e.peer, k("c"))
	var others []*xsync.Lease
	for i := range 3 {
		others = append(others, e.acquire(c, k(fmt.Sprint("other", i)), xsync.WithAutoExtend(0)))
	}
	e.sleepUntil(granted.Add(e.ttl() + e.opts.ExpiryTolerance))
	for _, key := range []string{k("b"), k("c")} {
		item, err := xsync.Lock(e.ctx, e.peer, key, e.exp)
		if err != nil {
			e.t.Fatalf("Lock(%q): %v", key, err)
		}
		if !item.HasLock() {
			e.t.Errorf("%q, left of a multi-key lock after one of its keys was released, is still held past its TTL: every lock must expire", key)
			continue
		}
		e.unlock(e.peer, key, item, true)
	}
	for _, o := range others {
		e.mustRelease(o, "another lock")
	}
	if ok, err := m.Release(e.ctx); ok || err != nil {
		e.t.Errorf("release of a multi-key lock whose keys were released or expired = %v, %v; want false, nil", ok, err)
	}

	m, err = c.AcquireAll(e.ctx, []string{k("x"), k("y"), k("z")}, xsync.WithTTL(e.longTTL()))
	if err != nil {
		e.t.Fatalf("AcquireAll of free keys: %v", err)
	}
	e.unlock(e.name, k("y"), m.Token(), true)
	if ok, err := m.Release(e.ctx); ok || err != nil {
		e.t.Errorf("release of a multi-key lock after one key was released on its own = %v, %v; want false, nil", ok, err)
	}
	for _, key := range []string{k("x"), k("y"), k("z")} {
		e.mustBeFree(e.peer, key)
	}
}

// kind is one lock of a kind beyond the mutex that the backend has, as
// the rules of every kind take it: a 1-permit semaphore, a write lock,
// two keys.
type kind struct {
	name string
	// lock is the backend's lock of this kind, on l.
	lock    func(l backend.Locker) backend.Lock
	acquire func(ctx context.Context, c *xsync.Client, opts ...xsync.AcquireOption) (*xsync.Lease, error)
}

// notifies reports whether the backend wakes this kind's waiters.
func (k kind) notifies(l backend.Locker) bool {
	_, ok := k.lock(l).(backend.Watcher)
	return ok
}

// kinds returns a lock of each kind beyond the mutex that the backend
// has, on keys named after sfx; it skips the test if there is none.
func (e *env) kinds(sfx string) []kind {
	kinds := e.otherKinds(sfx)
	if len(kinds) == 0 {
		e.t.Skip("the backend has no semaphore, read-write lock or multi-key lock")
	}
	return kinds
}

// otherKinds returns a lock of each kind beyond the mutex that the
// backend has, on keys named after sfx.
func (e *env) otherKinds(sfx string) []kind {
	var kinds []kind
	if _, ok := e.l.(backend.Semaphorer); ok {
		key := e.key("s" + sfx)
		kinds = append(kinds, kind{"a 1-permit semaphore",
			func(l backend.Locker) backend.Lock { return l.(backend.Semaphorer).Semaphore(key, 1) },
			func(ctx context.Context, c *xsync.Client, opts ...xsync.AcquireOption) (*xsync.Lease, error) {
				return c.Semaphore(key, 1).Acquire(ctx, opts...)
			}})
	}
	if _, ok := e.l.(backend.RWLocker); ok {
		key := e.key("rw" + sfx)
		kinds = append(kinds, kind{"a write lock",
			func(l backend.Locker) backend.Lock { _, w := l.(backend.RWLocker).RWLock(key); return w },
			func(ctx context.Context, c *xsync.Client, opts ...xsync.AcquireOption) (*xsync.Lease, error) {
				return c.RWLock(key).AcquireWrite(ctx, opts...)
			}})
	}
	if _, ok := e.l.(backend.MultiLocker); ok {
		keys := []string{e.key("{m" + sfx + "}:a"), e.key("{m" + sfx + "}:b")}
		kinds = append(kinds, kind{"a multi-key lock",
			func(l backend.Locker) backend.Lock { return l.(backend.MultiLocker).Multi(keys) },
			func(ctx context.Context, c *xsync.Client, opts ...xsync.AcquireOption) (*xsync.Lease, error) {
				return c.AcquireAll(ctx, keys, opts...)
			}})
	}
	return kinds
}

// typesExtend: a lease of each lock type the backend has is renewed by
// auto-extension past its TTL and keeps excluding others, and its release
// frees it.
func typesExtend(e *env) {
	kinds := e.kinds("")
	// Renewals come every TTL/3, each one after the last answered: with
	// the shortest TTL, one renewal held up for about half a second (a
	// loaded machine, a pooler's queue) lets the lock expire. 2s more
	// leave room for stalls of more than a second.
	ttl := e.ttl() + 2*time.Second
	start := time.Now()
	leases := make([]*xsync.Lease, len(kinds))
	for i, k := range kinds {
		l, err := k.acquire(e.ctx, e.separate(), xsync.WithTTL(ttl), xsync.WithAutoExtend(0))
		if err != nil {
			e.t.Fatalf("%s: %v", k.name, err)
		}
		leases[i] = l
	}
	e.sleepUntil(start.Add(2*ttl + e.opts.ExpiryTolerance))
	for i, k := range kinds {
		if err := leases[i].Err(); err != nil {
			e.t.Errorf("%s with auto-extension ended after 2 TTLs: %v", k.name, err)
		}
		if _, err := k.acquire(e.ctx, e.separate(), xsync.WithTTL(e.ttl())); !errors.Is(err, xsync.ErrMissingLock) {
			e.t.Errorf("%s renewed past its TTL: another acquire = %v; want ErrMissingLock", k.name, err)
		}
		e.mustRelease(leases[i], k.name)
		l, err := k.acquire(e.ctx, e.separate(), xsync.WithTTL(e.ttl()))
		if err != nil {
			e.t.Errorf("%s after its release: %v", k.name, err)
			continue
		}
		e.mustRelease(l, k.name)
	}
}

// typesNoKeyLeak: semaphores, read-write locks (with a waiting writer's
// mark) and multi-key locks, released or expired, leave no state behind.
func typesNoKeyLeak(e *env) {
	sz, ok := e.h.(Sizer)
	if !ok {
		e.t.Skip("the harness is not a Sizer")
	}
	_, sem := e.l.(backend.Semaphorer)
	_, rw := e.l.(backend.RWLocker)
	_, multi := e.l.(backend.MultiLocker)
	if !sem && !rw && !multi {
		e.t.Skip("the backend has no semaphore, read-write lock or multi-key lock")
	}
	base := sz.Size(e.t)
	c := e.separate()
	var held []*xsync.Lease
	take := func(l *xsync.Lease, err error) *xsync.Lease {
		e.t.Helper()
		if err != nil {
			e.t.Fatal(err)
		}
		return l
	}
	ttl := xsync.WithTTL(e.ttl())
	for i := range 3 {
		if sem {
			e.mustRelease(take(c.Semaphore(e.key(fmt.Sprint("s-released", i)), 2).Acquire(e.ctx, ttl)), "a permit")
			held = append(held, take(c.Semaphore(e.key(fmt.Sprint("s-expires", i)), 2).Acquire(e.ctx, ttl)))
		}
		if rw {
			e.mustRelease(take(c.RWLock(e.key(fmt.Sprint("rw-released", i))).AcquireWrite(e.ctx, ttl)), "a write lock")
			key := e.key(fmt.Sprint("rw-expires", i))
			held = append(held, take(c.RWLock(key).AcquireRead(e.ctx, ttl)))
			// Refused while it waits: it leaves its mark, and takes it away.
			_, err := c.RWLock(key).AcquireWrite(e.ctx, ttl, xsync.WithWait(50*time.Millisecond))
			e.mustBeMissing(err, "a writer while a reader holds")
		}
		if multi {
			keys := func(s string) []string { return []string{e.key("{" + s + "}:a"), e.key("{" + s + "}:b")} }
			e.mustRelease(take(c.AcquireAll(e.ctx, keys(fmt.Sprint("m-released", i)), ttl)), "a multi-key lock")
			held = append(held, take(c.AcquireAll(e.ctx, keys(fmt.Sprint("m-expires", i)), ttl)))
		}
	}
	last := time.Now() // the last lock (or mark) was taken before this
	if n := sz.Size(e.t); n <= base {
		e.t.Errorf("Size = %d with %d locks held; want more than the %d before", n, len(held), base)
	}
	e.sleepUntil(last.Add(e.ttl() + e.opts.SizeSettle))
	if n := sz.Size(e.t); n != base {
		e.t.Errorf("Size = %d after every lock was released or expired; want %d as before", n, base)
	}
}

// typesNoOrphan: an acquire of another lock type that its context cut
// short after the request reached the store leaves nothing held (as
// NoOrphanAfterCancelledAcquire for the mutex).
func typesNoOrphan(e *env) {
	name, f := e.faulty()
	faulty, err := xsync.Registered(name)
	if err != nil {
		e.t.Fatal(err)
	}
	kinds := e.kinds("")
	for _, k := range kinds { // connections up first, so that the requests reach the store
		l, err := k.acquire(e.ctx, faulty, xsync.WithTTL(e.ttl()))
		if err != nil {
			e.t.Fatalf("%s: %v", k.name, err)
		}
		e.mustRelease(l, k.name)
	}
	f.Delay(150 * time.Millisecond) // replies come after the callers gave up (50ms)
	healthy := e.separate()
	for _, k := range kinds {
		ctx, cancel := context.WithTimeout(e.ctx, 50*time.Millisecond)
		l, err := k.acquire(ctx, faulty, xsync.WithTTL(30*time.Second))
		cancel()
		if err == nil {
			e.mustRelease(l, k.name)
		}
		returned := time.Now()
		for {
			l, err := k.acquire(e.ctx, healthy, xsync.WithTTL(e.ttl()))
			if err == nil {
				e.t.Logf("%s: free %v after the call returned", k.name, time.Since(returned).Round(time.Millisecond))
				e.mustRelease(l, k.name)
				break
			}
			if !errors.Is(err, xsync.ErrMissingLock) {
				e.t.Fatalf("%s through a healthy client: %v", k.name, err)
			}
			if time.Since(returned) > 2*time.Second {
				e.t.Errorf("%s cut short by its context left the lock held for 2s (TTL 30s): an orphan", k.name)
				break
			}
			e.sleepUntil(time.Now().Add(20 * time.Millisecond))
		}
	}
}

// typesWaitWoken: a waiter for a semaphore's permit, a write lock or
// several keys is woken by the release it waits for, well before its
// retry interval, on a backend that notifies (WatchPermits and WatchRW
// not errors.ErrUnsupported; Watcher for the keys).
func typesWaitWoken(e *env) {
	const interval = 20 * time.Second
	kinds := e.kinds("")
	woke := 0
	for _, k := range kinds {
		if !k.notifies(e.l) {
			e.t.Logf("%s: the backend does not notify its waiters; not checked", k.name)
			continue
		}
		woke++
		holder, err := k.acquire(e.ctx, e.separate(), xsync.WithTTL(e.longTTL()))
		if err != nil {
			e.t.Fatalf("%s: %v", k.name, err)
		}
		got := make(chan error, 1)
		watching := newSignal()
		w := &wrap.Locker{Base: e.h.Locker(e.t)}
		onWatch(w, func(wrap.Ref) { watching.fire() })
		c := xsync.NewClient(w)
		go func() {
			l, err := k.acquire(e.ctx, c, xsync.WithTTL(e.longTTL()), xsync.WithWait(2*interval), xsync.WithRetryInterval(interval))
			if err == nil {
				_, err = l.Release(e.ctx)
			}
			got <- err
		}()
		// The waiter found the lock held and listens: only the release's
		// notification can wake it now (a watch set up after the release
		// would fire at once from its first read, which hides a backend
		// that never notifies); without it, it sleeps out its interval.
		e.await(watching, k.name+": the waiter's watch")
		released := time.Now()
		e.mustRelease(holder, k.name)
		select {
		case err := <-got:
			if err != nil {
				e.t.Fatalf("%s: the waiter: %v", k.name, err)
			}
			e.t.Logf("%s: the waiter got it %v after the release", k.name, time.Since(released).Round(time.Millisecond))
			if d := time.Since(released); d > interval/4 {
				e.t.Errorf("%s: the waiter got it %v after the release; with notification, well before its %v retry interval", k.name, d, interval)
			}
		case <-time.After(interval / 4):
			e.t.Errorf("%s: the waiter was not woken by the release within %v (its retry interval is %v)", k.name, interval/4, interval)
			<-got
		}
	}
	// A writer's watch that starts once the holders left fires at once,
	// also while another writer waits (whose mark keeps readers out, not
	// writers).
	if rw, ok := e.l.(backend.RWLocker); ok {
		key := e.key("rw-mark")
		_, w := rw.RWLock(key)
		if ww, ok := w.(backend.Watcher); ok {
			tok, err := w.Acquire(e.ctx, backend.Request{TTL: e.longTTL()})
			if err != nil || tok <= 0 {
				e.t.Fatalf("a writer = %d, %v", tok, err)
			}
			_, leave, err := ww.Watch(e.ctx, "waiting", time.Minute) // a second writer waits
			if err != nil {
				e.t.Fatal(err)
			}
			if ok, err := w.Release(e.ctx, tok); !ok || err != nil {
				e.t.Fatalf("release = %v, %v", ok, err)
			}
			ready, stop, err := ww.Watch(e.ctx, "late", time.Minute)
			if err != nil {
				e.t.Fatal(err)
			}
			select {
			case <-ready:
			case <-time.After(interval / 4):
				e.t.Errorf("a writer's watch on a lock nobody holds, while another writer waits, did not fire at once")
			}
			stop()
			leave()
		}
	}
	if woke == 0 {
		e.t.Skip("the backend notifies the waiters of none of its other lock types")
	}
}

// observerFunc is an xsync.Observer made of a function.
type observerFunc func(xsync.Event)

func (f observerFunc) Observe(_ context.Context, e xsync.Event) { f(e) }

// typesOtherClient: a token refreshes and releases what it holds through
// any client of the store, not only the one that took it (another
// process that was handed the token, as a seed Item can be unlocked from
// anywhere); a stale token then releases nothing.
func typesOtherClient(e *env) {
	a, b := e.h.Locker(e.t), e.h.Locker(e.t)
	ttl := e.longTTL()
	check := func(what string, la, lb backend.Lock) {
		e.t.Helper()
		tok, err := la.Acquire(e.ctx, backend.Request{TTL: ttl})
		if err != nil || tok <= 0 {
			e.t.Fatalf("%s: acquire = %d, %v", what, tok, err)
		}
		rb, refreshes := lb.(backend.Refresher)
		if refreshes {
			if ok, err := rb.Refresh(e.ctx, tok, ttl); !ok || err != nil {
				e.t.Errorf("%s: refresh through another client = %v, %v; want true, nil", what, ok, err)
			}
		}
		if ok, err := lb.Release(e.ctx, tok); !ok || err != nil {
			e.t.Errorf("%s: release through another client = %v, %v; want true, nil", what, ok, err)
		}
		if ok, err := lb.Release(e.ctx, tok); ok || err != nil {
			e.t.Errorf("%s: second release = %v, %v; want false, nil", what, ok, err)
		}
		if refreshes {
			if ok, err := rb.Refresh(e.ctx, tok, ttl); ok || err != nil {
				e.t.Errorf("%s: refresh after the release = %v, %v; want false, nil", what, ok, err)
			}
		}
	}
	for _, k := range e.kinds("") {
		check(k.name, k.lock(a), k.lock(b))
	}
	if rw, ok := a.(backend.RWLocker); ok {
		read, _ := rw.RWLock(e.key("rw-read"))
		other, _ := b.(backend.RWLocker).RWLock(e.key("rw-read"))
		check("a read lock", read, other)
	}
}

// typesWaitExpiry: a waiter for a permit, a write lock or several keys
// whose holder vanished gets the lock once the holder's TTL passed, not
// before; where the backend notifies, at that moment rather than at its
// one-minute retry interval (as RunRetryAfterExpiry for the mutex).
func typesWaitExpiry(e *env) {
	kinds := e.kinds("")
	var wg sync.WaitGroup
	start := time.Now()
	for _, k := range kinds {
		if _, err := k.acquire(e.ctx, e.separate(), xsync.WithTTL(e.ttl())); err != nil { // never released: a crashed holder
			e.t.Fatalf("%s: %v", k.name, err)
		}
	}
	for _, k := range kinds {
		notifies := k.notifies(e.l)
		interval := time.Second
		if notifies {
			interval = time.Minute
		}
		c := e.separate()
		wg.Go(func() {
			l, err := k.acquire(e.ctx, c, xsync.WithTTL(e.longTTL()), xsync.WithWait(2*interval), xsync.WithRetryInterval(interval))
			waited := time.Since(start)
			if err != nil {
				e.t.Errorf("%s: waiting for a vanished holder: %v", k.name, err)
				return
			}
			defer l.Release(e.ctx)
			if waited < e.ttl()-e.opts.ExpiryTolerance {
				e.t.Errorf("%s: obtained after %v, before the holder's %v TTL ran out", k.name, waited, e.ttl())
			}
			if notifies && waited > e.ttl()+interval/4 {
				e.t.Errorf("%s: with notification the waiter took %v; the TTL was %v and its interval %v", k.name, waited, e.ttl(), interval)
			}
			e.t.Logf("%s: obtained %v after the vanished holder took it (TTL %v, notification: %v)", k.name, waited.Round(time.Millisecond), e.ttl(), notifies)
		})
	}
	wg.Wait()
}
