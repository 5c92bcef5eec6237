package conformance

import (
	"errors"
	"strings"
	"time"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
)

// The rules of a Client's lease on the backend, and of the operators'
// calls: the lease's life, its loss at the deadline, Extend, waiting,
// Inspect and ForceRelease, hold-at-least.

// The cases in this file drive the backend through the handle API
// (xsync.Client and its Lease) and the optional operator capabilities.

// client returns a Client of the backend under test, named as the
// registry names it (so that observers and messages agree).
func (e *env) client() *xsync.Client {
	return xsync.NewClient(e.l, xsync.WithName(e.name))
}

func (e *env) acquire(c *xsync.Client, key string, opts ...xsync.AcquireOption) *xsync.Lease {
	e.t.Helper()
	l, err := c.Acquire(e.ctx, key, append([]xsync.AcquireOption{xsync.WithTTL(e.ttl())}, opts...)...)
	if err != nil {
		e.t.Fatalf("Acquire(%q): %v", key, err)
	}
	return l
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func leaseLifecycle(e *env) {
	t, c, key := e.t, e.client(), e.key("k")
	l := e.acquire(c, key)
	if l.Token() <= 0 || l.Key() != key {
		t.Fatalf("lease token %d key %q; want > 0 and %q", l.Token(), l.Key(), key)
	}
	if closed(l.Done()) || l.Err() != nil {
		t.Fatalf("a fresh lease is done (%v)", l.Err())
	}
	e.mustBeHeld(e.peer, key)
	if _, err := c.Acquire(e.ctx, key, xsync.WithTTL(e.ttl())); !xsync.IsMissingLockErr(err) {
		t.Fatalf("Acquire of a held key without wait = %v; want ErrMissingLock", err)
	}
	ok, err := l.Release(e.ctx)
	if err != nil || !ok {
		t.Fatalf("Release = (%v, %v); want (true, nil)", ok, err)
	}
	if !closed(l.Done()) || !errors.Is(l.Err(), xsync.ErrReleased) {
		t.Fatalf("after Release: done %v, Err %v; want closed and ErrReleased", closed(l.Done()), l.Err())
	}
	if ok, err := l.Release(e.ctx); ok || err != nil {
		t.Fatalf("second Release = (%v, %v); want (false, nil)", ok, err)
	}
	e.checkNewer(xsync.Item(l.Token()), e.mustBeFree(e.peer, key))
}

func leaseLostAtDeadline(e *env) {
	t, c, key := e.t, e.client(), e.key("k")
	l := e.acquire(c, key)
	select {
	case <-l.Done():
	case <-e.ctx.Done():
		t.Fatal("guard expired waiting for the lease to end")
	}
	late := time.Since(l.Deadline())
	t.Logf("Done closed %v after the validity deadline", late.Round(time.Millisecond))
	if late < 0 || late > signalTolerance {
		t.Fatalf("Done closed %v after the deadline; want within [0, %v]", late, signalTolerance)
	}
	if !errors.Is(l.Err(), xsync.ErrLockLost) {
		t.Fatalf("Err = %v; want ErrLockLost", l.Err())
	}
	if ok, err := l.Release(e.ctx); err != nil {
		t.Fatalf("Release of a lost lease: %v", err)
	} else {
		t.Logf("Release of a lost lease = %v", ok)
	}
}

func leaseExtend(e *env) {
	if !e.refreshes() {
		e.t.Skip("the backend cannot refresh locks")
	}
	t, c, key := e.t, e.client(), e.key("k")
	l := e.acquire(c, key)
	first := l.Deadline()
	if err := l.Extend(e.ctx, 3*e.ttl()); err != nil {
		t.Fatalf("Extend: %v", err)
	}
	if !l.Deadline().After(first.Add(e.ttl())) {
		t.Fatalf("deadline %v after Extend(3×TTL); first was %v", l.Deadline(), first)
	}
	e.sleepUntil(first.Add(e.opts.ExpiryTolerance)) // the first TTL must pass
	e.mustBeHeld(e.peer, key)
	if closed(l.Done()) {
		t.Fatalf("the lease ended at its first deadline: %v", l.Err())
	}
	if ok, err := l.Release(e.ctx); !ok || err != nil {
		t.Fatalf("Release = (%v, %v)", ok, err)
	}
}

func leaseWait(e *env) {
	t, c, key := e.t, e.client(), e.key("k")
	holder := e.acquire(c, key)
	got := make(chan *xsync.Lease, 1)
	errc := make(chan error, 1)
	go func() {
		l, err := c.Acquire(e.ctx, key, xsync.WithTTL(e.ttl()), xsync.WithWait(e.opts.Timeout/2))
		if err != nil {
			errc <- err
			return
		}
		got <- l
	}()
	released := time.Now()
	if ok, err := holder.Release(e.ctx); !ok || err != nil {
		t.Fatalf("Release = (%v, %v)", ok, err)
	}
	select {
	case l := <-got:
		t.Logf("the waiter got the key %v after the release", time.Since(released).Round(time.Millisecond))
		e.checkNewer(holder.Token(), l.Token())
		if _, err := l.Release(e.ctx); err != nil {
			t.Fatal(err)
		}
	case err := <-errc:
		t.Fatalf("waiting Acquire: %v", err)
	case <-e.ctx.Done():
		t.Fatal("guard expired waiting for the waiter")
	}

	// A wait that passes while the key stays held.
	holder = e.acquire(c, key)
	defer holder.Release(e.ctx)
	start := time.Now()
	_, err := c.Acquire(e.ctx, key, xsync.WithTTL(e.ttl()), xsync.WithWait(300*time.Millisecond), xsync.WithRetryInterval(50*time.Millisecond))
	if !xsync.IsMissingLockErr(err) {
		t.Fatalf("Acquire whose wait passed = %v; want ErrMissingLock", err)
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 300*time.Millisecond+e.opts.MinTTL {
		t.Fatalf("a 300ms wait took %v", took)
	}
}

func inspectAndForceRelease(e *env) {
	_, inspects := mutex(e.l, e.key("probe")).(backend.Inspector)
	_, forces := mutex(e.l, e.key("probe")).(backend.ForceReleaser)
	if !inspects || !forces {
		e.t.Skip("the backend cannot inspect or force-release locks")
	}
	t, c, key := e.t, e.client(), e.key("k")
	if info, err := c.Inspect(e.ctx, key); err != nil || info.Held {
		t.Fatalf("Inspect of a free key = (%+v, %v)", info, err)
	}
	holder := e.acquire(c, key, xsync.WithOwner("conformance-owner"))
	info, err := c.Inspect(e.ctx, key)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	t.Logf("Inspect: %+v", info)
	if !info.Held || info.Token != holder.Token() {
		t.Fatalf("Inspect = %+v; want held by token %d", info, holder.Token())
	}
	if info.TTL <= 0 || info.TTL > e.ttl()+time.Second {
		t.Fatalf("Inspect TTL %v; want in (0, %v]", info.TTL, e.ttl())
	}
	if !e.opts.NoOwner && !strings.Contains(info.Owner, "conformance-owner") {
		t.Fatalf("Inspect owner %q; want it to contain the caller's string", info.Owner)
	}
	if ttl, err := holder.TTL(e.ctx); err != nil || ttl <= 0 {
		t.Fatalf("Lease.TTL = (%v, %v)", ttl, err)
	}

	// A waiter that only a notification can wake in time (without one,
	// its retry interval wakes it).
	notifies := e.notifies()
	interval := e.opts.Timeout / 2
	if !notifies {
		interval = 100 * time.Millisecond
	}
	// The waiter's backend is wrapped to tell when an attempt found the
	// key held; a release after that is caught by its watch (which reads
	// the key once it listens) or by its next retry.
	held := newSignal()
	name, _ := e.instrument(held.fire)
	waiter, err := xsync.Registered(name)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *xsync.Lease, 1)
	errc := make(chan error, 1)
	go func() {
		l, err := waiter.Acquire(e.ctx, key, xsync.WithTTL(e.ttl()), xsync.WithWait(e.opts.Timeout/2), xsync.WithRetryInterval(interval))
		if err != nil {
			errc <- err
			return
		}
		got <- l
	}()
	e.await(held, "the waiter to find the key held")
	forced := time.Now()
	ok, err := c.ForceRelease(e.ctx, key)
	if err != nil || !ok {
		t.Fatalf("ForceRelease = (%v, %v); want (true, nil)", ok, err)
	}
	if notifies {
		select {
		case l := <-got:
			t.Logf("the waiter got the force-released key %v after ForceRelease", time.Since(forced).Round(time.Millisecond))
			e.checkNewer(holder.Token(), l.Token())
			if _, err := l.Release(e.ctx); err != nil {
				t.Fatal(err)
			}
		case err := <-errc:
			t.Fatalf("waiting Acquire: %v", err)
		case <-time.After(2 * time.Second):
			t.Fatal("a waiter was not woken by ForceRelease within 2s (its retry interval is far longer)")
		}
	} else {
		e.cancelWaiter(holder.Token(), got, errc)
	}
	if ok, err := holder.Release(e.ctx); ok || err != nil {
		t.Fatalf("the forced-out holder's Release = (%v, %v); want (false, nil)", ok, err)
	}
	if ok, err := c.ForceRelease(e.ctx, key); ok || err != nil {
		t.Fatalf("ForceRelease of a free key = (%v, %v); want (false, nil)", ok, err)
	}
}

// cancelWaiter waits for a waiter that nothing wakes to take the key at
// its own pace, checks that its token is newer than before, and releases
// what it took.
func (e *env) cancelWaiter(before xsync.Item, got chan *xsync.Lease, errc chan error) {
	select {
	case l := <-got:
		e.checkNewer(before, l.Token())
		l.Release(e.ctx)
	case err := <-errc:
		e.t.Fatalf("waiting Acquire: %v", err)
	case <-e.ctx.Done():
		e.t.Fatal("guard expired waiting for the waiter")
	}
}

func holdAtLeast(e *env) {
	if !e.refreshes() {
		e.t.Skip("the backend cannot refresh locks")
	}
	t, c, key := e.t, e.client(), e.key("k")
	atLeast := 2 * e.ttl()
	start := time.Now()
	l := e.acquire(c, key, xsync.WithTTL(e.ttl()), xsync.WithHoldAtLeast(atLeast))
	if ok, err := l.Release(e.ctx); !ok || err != nil {
		t.Fatalf("Release = (%v, %v)", ok, err)
	}
	e.mustBeHeld(e.peer, key)
	e.sleepUntil(start.Add(atLeast - e.opts.MinTTL/2)) // time must pass
	e.mustBeHeld(e.peer, key)
	e.sleepUntil(start.Add(atLeast + e.opts.ExpiryTolerance + time.Second)) // etcd rounds TTLs up to whole seconds
	item := e.lock(e.peer, key, e.exp)
	e.unlock(e.peer, key, item, true)
}
