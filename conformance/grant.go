package conformance

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/wrap"
)

// The rules of backends whose mutex hands itself to its first waiter at
// a release (backend.Granter). The backend's own waiters (a Granter
// called directly) play waiters that do not take what they are granted,
// or that died.

// granter returns key's mutex on a new Locker of the store, and its
// Granter, or skips the rule if the backend has none.
func granter(e *env, key string) (backend.Lock, backend.Granter) {
	needQueuer(e)
	m := mutex(e.h.Locker(e.t), key)
	g, ok := m.(backend.Granter)
	if !ok {
		e.t.Skip("the backend's mutex does not grant itself to its first waiter (backend.Granter)")
	}
	return m, g
}

// awaitGrant waits until granted tells of a grant, woken by ready.
func awaitGrant(e *env, ready <-chan struct{}, granted func() (int64, int64)) (token, seq int64) {
	e.t.Helper()
	for {
		select {
		case <-ready:
			if tok, seq := granted(); tok > 0 {
				return tok, seq
			}
		case <-e.ctx.Done():
			e.t.Fatal("the waiter was never granted the lock")
		}
	}
}

// grantHandoff: a release hands the key to the first waiter, which holds
// it without an attempt of its own, under a larger token; the store then
// shows it as the holder.
func grantHandoff(e *env) {
	key := e.key("k")
	granter(e, key)
	holder, err := xsync.NewClient(e.l).Acquire(e.ctx, key, xsync.WithTTL(e.ttl()+30*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	var afterWatch atomic.Int32 // the waiter's attempts once it watched
	var watched atomic.Bool
	w := &wrap.Locker{Base: e.h.Locker(e.t)}
	queued := make(chan struct{}, 1)
	onWatch(w, func(wrap.Ref) { watched.Store(true); queued <- struct{}{} })
	w.Hooks.Acquire = func(ctx context.Context, _ wrap.Ref, base backend.Lock, r backend.Request) (int64, error) {
		if watched.Load() {
			afterWatch.Add(1)
		}
		return base.Acquire(ctx, r)
	}
	got := make(chan queuedResult, 1)
	go func() {
		l, err := xsync.NewClient(w).Acquire(e.ctx, key, xsync.WithTTL(e.ttl()+30*time.Second), xsync.WithWait(queueWait),
			xsync.WithRetryInterval(queueInterval), xsync.WithOwner("grantee"))
		got <- queuedResult{lease: l, err: err, at: time.Now()}
	}()
	awaitQueued(e, queued)
	released := time.Now()
	if ok, err := holder.Release(e.ctx); !ok || err != nil {
		e.t.Fatalf("release = %v, %v", ok, err)
	}
	r := <-got
	if r.err != nil {
		e.t.Fatal(r.err)
	}
	defer r.lease.Release(e.ctx)
	if n := afterWatch.Load(); n != 0 {
		e.t.Errorf("the waiter made %d attempts after it was queued; a grant needs none", n)
	}
	if r.lease.Token() <= holder.Token() {
		e.t.Errorf("granted token %d after %d", r.lease.Token(), holder.Token())
	}
	if d := r.at.Sub(released); d > queueInterval/4 {
		e.t.Errorf("the grant took %v after the release", d)
	}
	if left := time.Until(r.lease.Deadline()); left <= 0 || left > e.ttl()+30*time.Second {
		e.t.Errorf("the granted lease has %v left; want within its TTL", left)
	}
	if in, ok := mutex(e.l, key).(backend.Inspector); ok {
		info, err := in.Inspect(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(info.Holders) != 1 || info.Holders[0].Token != int64(r.lease.Token()) {
			e.t.Errorf("the store shows %+v; want the grantee's token %d", info.Holders, r.lease.Token())
		}
	}
}

// grantTake: an attempt by a waiter that finds the lock granted to it
// takes the grant: the grant's token, with the attempt's TTL and owner;
// Confirm sets both too. A grant
// tells the Seq of the waiter's request that last renewed its place, and
// lasts keep from when that request was sent: a backend that told the
// Seq of a later request that did not renew the place would make the
// waiter trust the grant past its end.
func grantTake(e *env) {
	key := e.key("k")
	m, g := granter(e, key)
	holder, err := xsync.NewClient(e.l).Acquire(e.ctx, key, xsync.WithTTL(e.ttl()+30*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	const keep = 3 * time.Second
	sent := map[int64]time.Time{0: time.Now()} // when each request was sent
	ready, granted, stop, err := g.WatchGrant(e.ctx, "taker", keep)
	if err != nil {
		e.t.Fatal(err)
	}
	defer stop()
	attempt := func(seq int64) {
		sent[seq] = time.Now()
		if tok, err := m.Acquire(e.ctx, backend.Request{TTL: time.Minute, Waiter: "taker", Keep: keep, Seq: seq}); tok != 0 || err != nil {
			e.t.Fatalf("the waiter's attempt %d while the key is held = %d, %v; want 0, nil", seq, tok, err)
		}
	}
	// A backend may leave a place with two thirds of its keep left as it
	// is: wait a third of it, and attempt 7 renews the place; attempt 8,
	// soon after, may leave it.
	time.Sleep(keep/3 + 100*time.Millisecond)
	attempt(7)
	time.Sleep(keep / 4)
	attempt(8)
	if ok, err := holder.Release(e.ctx); !ok || err != nil {
		e.t.Fatalf("release = %v, %v", ok, err)
	}
	tok, seq := awaitGrant(e, ready, granted)
	from, ok := sent[seq]
	if !ok {
		e.t.Fatalf("the grant follows request %d, which the waiter never sent", seq)
	}
	if seq == 0 {
		e.t.Errorf("the grant follows the waiter's joining (0); its attempt 7 (at least) renewed its place since")
	}
	if in, ok := m.(backend.Inspector); ok {
		info, err := in.Inspect(e.ctx)
		after := time.Now()
		if err != nil {
			e.t.Fatal(err)
		}
		// The grant lasts keep from the request it follows: at least
		// from.Add(keep) - after now (less a millisecond of rounding).
		if want := from.Add(keep).Sub(after) - time.Millisecond; len(info.Holders) != 1 || info.Holders[0].Token != tok || info.Holders[0].TTL < want {
			e.t.Errorf("the grant following request %d shows %+v; want token %d with at least %v left (keep %v from the request)", seq, info.Holders, tok, want, keep)
		}
	}
	if tok <= int64(holder.Token()) {
		e.t.Errorf("granted token %d after %d", tok, holder.Token())
	}
	again, err := m.Acquire(e.ctx, backend.Request{TTL: time.Minute, Owner: "taker", Waiter: "taker", Keep: keep, Seq: 9})
	if err != nil || again != tok {
		e.t.Fatalf("the waiter's attempt on its grant = %d, %v; want the grant's token %d", again, err, tok)
	}
	in, inspects := g.(backend.Inspector)
	holds := func(what string, ttl time.Duration, owner string) {
		e.t.Helper()
		if !inspects {
			return
		}
		info, err := in.Inspect(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(info.Holders) != 1 || info.Holders[0].Token != tok || info.Holders[0].TTL < ttl-10*time.Second || info.Holders[0].TTL > ttl ||
			(!e.opts.NoOwner && info.Holders[0].Owner != owner) {
			e.t.Errorf("after %s the store shows %+v; want token %d with about %v left, owner %q", what, info.Holders, tok, ttl, owner)
		}
	}
	holds("the attempt took the grant", time.Minute, "taker")
	if ok, err := g.Confirm(e.ctx, tok, backend.Request{TTL: 2 * time.Minute, Owner: "confirmed"}); !ok || err != nil {
		e.t.Fatalf("confirm = %v, %v; want true", ok, err)
	}
	holds("the confirmation", 2*time.Minute, "confirmed")
	if ok, err := m.Release(e.ctx, tok); !ok || err != nil {
		e.t.Errorf("release of the grant = %v, %v", ok, err)
	}
}

// grantLeave: a waiter granted the lock that leaves without taking the
// grant releases it, and the waiter behind it gets the key at once.
func grantLeave(e *env) {
	key := e.key("k")
	_, g := granter(e, key)
	holder, err := xsync.NewClient(e.l).Acquire(e.ctx, key, xsync.WithTTL(e.ttl()+30*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	ready, _, stop, err := g.WatchGrant(e.ctx, "leaver", 30*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	defer stop()
	got := waitBehind(e, key, queueInterval)
	if ok, err := holder.Release(e.ctx); !ok || err != nil {
		e.t.Fatalf("release = %v, %v", ok, err)
	}
	// The leaver is told of its grant (the message is what it ignores),
	// and the one behind it waits.
	select {
	case <-ready:
	case <-e.ctx.Done():
		e.t.Fatal("the waiter ahead was never told of its grant")
	}
	select {
	case r := <-got:
		e.t.Fatalf("the waiter behind got the key (%v) while the one ahead was granted it", r.err)
	default:
	}
	left := time.Now()
	stop()
	r := <-got
	if r.err != nil {
		e.t.Fatal(r.err)
	}
	defer r.lease.Release(e.ctx)
	if d := r.at.Sub(left); d > queueInterval/4 {
		e.t.Errorf("the waiter behind one that left its grant got the key %v after it left", d)
	}
}

// grantDeadWaiter: a waiter granted the lock that never takes it (its
// process died) holds the key no longer than its place would have lived,
// and nobody gets it before that.
func grantDeadWaiter(e *env) {
	key := e.key("k")
	_, g := granter(e, key)
	queueDeadWaiterOf(e, key, func(keep time.Duration) func() {
		_, _, stop, err := g.WatchGrant(e.ctx, "deadwaiter", keep)
		if err != nil {
			e.t.Fatal(err)
		}
		return stop
	})
}

// grantConfirm: a lease taken from a grant with owner metadata asked for
// (WithOwner) confirms the grant at once (the store shows its owner within
// a round trip, long before the grant's halfway point); a lease without
// it, whose grant lasts less than its TTL, confirms it halfway through the
// time the grant is sure to last, so one whose grant is gone by then (an
// operator forced the key free) is lost there, well before its deadline,
// as a renewal that finds the lock gone would lose it.
func grantConfirm(e *env) {
	key := e.key("k")
	granter(e, key)
	grant := func(interval time.Duration, opts ...xsync.AcquireOption) (*xsync.Lease, time.Time) {
		e.t.Helper()
		holder, err := xsync.NewClient(e.l).Acquire(e.ctx, key, xsync.WithTTL(e.ttl()+30*time.Second))
		if err != nil {
			e.t.Fatal(err)
		}
		got := waitBehind(e, key, interval, opts...)
		if ok, err := holder.Release(e.ctx); !ok || err != nil {
			e.t.Fatalf("release = %v, %v", ok, err)
		}
		r := <-got
		if r.err != nil {
			e.t.Fatal(r.err)
		}
		return r.lease, r.at
	}
	const ttl = 8 * time.Second
	lk := mutex(e.l, key)
	in, inspects := lk.(backend.Inspector)
	if inspects && !e.opts.NoOwner {
		// The grant outlives the TTL (the waiter's keep is three retry
		// intervals): the owner alone calls for the confirmation.
		l, at := grant(queueInterval, xsync.WithTTL(ttl), xsync.WithOwner("grant-confirm"))
		soon := at.Add(l.Deadline().Sub(at) / 4)
		for {
			info, err := in.Inspect(e.ctx)
			if err != nil {
				e.t.Fatal(err)
			}
			if len(info.Holders) == 1 && strings.Contains(info.Holders[0].Owner, "grant-confirm") {
				break
			}
			if !time.Now().Before(soon) {
				e.t.Fatalf("the grant's owner was not stored within a quarter of the lease's validity (its confirmation is due at once); the store shows %+v", info.Holders)
			}
			select {
			case <-e.ctx.Done():
				e.t.Fatal(e.ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
		if err := l.Err(); err != nil {
			e.t.Fatalf("the confirmed lease: %v", err)
		}
		if ok, err := l.Release(e.ctx); !ok || err != nil {
			e.t.Fatalf("release of the confirmed lease = %v, %v", ok, err)
		}
	}
	fr, ok := lk.(backend.ForceReleaser)
	if !ok {
		return
	}
	// A grant sure to last 6s (a keep of three 2s intervals), shorter
	// than the TTL: it is confirmed halfway, about 3s in. A confirmation
	// that cannot reach the store (a loaded machine's cluster node) keeps
	// trying until the deadline, as it should: then once more.
	for try := 1; ; try++ {
		l, at := grant(2*time.Second, xsync.WithTTL(ttl))
		deadline := l.Deadline()
		if freed, err := fr.ForceRelease(e.ctx); !freed || err != nil {
			e.t.Fatalf("ForceRelease of the granted key = %v, %v", freed, err)
		}
		select {
		case <-l.Done():
		case <-e.ctx.Done():
			e.t.Fatal("the lease whose grant was forced free never ended")
		}
		err := l.Err()
		if !errors.Is(err, xsync.ErrLockLost) {
			e.t.Errorf("the lease whose grant was forced free ended with %v; want ErrLockLost", err)
		}
		left := time.Until(deadline)
		if left >= deadline.Sub(at)/4 {
			return
		}
		if try == 1 && errors.Is(err, backend.ErrUnavailable) {
			e.t.Logf("the confirmation could not reach the store (%v): again", err)
			continue
		}
		e.t.Errorf("the lease whose grant was forced free ended %v before its deadline (%v); its confirmation, due halfway, should have found the grant gone", left, err)
		return
	}
}
