package conformance

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
)

// The rules of a key's mutex through the seed API (Lock, Unlock) and the
// backend's mutex lock: exclusion, one winner of N, contention as a value,
// expiry, owner-only release, fencing tokens, odd keys, refresh, bounded
// state, namespaces.

func lockUnlock(e *env) {
	key := e.key("k")
	item := e.lock(e.name, key, e.exp)
	if item <= 0 {
		e.t.Fatalf("held Item = %d; want > 0", item)
	}
	e.mustBeHeld(e.name, key)
	e.mustBeHeld(e.peer, key)
	e.unlock(e.name, key, item, true)
	e.unlock(e.name, key, item, false)
	again := e.lock(e.peer, key, e.exp)
	e.checkNewer(item, again)
	e.unlock(e.peer, key, again, true)
}

func zeroItemUnlock(e *env) {
	key := e.key("k")
	held := e.lock(e.name, key, e.exp)
	for _, item := range []xsync.Item{0, -1, -held} {
		if item.HasLock() {
			e.t.Errorf("Item(%d).HasLock() = true", item)
		}
		e.unlock(e.name, key, item, false)
	}
	e.mustBeHeld(e.peer, key)
	e.unlock(e.name, key, held, true)
}

func contentionIsQuick(e *env) {
	key := e.key("k")
	const exp = 60
	item := e.lock(e.name, key, exp)
	start := time.Now()
	e.mustBeHeld(e.peer, key)
	err := xsync.New(e.peer, key).Run(e.ctx, func(context.Context) error {
		return errors.New("callback ran while another holder had the lock")
	})
	if !xsync.IsMissingLockErr(err) {
		e.t.Errorf("Run on a held key = %v; want ErrMissingLock", err)
	}
	// Generous: this only tells "returned" from "waited for the TTL".
	if d := time.Since(start); d > exp*time.Second/4 {
		e.t.Errorf("contended Lock and Run took %v; they must not wait for the %ds TTL", d, exp)
	}
	e.unlock(e.name, key, item, true)
}

func ownerOnlyRelease(e *env) {
	key, other := e.key("k"), e.key("other")
	item := e.lock(e.name, key, e.exp)
	otherItem := e.lock(e.peer, other, e.exp)
	for _, fake := range []xsync.Item{item + 1, item - 1, item + 1<<40, otherItem} {
		if fake == item || fake <= 0 {
			continue
		}
		e.unlock(e.peer, key, fake, false)
		e.mustBeHeld(e.peer, key)
	}
	// The right token on the wrong key releases nothing either.
	e.unlock(e.name, other, item, false)
	e.mustBeHeld(e.name, other)
	e.unlock(e.name, key, item, true)
	e.unlock(e.peer, other, otherItem, true)
}

func oneOfN(e *env) {
	key := e.key("k")
	const n = 16
	start := make(chan struct{})
	var (
		wg   sync.WaitGroup
		wins atomic.Int64
		errs = make(chan error, n)
		won  = make(chan xsync.Item, n)
	)
	for i := range n {
		name := e.name
		if i%2 == 1 {
			name = e.peer
		}
		wg.Go(func() {
			<-start
			item, err := xsync.Lock(e.ctx, name, key, e.exp+30)
			if err != nil {
				errs <- err
				return
			}
			if item.HasLock() {
				wins.Add(1)
				won <- item
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Errorf("Lock: %v", err)
	}
	w := wins.Load()
	switch {
	case w > 1:
		e.t.Fatalf("%d of %d clients obtained one free key at once; want at most 1", w, n)
	case w == 0 && e.opts.SplitVote:
		e.t.Logf("split vote: none of %d clients obtained the key (allowed by Limits.SplitVote)", n)
		return
	case w == 0:
		e.t.Fatalf("none of %d clients obtained one free key; want exactly 1", n)
	}
	e.unlock(e.name, key, <-won, true)
}

func mutualExclusion(e *env) {
	key := e.key("k")
	const workers, rounds = 8, 15
	var (
		counter  atomic.Int64 // read and written in two steps: not an atomic increment
		inside   atomic.Int32
		overlaps atomic.Int32
		done     atomic.Int64
		wg       sync.WaitGroup
		errs     = make(chan error, workers*rounds)
	)
	for i := range workers {
		name := e.name
		if i%2 == 1 {
			name = e.peer
		}
		wg.Go(func() {
			a := xsync.New(name, key)
			// A TTL far beyond the test: exclusion must come from the lock,
			// not from expiry.
			if err := a.SetExp(time.Minute); err != nil {
				errs <- err
				return
			}
			if err := a.SetRetry(10000, 20*time.Millisecond); err != nil {
				errs <- err
				return
			}
			for range rounds {
				err := a.Run(e.ctx, func(context.Context) error {
					if inside.Add(1) != 1 {
						overlaps.Add(1)
					}
					v := counter.Load()
					runtime.Gosched()
					counter.Store(v + 1)
					inside.Add(-1)
					done.Add(1)
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Errorf("Run: %v", err)
	}
	if o := overlaps.Load(); o != 0 {
		e.t.Errorf("%d callbacks started while another held the lock", o)
	}
	if c, d := counter.Load(), done.Load(); c != d {
		e.t.Errorf("counter = %d after %d callbacks: updates were lost, so callbacks overlapped", c, d)
	}
	if d := done.Load(); d != workers*rounds {
		e.t.Errorf("%d callbacks ran; want %d", d, workers*rounds)
	}
}

func expiry(e *env) {
	key := e.key("k")
	start := time.Now()
	item := e.lock(e.name, key, e.exp)
	granted := time.Now()
	// Half-way through its TTL the lock is still held...
	e.sleepUntil(start.Add(e.ttl() / 2))
	if time.Since(start) < e.ttl()-e.opts.ExpiryTolerance {
		e.mustBeHeld(e.peer, key)
	}
	// ...and after it, free.
	e.freeAfterTTL(key, item, granted)
}

// freeAfterTTL waits until one TTL from start has passed and checks that
// key, which item held, is free: the peer takes it with a newer token, and
// item no longer unlocks it. It releases the peer's lock. start must be
// no earlier than the grant (or refresh) whose TTL it counts: the moment
// its call returned. (A TTL counted from before the call would end
// before the lock's on a slow call: a first dial, a loaded server.) A
// rule that checks that the lock is still held counts from before the
// call instead.
func (e *env) freeAfterTTL(key string, item xsync.Item, start time.Time) {
	e.t.Helper()
	e.sleepUntil(start.Add(e.ttl() + e.opts.ExpiryTolerance))
	next := e.lock(e.peer, key, e.exp)
	e.checkNewer(item, next)
	e.unlock(e.name, key, item, false)
	e.mustBeHeld(e.name, key)
	e.unlock(e.peer, key, next, true)
}

func staleItemAfterTakeover(e *env) {
	key := e.key("k")
	old := e.lock(e.name, key, e.exp)
	granted := time.Now() // see freeAfterTTL
	e.sleepUntil(granted.Add(e.ttl() + e.opts.ExpiryTolerance))
	cur := e.lock(e.peer, key, e.exp+30)
	e.checkNewer(old, cur)
	e.unlock(e.name, key, old, false)
	e.mustBeHeld(e.name, key)
	e.unlock(e.peer, key, cur, true)
}

func tokensMonotonic(e *env) {
	k1, k2 := e.key("k1"), e.key("k2")
	seen := make(map[xsync.Item]bool)
	var last1, last2 xsync.Item
	for i := range 20 {
		name := e.name
		if i%2 == 1 {
			name = e.peer
		}
		a := e.lock(name, k1, e.exp)
		b := e.lock(name, k2, e.exp)
		for _, it := range []xsync.Item{a, b} {
			if seen[it] && !e.opts.NotFencing {
				e.t.Fatalf("token %d handed out twice", it)
			}
			seen[it] = true
		}
		if last1 != 0 {
			e.checkNewer(last1, a)
			e.checkNewer(last2, b)
		}
		last1, last2 = a, b
		e.unlock(name, k1, a, true)
		e.unlock(name, k2, b, true)
	}
}

func keyIsolation(e *env) {
	items := make(map[string]xsync.Item)
	for _, k := range oddKeys {
		key := e.key(k)
		items[key] = e.lock(e.name, key, e.exp+30)
	}
	// All held at once, each by its own Item, none blocking another.
	for _, k := range oddKeys {
		key := e.key(k)
		e.mustBeHeld(e.peer, key)
	}
	e.mustBeFree(e.peer, e.key("plainx"))
	for _, k := range oddKeys {
		key := e.key(k)
		e.unlock(e.peer, key, items[key], true)
		e.mustBeFree(e.name, key)
	}
}

func refreshSetsTTL(e *env) {
	needRefresher(e)
	key := e.key("k")
	r := mutex(e.l, key).(backend.Refresher)
	item := e.lock(e.name, key, e.exp)
	// Longer: held past its first TTL.
	start := time.Now()
	if ok, err := r.Refresh(e.ctx, int64(item), 3*e.ttl()); !ok || err != nil {
		e.t.Fatalf("Refresh to 3 TTLs = (%v, %v); want (true, nil)", ok, err)
	}
	e.sleepUntil(start.Add(e.ttl() + e.opts.ExpiryTolerance))
	e.mustBeHeld(e.peer, key)
	// Shorter: free one TTL after.
	start = time.Now()
	if ok, err := r.Refresh(e.ctx, int64(item), e.ttl()); !ok || err != nil {
		e.t.Fatalf("Refresh back to one TTL = (%v, %v); want (true, nil)", ok, err)
	}
	refreshed := time.Now()
	if time.Since(start) < e.ttl()-e.opts.ExpiryTolerance {
		e.mustBeHeld(e.peer, key)
	}
	e.freeAfterTTL(key, item, refreshed)
}

func noKeyLeak(e *env) {
	sz, ok := e.h.(Sizer)
	if !ok {
		e.t.Skip("the harness is not a Sizer")
	}
	base := sz.Size(e.t)
	for i := range 10 {
		e.mustBeFree(e.name, e.key(fmt.Sprint("released", i)))
	}
	for i := range 10 {
		e.lock(e.peer, e.key(fmt.Sprint("expires", i)), e.exp)
	}
	granted := time.Now() // after the last grant (see freeAfterTTL)
	if n := sz.Size(e.t); n <= base {
		e.t.Errorf("Size = %d with 10 locks held; want more than the %d before", n, base)
	}
	e.sleepUntil(granted.Add(e.ttl() + e.opts.SizeSettle))
	if n := sz.Size(e.t); n != base {
		e.t.Errorf("Size = %d after every lock was released or expired; want %d as before", n, base)
	}
}

func ping(e *env) {
	if _, ok := e.l.(backend.Pinger); !ok {
		if err := xsync.Ping(e.ctx, e.name); !errors.Is(err, errors.ErrUnsupported) {
			e.t.Errorf("Ping on a backend without backend.Pinger = %v; want errors.ErrUnsupported", err)
		}
		e.t.Skip("backend does not implement backend.Pinger")
	}
	if err := xsync.Ping(e.ctx, e.name); err != nil {
		e.t.Errorf("Ping = %v; want nil", err)
	}
	if err := xsync.Ping(e.ctx, "conformance: no such backend"); !errors.Is(err, xsync.ErrUnknownBackend) {
		e.t.Errorf("Ping on an unknown name = %v; want ErrUnknownBackend", err)
	}
}

func namespaces(e *env) {
	other := e.newH(e.t).Locker(e.t)
	oname := "conformance-ns:" + e.t.Name()
	e.t.Cleanup(xsync.Swap(oname, other))
	key := e.key("k")
	mine := e.lock(e.name, key, e.exp+30)
	// The same key in the other namespace is free.
	theirs := e.lock(oname, key, e.exp+30)

	// A waiter here is not woken by releases there.
	held := newSignal()
	wname, c := e.instrument(held.fire)
	a := xsync.New(wname, key)
	interval := time.Second // without notification: soon after the release
	if e.notifies() {
		interval = time.Minute
	}
	if err := a.SetRetry(1, interval); err != nil {
		e.t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() { res <- a.Run(e.ctx, func(context.Context) error { return nil }) }()
	e.await(held, "the waiter's first attempt")
	for range 5 {
		e.unlock(oname, key, theirs, true)
		theirs = e.lock(oname, key, e.exp+30)
	}
	// Time must pass for a stray notification to arrive (this checks that
	// none does); less than half the retry interval, before which no timed
	// retry comes.
	e.sleepUntil(time.Now().Add(300 * time.Millisecond))
	if n := len(c.attempts()); n != 1 {
		e.t.Errorf("the waiter made %d attempts while only the other namespace released its lock; want 1", n)
	}
	e.unlock(e.name, key, mine, true)
	select {
	case err := <-res:
		if err != nil {
			e.t.Errorf("the waiter = %v; want the lock once its own namespace released it", err)
		}
	case <-e.ctx.Done():
		e.t.Fatal("the waiter never obtained the lock")
	}
	e.unlock(oname, key, theirs, true)
}
