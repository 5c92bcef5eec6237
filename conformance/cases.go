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

var cases = []testCase{
	{"BadInput", "bad input (empty key, exp < 1, unknown name, nil callback, bad setter values) is a clear error, never a panic, and never reaches the backend", badInput},
	{"LockUnlock", "Lock makes one attempt: a free key gives a held Item > 0, a held key gives (0, nil); Unlock releases once", lockUnlock},
	{"ZeroItemUnlock", "Item(0).Unlock (and any Item <= 0) is (false, nil)", zeroItemUnlock},
	{"ContentionIsQuick", "Lock and Run without retry do not wait for a held key to become free", contentionIsQuick},
	{"OwnerOnlyRelease", "Unlock releases only a lock that this Item holds: other tokens, and the same token on another key, release nothing", ownerOnlyRelease},
	{"OneOfN", "of N clients locking one free key at once, exactly one wins (at most one with Limits.SplitVote)", oneOfN},
	{"MutualExclusion", "Run callbacks on one key never overlap: a non-atomic read-modify-write counter loses no update", mutualExclusion},
	{"Expiry", "a lock not released is held until its TTL and free after it; the old Item then no longer unlocks, and the next token is larger", expiry},
	{"StaleItemAfterTakeover", "an expired holder's Unlock does not release the new holder's lock", staleItemAfterTakeover},
	{"TokensMonotonic", "every acquisition of a key gets a larger token than every earlier one, across clients and keys", tokensMonotonic},
	{"KeyIsolation", "odd keys (spaces, unicode, braces, NUL, 1 KiB, case) are stored faithfully and lock independently", keyIsolation},
	{"RunPassesError", "Run returns the callback's error as it is, and releases the lock", runPassesError},
	{"RunReleasesOnPanic", "a panicking callback's lock is released, and the panic goes on", runReleasesOnPanic},
	{"RunCallbackContext", "the callback's context carries the held Item and has the lock's expiry as its deadline", runCallbackContext},
	{"RunContextExpires", "the callback's context is cancelled with ErrLockLost at the lock's expiry, and Run reports the loss", runContextExpires},
	{"RunCancelWhileHolding", "cancelling ctx while the callback runs still releases the lock (on a detached context)", runCancelWhileHolding},
	{"RunCancelWhileWaiting", "cancelling ctx while Run waits to retry ends the wait at once with ErrMissingLock and ctx's error", runCancelWhileWaiting},
	{"RunRetryCount", "Run makes at most 1+cnt attempts, between interval/2 and interval apart, then returns ErrMissingLock", runRetryCount},
	{"RunRetryHandoff", "a waiting Run obtains the lock soon after it is released; with release notification, well before its retry interval", runRetryHandoff},
	{"RunRetryAfterExpiry", "a waiting Run obtains a lock whose holder vanished once its TTL passes; with release notification, without sleeping out its retry interval", runRetryAfterExpiry},
	{"AutoExtend", "with auto-extension the lock outlives its TTL while the callback runs", autoExtend},
	{"AutoExtendLoss", "with auto-extension, a renewal that finds the lock gone cancels the callback's context with ErrLockLost", autoExtendLoss},
	{"RefreshSetsTTL", "Refresh sets the lock's remaining lifetime to the TTL it is given, longer or shorter than the one it was taken with, and keeps the token", refreshSetsTTL},
	{"AutoExtendMaxHold", "with auto-extension and a max hold time, the callback's context is cancelled with ErrLockLost at that time", autoExtendMaxHold},
	{"LostSignalOnTime", "with auto-extension and a renewal call that hangs (ignoring its context), the callback's context still ends with ErrLockLost at the lock's validity deadline, and a late \"extended\" does not revive it", lostSignalOnTime},
	{"DeadlineDuringAttempt", "a ctx deadline that passes during an attempt is reported as ErrMissingLock and context.DeadlineExceeded (Run) or context.DeadlineExceeded (Lock), even when the client's read timeout fired first", deadlineDuringAttempt},
	{"OutageIsNotContention", "a store that cannot be reached is reported as the backend's error, never as ErrMissingLock, also when ctx ends while Run retries", outageIsNotContention},
	{"NoOrphanAfterCancelledAcquire", "an acquire that ctx cut short after the request reached the store leaves no lock behind: the key is free again soon after the call returns, not after its TTL", noOrphanAfterCancelledAcquire},
	{"RetryBudget", "SetRetry(cnt, interval) waits about cnt × interval: attempts made because a release woke the waiter do not use up the count", retryBudget},
	{"TinyTTL", "the shortest TTL the API accepts (1ms) is granted on a free key, rounded up to the backend's precision, or refused as ErrInvalid before any call; an attempt is never cut short sooner than the TTL the backend grants, so a healthy store is never reported down for it", tinyTTL},
	{"KeyLimits", "a key of MaxKeyLen bytes locks on every backend, a longer one is ErrInvalid without reaching the backend, and no error message grows with the key", keyLimits},
	{"Namespaces", "two namespaces on one store (two harnesses: two prefixes) never see each other's locks or release notifications", namespaces},
	{"Observed", "an observer set for the backend's name sees every attempt, wait, hold and release, with the backend's outcomes", observed},
	{"LeaseLifecycle", "a Client's lease: Acquire gives a token that excludes others, Done stays open while held, Release frees the key once, ends the lease with ErrReleased and a second Release is (false, nil)", leaseLifecycle},
	{"LeaseLostAtDeadline", "a lease that is neither extended nor released ends at its validity deadline: Done closes on time and Err matches ErrLockLost", leaseLostAtDeadline},
	{"LeaseExtend", "Extend renews the lease for the TTL given and moves its deadline; the lock outlives its first TTL", leaseExtend},
	{"LeaseWait", "Acquire with WithWait waits for a held key and gets it once it is released, and gives ErrMissingLock when the wait passes", leaseWait},
	{"InspectAndForceRelease", "Inspect reports the holder's token, a TTL within the one asked for and its owner; ForceRelease frees the key whoever holds it, wakes a waiter at once (with notification) and the next token is still larger", inspectAndForceRelease},
	{"HoldAtLeast", "with WithHoldAtLeast, a lock released early stays held until the time asked for, and is free after it", holdAtLeast},
	{"QueueFIFO", "with a backend that queues waiters, they get a held key in the order they were queued, each woken by the release before it", queueFIFO},
	{"QueueGiveUp", "a queued waiter that gives up leaves the queue: the one behind it gets the key at the next release", queueGiveUp},
	{"QueueDeadWaiter", "a queued waiter that never tries again (its process died) holds the key back no longer than its keep time, and nobody behind it gets the key first", queueDeadWaiter},
	{"SemaphoreLimit", "a semaphore of N permits gives N at once and refuses one more; a release frees one; 8 contenders on separate clients never hold more than N at once", semaphoreLimit},
	{"SemaphoreExpiry", "a permit not released is free after its TTL and its release is then false; an extended permit outlives its TTL", semaphoreExpiry},
	{"RWExclusion", "readers share a read-write lock; a writer excludes readers and writers; a waiting writer keeps new readers out; under contention no writer overlaps anyone, and writers' tokens grow", rwExclusion},
	{"RWMarkOnlyWhileWaiting", "only a writer that waits now keeps new readers out: a writer's single attempt leaves no mark; a writer whose wait or context ended takes its mark away at once, and a reader it kept out is woken by that", rwMarkOnlyWhileWaiting},
	{"RWWriterNotStarved", "readers that keep a read-write lock held between them do not keep a waiting writer out", rwWriterNotStarved},
	{"MultiAllOrNothing", "AcquireAll takes all its keys or none (a refusal leaves the free keys free); its keys exclude their mutexes both ways; under contention over overlapping sets no key has two holders", multiAllOrNothing},
	{"MultiPartialRelease", "the token of a multi-key lock releases one of its keys alone; the others stay held and still expire at their TTL while other locks are taken and renewed through the same client; the lease's release then frees the rest and says false", multiPartialRelease},
	{"TypesExtend", "a lease of a semaphore, a write lock or a multi-key lock is renewed by auto-extension past its TTL, keeps excluding others, and its release frees it", typesExtend},
	{"TypesOtherClient", "a permit's, a read or write lock's and a multi-key lock's token refreshes and releases through another client of the store; a released token then refreshes and releases nothing", typesOtherClient},
	{"TypesWaitWoken", "a waiter for a semaphore's permit, a write lock or several keys is woken by the release it waits for, well before its retry interval (where the backend notifies)", typesWaitWoken},
	{"TypesWaitExpiry", "a waiter for a permit, a write lock or several keys whose holder vanished gets the lock once the holder's TTL passed; where the backend notifies, without sleeping out its one-minute retry interval", typesWaitExpiry},
	{"TypesNoOrphan", "an acquire of a semaphore permit, a write lock or a multi-key lock that its context cut short after the request reached the store leaves nothing held: the lock is free again soon after the call returns, not after its TTL", typesNoOrphan},
	{"TypesNoKeyLeak", "semaphores, read-write locks (with a waiting writer's mark) and multi-key locks, released or expired, leave no state behind", typesNoKeyLeak},
	{"NoKeyLeak", "released and expired locks leave no state behind in the backend", noKeyLeak},
	{"Ping", "a healthy backend answers xsync.Ping with nil", ping},
}

func badInput(e *env) {
	t := e.t
	name, c := e.instrument(nil)
	key := e.key("k")
	ctx := e.ctx

	lockCases := []struct {
		name, key string
		exp       int32
		want      error
	}{
		{name, "", 1, xsync.ErrInvalid},
		{name, key, 0, xsync.ErrInvalid},
		{name, key, -1, xsync.ErrInvalid},
		{"conformance: no such backend", key, 1, xsync.ErrUnknownBackend},
	}
	for _, lc := range lockCases {
		item, err := xsync.Lock(ctx, lc.name, lc.key, lc.exp)
		if !errors.Is(err, lc.want) || item != 0 {
			t.Errorf("Lock(%q, %q, %d) = (%d, %v); want (0, error matching %v)", lc.name, lc.key, lc.exp, item, err, lc.want)
		}
	}
	if ok, err := xsync.Item(1).Unlock(ctx, name, ""); ok || !errors.Is(err, xsync.ErrInvalid) {
		t.Errorf("Unlock with empty key = (%v, %v); want (false, ErrInvalid)", ok, err)
	}
	if ok, err := xsync.Item(1).Unlock(ctx, "conformance: no such backend", key); ok || !errors.Is(err, xsync.ErrUnknownBackend) {
		t.Errorf("Unlock on unknown backend = (%v, %v); want (false, ErrUnknownBackend)", ok, err)
	}

	cb := func(context.Context) error { return nil }
	if err := xsync.New(name, key).Run(ctx, nil); !errors.Is(err, xsync.ErrInvalid) {
		t.Errorf("Run(nil callback) = %v; want ErrInvalid", err)
	}
	if err := xsync.New(name, "").Run(ctx, cb); !errors.Is(err, xsync.ErrInvalid) {
		t.Errorf("Run with empty key = %v; want ErrInvalid", err)
	}
	if err := xsync.New("conformance: no such backend", key).Run(ctx, cb); !errors.Is(err, xsync.ErrUnknownBackend) {
		t.Errorf("Run on unknown backend = %v; want ErrUnknownBackend", err)
	}
	var zero xsync.Async
	if err := zero.Run(ctx, cb); err == nil {
		t.Errorf("Run on a zero Async = nil; want an error")
	}

	a := xsync.New(name, key)
	for _, err := range []error{
		a.SetExp(0), a.SetExp(-time.Second), a.SetExp(999 * time.Millisecond),
		a.SetRetry(-1, time.Second), a.SetRetry(1, -time.Nanosecond),
		a.SetAutoExtend(true, -time.Second),
	} {
		if !errors.Is(err, xsync.ErrInvalid) {
			t.Errorf("setter with bad value returned %v; want ErrInvalid", err)
		}
	}
	if n := c.calls.Load(); n != 0 {
		t.Fatalf("bad input reached the backend %d times; want 0", n)
	}

	// The rejected setters changed nothing: exp is still 1s, no retry, no
	// auto-extension (so the deadline is set and one attempt is made).
	err := a.Run(ctx, func(ctx context.Context) error {
		d, ok := ctx.Deadline()
		if !ok || time.Until(d) > time.Second {
			return fmt.Errorf("deadline %v away (set: %v); want at most the default 1s", time.Until(d), ok)
		}
		return nil
	})
	if err != nil {
		t.Errorf("Run after rejected setters: %v", err)
	}
	if n := len(c.attempts()); n != 1 {
		t.Errorf("Run after rejected setters made %d attempts; want 1", n)
	}
}

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
	// Half-way through its TTL the lock is still held...
	e.sleepUntil(start.Add(e.ttl() / 2))
	if time.Since(start) < e.ttl()-e.opts.ExpiryTolerance {
		e.mustBeHeld(e.peer, key)
	}
	// ...and after it, free.
	e.freeAfterTTL(key, item, start)
}

// freeAfterTTL waits until one TTL from start has passed and checks that
// key, which item held, is free: the peer takes it with a newer token, and
// item no longer unlocks it. It releases the peer's lock.
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
	start := time.Now()
	old := e.lock(e.name, key, e.exp)
	e.sleepUntil(start.Add(e.ttl() + e.opts.ExpiryTolerance))
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

var errCallback = errors.New("conformance: the callback's own error")

func runPassesError(e *env) {
	key := e.key("k")
	err := xsync.New(e.name, key).Run(e.ctx, func(context.Context) error { return errCallback })
	if err != errCallback {
		e.t.Errorf("Run returned %v; want the callback's error as it is", err)
	}
	e.mustBeFree(e.peer, key)
	if err := xsync.New(e.name, key).Run(e.ctx, func(context.Context) error { return nil }); err != nil {
		e.t.Errorf("Run with a nil-returning callback = %v; want nil", err)
	}
	e.mustBeFree(e.peer, key)
}

func runReleasesOnPanic(e *env) {
	key := e.key("k")
	type panicValue struct{ s string }
	want := &panicValue{"conformance"}
	func() {
		defer func() {
			if got := recover(); got != want {
				e.t.Errorf("recovered %v; want the callback's own panic value", got)
			}
		}()
		_ = xsync.New(e.name, key).Run(e.ctx, func(context.Context) error { panic(want) })
		e.t.Errorf("Run returned although its callback panicked")
	}()
	e.mustBeFree(e.peer, key)
}

func runCallbackContext(e *env) {
	key := e.key("k")
	a := xsync.New(e.name, key)
	if err := a.SetExp(e.ttl() + 30*time.Second); err != nil {
		e.t.Fatal(err)
	}
	start := time.Now()
	var got xsync.Item
	err := a.Run(e.ctx, func(ctx context.Context) error {
		got = xsync.ItemFromContext(ctx)
		d, ok := ctx.Deadline()
		switch {
		case !ok:
			return errors.New("the callback's context has no deadline")
		case d.Before(start.Add(e.ttl())) || d.After(time.Now().Add(e.ttl()+30*time.Second)):
			return fmt.Errorf("deadline %v is not within the lock's TTL", d.Sub(start))
		case ctx.Err() != nil:
			return fmt.Errorf("callback context already done: %v", ctx.Err())
		}
		e.mustBeHeld(e.peer, key)
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if !got.HasLock() {
		e.t.Fatalf("ItemFromContext in the callback = %d; want the held Item", got)
	}
	if outside := xsync.ItemFromContext(e.ctx); outside != 0 {
		e.t.Errorf("ItemFromContext outside Run = %d; want 0", outside)
	}
	// The Item is the lock's real token: the next one is larger.
	e.checkNewer(got, e.mustBeFree(e.peer, key))
}

func runContextExpires(e *env) {
	key := e.key("k")
	a := xsync.New(e.name, key)
	if err := a.SetExp(e.ttl()); err != nil {
		e.t.Fatal(err)
	}
	start := time.Now()
	var cause error
	var elapsed time.Duration
	err := a.Run(e.ctx, func(ctx context.Context) error {
		select {
		case <-ctx.Done():
		case <-time.After(2 * e.ttl()):
			return errors.New("callback context still alive two TTLs after the lock was requested")
		}
		elapsed = time.Since(start)
		cause = context.Cause(ctx)
		return nil
	})
	if !errors.Is(cause, xsync.ErrLockLost) {
		e.t.Errorf("cause of the callback context's end = %v; want ErrLockLost", cause)
	}
	if !errors.Is(err, xsync.ErrLockLost) {
		e.t.Errorf("Run after the lock expired under its callback = %v; want ErrLockLost", err)
	}
	if elapsed > e.ttl()+e.opts.ExpiryTolerance {
		e.t.Errorf("callback context ended %v after the request; the TTL was %v", elapsed, e.ttl())
	}
	e.mustBeFree(e.peer, key)
}

func runCancelWhileHolding(e *env) {
	key := e.key("k")
	ctx, cancel := context.WithCancel(e.ctx)
	a := xsync.New(e.name, key)
	if err := a.SetExp(time.Minute); err != nil {
		e.t.Fatal(err)
	}
	err := a.Run(ctx, func(ctx context.Context) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, context.Canceled) || errors.Is(err, xsync.ErrLockLost) {
		e.t.Errorf("Run = %v; want the callback's context.Canceled, not ErrLockLost", err)
	}
	// Released although ctx was cancelled: the one-minute lock is free now.
	e.mustBeFree(e.peer, key)

	// A ctx already cancelled before Run: nothing reaches the backend.
	name, c := e.instrument(nil)
	err = xsync.New(name, key).Run(ctx, func(context.Context) error { return errors.New("callback ran") })
	if !xsync.IsMissingLockErr(err) || !errors.Is(err, context.Canceled) {
		e.t.Errorf("Run with a cancelled ctx = %v; want ErrMissingLock and context.Canceled", err)
	}
	if n := c.calls.Load(); n != 0 {
		e.t.Errorf("Run with a cancelled ctx called the backend %d times", n)
	}
}

func runCancelWhileWaiting(e *env) {
	key := e.key("k")
	item := e.lock(e.peer, key, 60)
	held := newSignal()
	name, _ := e.instrument(held.fire)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	a := xsync.New(name, key)
	const interval = time.Minute
	if err := a.SetRetry(5, interval); err != nil {
		e.t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() { res <- a.Run(ctx, func(context.Context) error { return errors.New("callback ran") }) }()
	e.await(held, "the first attempt")
	start := time.Now()
	cancel()
	var err error
	select {
	case err = <-res:
	case <-e.ctx.Done():
		e.t.Fatal("Run did not return after its ctx was cancelled")
	}
	if !xsync.IsMissingLockErr(err) || !errors.Is(err, context.Canceled) {
		e.t.Errorf("Run cancelled while waiting = %v; want ErrMissingLock and context.Canceled", err)
	}
	if d := time.Since(start); d > interval/4 {
		e.t.Errorf("Run took %v to return after cancellation; it must not sleep out its %v interval", d, interval)
	}
	e.unlock(e.peer, key, item, true)
}

func runRetryCount(e *env) {
	key := e.key("k")
	item := e.lock(e.peer, key, 60)
	name, c := e.instrument(nil)
	const retries, interval = 3, 100 * time.Millisecond
	a := xsync.New(name, key)
	if err := a.SetRetry(retries, interval); err != nil {
		e.t.Fatal(err)
	}
	start := time.Now()
	err := a.Run(e.ctx, func(context.Context) error { return errors.New("callback ran") })
	elapsed := time.Since(start)
	if !xsync.IsMissingLockErr(err) {
		e.t.Errorf("Run on a key held throughout = %v; want ErrMissingLock", err)
	}
	calls := c.attempts()
	if len(calls) != retries+1 {
		e.t.Fatalf("Run made %d attempts; want 1+%d", len(calls), retries)
	}
	// Nobody released the key, so every wait lasted at least half the
	// interval (the core waits a random time in [interval/2, interval];
	// timers do not fire early). The upper bound is generous: scheduling.
	if elapsed < retries*interval/2 {
		e.t.Errorf("%d retries up to %v apart took only %v: a busy loop?", retries, interval, elapsed)
	}
	for i := 1; i < len(calls); i++ {
		if gap := calls[i].at.Sub(calls[i-1].at); gap > interval+time.Second {
			e.t.Errorf("attempts %d and %d were %v apart; want at most about %v", i, i+1, gap, interval)
		}
	}

	// No retry: exactly one attempt.
	name0, c0 := e.instrument(nil)
	if err := xsync.New(name0, key).Run(e.ctx, func(context.Context) error { return nil }); !xsync.IsMissingLockErr(err) {
		e.t.Errorf("Run without retry on a held key = %v; want ErrMissingLock", err)
	}
	if n := len(c0.attempts()); n != 1 {
		e.t.Errorf("Run without retry made %d attempts; want 1", n)
	}
	e.unlock(e.peer, key, item, true)
}

func runRetryHandoff(e *env) {
	key := e.key("k")
	item := e.lock(e.peer, key, 60)
	held := newSignal()
	name, _ := e.instrument(held.fire)
	_, notifies := e.l.(backend.Watcher)
	interval := time.Second
	if notifies {
		interval = time.Minute
	}
	a := xsync.New(name, key)
	if err := a.SetRetry(2, interval); err != nil {
		e.t.Fatal(err)
	}
	var got xsync.Item
	res := make(chan error, 1)
	go func() {
		res <- a.Run(e.ctx, func(ctx context.Context) error {
			got = xsync.ItemFromContext(ctx)
			return nil
		})
	}()
	e.await(held, "the waiter's first attempt")
	released := time.Now()
	e.unlock(e.peer, key, item, true)
	var err error
	select {
	case err = <-res:
	case <-e.ctx.Done():
		e.t.Fatal("the waiting Run never obtained the released lock")
	}
	waited := time.Since(released)
	if err != nil {
		e.t.Fatalf("waiting Run = %v; want it to obtain the lock after its release", err)
	}
	e.checkNewer(item, got)
	if notifies && waited > interval/4 {
		e.t.Errorf("with release notification the waiter took %v after the release; its interval is %v", waited, interval)
	}
	e.t.Logf("handoff after release: %v (notification: %v)", waited, notifies)
	e.mustBeFree(e.peer, key)
}

func needRefresher(e *env) {
	if _, ok := e.l.(backend.Refresher); !ok {
		// The core must refuse auto-extension before it locks anything.
		key := e.key("k")
		a := xsync.New(e.name, key)
		if err := a.SetAutoExtend(true, 0); err != nil {
			e.t.Fatal(err)
		}
		err := a.Run(e.ctx, func(context.Context) error { return errors.New("callback ran") })
		if !errors.Is(err, errors.ErrUnsupported) {
			e.t.Errorf("Run with auto-extension on a backend without Refresh = %v; want errors.ErrUnsupported", err)
		}
		e.mustBeFree(e.peer, key)
		e.t.Skip("backend does not implement backend.Refresher")
	}
}

// extending returns an Async on key with the minimum TTL and auto-extension
// on, capped at maxHold (0: no cap), after skipping backends that cannot
// refresh.
func (e *env) extending(key string, maxHold time.Duration) *xsync.Async {
	e.t.Helper()
	needRefresher(e)
	a := xsync.New(e.name, key)
	if err := a.SetExp(e.ttl()); err != nil {
		e.t.Fatal(err)
	}
	if err := a.SetAutoExtend(true, maxHold); err != nil {
		e.t.Fatal(err)
	}
	return a
}

func autoExtend(e *env) {
	key := e.key("k")
	a := e.extending(key, 0)
	start := time.Now()
	err := a.Run(e.ctx, func(ctx context.Context) error {
		// Time must pass here: the lock has to outlive its own TTL.
		e.sleepUntil(start.Add(e.ttl() + e.ttl()/2 + e.opts.ExpiryTolerance))
		if ctx.Err() != nil {
			return fmt.Errorf("callback context ended although renewal should keep the lock: %v", context.Cause(ctx))
		}
		if item, err := xsync.Lock(e.ctx, e.peer, key, e.exp); err != nil || item != 0 {
			return fmt.Errorf("peer Lock after 1.5 TTLs = (%d, %v); want (0, nil): the lock was not extended", item, err)
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.mustBeFree(e.peer, key)
}

func autoExtendLoss(e *env) {
	key := e.key("k")
	a := e.extending(key, 0)
	var cause error
	err := a.Run(e.ctx, func(ctx context.Context) error {
		// Lose the lock behind the renewal's back.
		if ok, err := xsync.ItemFromContext(ctx).Unlock(e.ctx, e.peer, key); !ok || err != nil {
			return fmt.Errorf("releasing under the callback = (%v, %v)", ok, err)
		}
		// Renewal runs every TTL/3, so the loss must be noticed within one
		// TTL.
		select {
		case <-ctx.Done():
			cause = context.Cause(ctx)
		case <-time.After(e.ttl() + e.opts.ExpiryTolerance):
			return errors.New("callback context still alive one TTL after the lock was lost")
		}
		return nil
	})
	if !errors.Is(cause, xsync.ErrLockLost) {
		e.t.Errorf("cause = %v; want ErrLockLost", cause)
	}
	if !errors.Is(err, xsync.ErrLockLost) {
		e.t.Errorf("Run = %v; want ErrLockLost", err)
	}
}

func autoExtendMaxHold(e *env) {
	key := e.key("k")
	maxHold := e.ttl() + e.ttl()/2
	a := e.extending(key, maxHold)
	start := time.Now()
	var cause error
	var elapsed time.Duration
	err := a.Run(e.ctx, func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			elapsed, cause = time.Since(start), context.Cause(ctx)
		case <-time.After(maxHold + e.ttl()):
			return errors.New("callback context still alive one TTL after the max hold time")
		}
		return nil
	})
	if !errors.Is(cause, xsync.ErrLockLost) || !errors.Is(err, xsync.ErrLockLost) {
		e.t.Errorf("cause = %v, Run = %v; want both ErrLockLost", cause, err)
	}
	// It outlived the TTL (renewed), and ended at the cap, not later.
	if elapsed < e.ttl() || elapsed > maxHold+e.opts.ExpiryTolerance {
		e.t.Errorf("callback context ended after %v; want about the %v cap", elapsed, maxHold)
	}
	e.mustBeFree(e.peer, key)
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
	start := time.Now()
	for i := range 10 {
		e.lock(e.peer, e.key(fmt.Sprint("expires", i)), e.exp)
	}
	if n := sz.Size(e.t); n <= base {
		e.t.Errorf("Size = %d with 10 locks held; want more than the %d before", n, base)
	}
	e.sleepUntil(start.Add(e.ttl() + e.opts.SizeSettle))
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

func runRetryAfterExpiry(e *env) {
	key := e.key("k")
	start := time.Now()
	abandoned := e.lock(e.peer, key, e.exp) // never released: a crashed holder
	_, notifies := e.l.(backend.Watcher)
	interval := time.Second
	if notifies {
		interval = time.Minute
	}
	a := xsync.New(e.name, key)
	if err := a.SetRetry(2, interval); err != nil {
		e.t.Fatal(err)
	}
	var got xsync.Item
	err := a.Run(e.ctx, func(ctx context.Context) error {
		got = xsync.ItemFromContext(ctx)
		return nil
	})
	waited := time.Since(start)
	if err != nil {
		e.t.Fatalf("waiting Run = %v; want it to obtain the lock once the holder's TTL passed", err)
	}
	e.checkNewer(abandoned, got)
	if waited < e.ttl()-e.opts.ExpiryTolerance {
		e.t.Errorf("obtained after %v, before the holder's %v TTL ran out", waited, e.ttl())
	}
	// A backend that reports expiry wakes the waiter at the TTL, not at its
	// one-minute interval. Generous: this tells the two apart, nothing more.
	if notifies && waited > e.ttl()+interval/4 {
		e.t.Errorf("with release notification the waiter took %v; the TTL was %v and its interval %v", waited, e.ttl(), interval)
	}
	e.t.Logf("obtained %v after the abandoned lock was taken (TTL %v, notification: %v)", waited, e.ttl(), notifies)
}

func refreshSetsTTL(e *env) {
	needRefresher(e)
	r := e.l.(backend.Refresher)
	key := e.key("k")
	item := e.lock(e.name, key, e.exp)
	// Longer: held past its first TTL.
	start := time.Now()
	if ok, err := r.Refresh(e.ctx, key, int64(item), 3*e.ttl()); !ok || err != nil {
		e.t.Fatalf("Refresh to 3 TTLs = (%v, %v); want (true, nil)", ok, err)
	}
	e.sleepUntil(start.Add(e.ttl() + e.opts.ExpiryTolerance))
	e.mustBeHeld(e.peer, key)
	// Shorter: free one TTL after.
	start = time.Now()
	if ok, err := r.Refresh(e.ctx, key, int64(item), e.ttl()); !ok || err != nil {
		e.t.Fatalf("Refresh back to one TTL = (%v, %v); want (true, nil)", ok, err)
	}
	if time.Since(start) < e.ttl()-e.opts.ExpiryTolerance {
		e.mustBeHeld(e.peer, key)
	}
	e.freeAfterTTL(key, item, start)
}

// recorder is an observer that keeps the kinds and outcomes it sees.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) Observe(_ context.Context, e xsync.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, string(e.Kind)+":"+string(e.Outcome))
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

func observed(e *env) {
	r := &recorder{}
	e.t.Cleanup(xsync.SetObserver(e.name, r))
	key := e.key("k")
	if err := xsync.New(e.name, key).Run(e.ctx, func(context.Context) error { return nil }); err != nil {
		e.t.Fatal(err)
	}
	want := []string{"attempt:acquired", "wait:acquired", "hold:kept", "release:released"}
	if got := r.take(); fmt.Sprint(got) != fmt.Sprint(want) {
		e.t.Errorf("events of an uncontended Run = %v; want %v", got, want)
	}
	item := e.lock(e.peer, key, e.exp)
	if err := xsync.New(e.name, key).Run(e.ctx, func(context.Context) error { return nil }); !xsync.IsMissingLockErr(err) {
		e.t.Fatalf("Run on a held key = %v; want ErrMissingLock", err)
	}
	want = []string{"attempt:held", "wait:held"}
	if got := r.take(); fmt.Sprint(got) != fmt.Sprint(want) {
		e.t.Errorf("events of a contended Run = %v; want %v", got, want)
	}
	if ok, err := item.Unlock(e.ctx, e.name, key); !ok || err != nil {
		e.t.Fatalf("Unlock = (%v, %v)", ok, err)
	}
	want = []string{"release:released"}
	if got := r.take(); fmt.Sprint(got) != fmt.Sprint(want) {
		e.t.Errorf("events of Unlock = %v; want %v", got, want)
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
	if _, ok := e.l.(backend.Watcher); ok {
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
