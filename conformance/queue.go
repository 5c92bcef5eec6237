package conformance

import (
	"context"
	"errors"
	"time"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/wrap"
)

// The rules of backends that queue a mutex's waiters (Limits.FIFO). Each
// waiter is a Client on a Locker of its own (separate connections, as
// separate processes), and says when it is in the queue (its Watch
// returned).

// queueInterval is the waiters' retry interval: far longer than a rule
// takes, so that only the backend's wake-ups can explain a quick handoff.
const queueInterval = 20 * time.Second

// queueWait is how long a waiter waits at most: longer than any handoff
// the rules allow, short enough that a broken queue fails in good time.
const queueWait = 30 * time.Second

func needQueuer(e *env) {
	if !e.opts.FIFO {
		e.t.Skip("the backend does not queue waiters (Limits.FIFO)")
	}
}

// queueClient returns a Client on a new Locker of the store, and a
// channel that receives a value each time one of its waiters is queued.
func queueClient(e *env) (*xsync.Client, <-chan struct{}) {
	queued := make(chan struct{}, 8)
	w := &wrap.Locker{Base: e.h.Locker(e.t)}
	onWatch(w, func(wrap.Ref) { queued <- struct{}{} })
	return xsync.NewClient(w), queued
}

// onWatch makes w call watching each time a watch of one of its locks
// took effect, by Watch or by WatchGrant.
func onWatch(w *wrap.Locker, watching func(ref wrap.Ref)) {
	w.Hooks.Watch = func(ctx context.Context, ref wrap.Ref, base backend.Watcher, waiter string, keep time.Duration) (<-chan struct{}, func(), error) {
		ch, stop, err := base.Watch(ctx, waiter, keep)
		if err == nil {
			watching(ref)
		}
		return ch, stop, err
	}
	w.Hooks.WatchGrant = func(ctx context.Context, ref wrap.Ref, base backend.Granter, waiter string, keep time.Duration) (<-chan struct{}, func() (int64, int64), func(), error) {
		ch, granted, stop, err := base.WatchGrant(ctx, waiter, keep)
		if err == nil {
			watching(ref)
		}
		return ch, granted, stop, err
	}
}

func awaitQueued(e *env, queued <-chan struct{}) {
	e.t.Helper()
	select {
	case <-queued:
	case <-e.ctx.Done():
		e.t.Fatal("the waiter was never queued")
	}
}

// waitBehind starts a waiter for key on a client of its own (retrying
// every interval, with opts), and returns once it is queued; the channel
// gets its outcome.
func waitBehind(e *env, key string, interval time.Duration, opts ...xsync.AcquireOption) <-chan queuedResult {
	e.t.Helper()
	c, queued := queueClient(e)
	got := make(chan queuedResult, 1)
	opts = append([]xsync.AcquireOption{xsync.WithWait(queueWait), xsync.WithRetryInterval(interval)}, opts...)
	go func() {
		l, err := c.Acquire(e.ctx, key, opts...)
		got <- queuedResult{lease: l, err: err, at: time.Now()}
	}()
	awaitQueued(e, queued)
	return got
}

type queuedResult struct {
	who   int
	lease *xsync.Lease
	err   error
	at    time.Time
}

// queueFIFO: waiters get a held key in the order they were queued, each
// woken by the release before it.
func queueFIFO(e *env) {
	needQueuer(e)
	key := e.key("k")
	holder, err := xsync.NewClient(e.l).Acquire(e.ctx, key, xsync.WithTTL(e.ttl()+30*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	const n = 4
	got := make(chan queuedResult, n)
	for i := range n {
		c, queued := queueClient(e)
		go func() {
			l, err := c.Acquire(e.ctx, key, xsync.WithTTL(e.ttl()+30*time.Second), xsync.WithWait(queueWait),
				xsync.WithRetryInterval(queueInterval))
			got <- queuedResult{who: i, lease: l, err: err, at: time.Now()}
		}()
		awaitQueued(e, queued)
	}
	released := time.Now()
	if ok, err := holder.Release(e.ctx); !ok || err != nil {
		e.t.Fatalf("release = %v, %v", ok, err)
	}
	var prev xsync.Item
	for i := range n {
		r := <-got
		if r.err != nil {
			e.t.Fatalf("waiter %d: %v", r.who, r.err)
		}
		if r.who != i {
			e.t.Errorf("waiter %d got the key in place %d; want the order they were queued in", r.who, i)
		}
		if r.lease.Token() <= prev {
			e.t.Errorf("token %d after %d", r.lease.Token(), prev)
		}
		prev = r.lease.Token()
		if ok, err := r.lease.Release(e.ctx); !ok || err != nil {
			e.t.Fatalf("release = %v, %v", ok, err)
		}
	}
	if d := time.Since(released); d > queueInterval/4 {
		e.t.Errorf("%d handoffs took %v: the waiters were not woken by the releases (their retry interval is %v)", n, d, queueInterval)
	}
	e.t.Logf("%d handoffs in %v", n, time.Since(released))
}

// queueGiveUp: a waiter that gives up leaves the queue, and the one
// behind it gets the key at the next release.
func queueGiveUp(e *env) {
	needQueuer(e)
	key := e.key("k")
	holder, err := xsync.NewClient(e.l).Acquire(e.ctx, key, xsync.WithTTL(e.ttl()+30*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	a, queuedA := queueClient(e)
	actx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	gaveUp := make(chan error, 1)
	go func() {
		_, err := a.Acquire(actx, key, xsync.WithWait(queueWait), xsync.WithRetryInterval(queueInterval))
		gaveUp <- err
	}()
	awaitQueued(e, queuedA)
	got := waitBehind(e, key, queueInterval)
	cancel()
	if err := <-gaveUp; !errors.Is(err, xsync.ErrMissingLock) || !errors.Is(err, context.Canceled) {
		e.t.Errorf("the waiter that gave up got %v; want ErrMissingLock and context.Canceled", err)
	}
	released := time.Now()
	if ok, err := holder.Release(e.ctx); !ok || err != nil {
		e.t.Fatalf("release = %v, %v", ok, err)
	}
	r := <-got
	if r.err != nil {
		e.t.Fatal(r.err)
	}
	if d := r.at.Sub(released); d > queueInterval/4 {
		e.t.Errorf("the waiter behind one that gave up got the key %v after the release (its retry interval: %v)", d, queueInterval)
	}
	r.lease.Release(e.ctx)
}

// queueDeadWaiter: a waiter queued first that never tries (its process
// died) holds the key back no longer than its keep time, and the waiter
// behind it does not get the key before that.
func queueDeadWaiter(e *env) {
	needQueuer(e)
	key := e.key("k")
	dead := mutex(e.h.Locker(e.t), key).(backend.Watcher)
	queueDeadWaiterOf(e, key, func(keep time.Duration) func() {
		_, stop, err := dead.Watch(e.ctx, "deadwaiter", keep)
		if err != nil {
			e.t.Fatal(err)
		}
		return stop
	})
}

// queueDeadWaiterOf is queueDeadWaiter with the dead waiter queued by
// watch, which returns the watch's stop.
func queueDeadWaiterOf(e *env, key string, watch func(keep time.Duration) (stop func())) {
	holder, err := xsync.NewClient(e.l).Acquire(e.ctx, key, xsync.WithTTL(e.ttl()+30*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	const keep = time.Second
	queuedAt := time.Now()
	stopDead := watch(keep)
	defer stopDead() // the goroutines of its watch; its entry is gone by then
	const interval = 100 * time.Millisecond
	got := waitBehind(e, key, interval)
	if ok, err := holder.Release(e.ctx); !ok || err != nil {
		e.t.Fatalf("release = %v, %v", ok, err)
	}
	r := <-got
	if r.err != nil {
		e.t.Fatal(r.err)
	}
	held := r.at.Sub(queuedAt)
	// The entry lives keep at least (rounded up by the store: etcd's
	// leases are whole seconds of at least MinTTL, expired within
	// ExpiryTolerance), then the waiter behind tries within its interval.
	longest := max(keep, e.opts.MinTTL).Round(time.Second) + time.Second + e.opts.ExpiryTolerance + interval + time.Second
	if held < keep-20*time.Millisecond {
		e.t.Errorf("the waiter behind a live one got the key %v after it was queued; its keep time was %v", held, keep)
	}
	if held > longest {
		e.t.Errorf("a dead waiter held the key back %v; want at most about %v", held, longest)
	}
	e.t.Logf("a dead waiter (keep %v) held the queue back %v", keep, held)
	r.lease.Release(e.ctx)
}

// queueLostPlace: a waiter whose place expired while it still waits (none
// of its attempts reached the store within its keep time: a stalled
// process, or a store too slow to answer) is queued again, at the end, by
// its next refused attempt. A newcomer then does not take the key from it
// at the next release, and the waiter gets the key.
func queueLostPlace(e *env) {
	needQueuer(e)
	key := e.key("k")
	holder, err := xsync.NewClient(e.l).Acquire(e.ctx, key, xsync.WithTTL(e.ttl()+30*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	// The place queued again lives keep from the refused attempt: the
	// release and the newcomer's attempt come within a few round trips,
	// which a loaded machine may stretch, but not to 3s.
	const keep = 3 * time.Second
	lk := mutex(e.h.Locker(e.t), key)
	_, stop, err := lk.(backend.Watcher).Watch(e.ctx, "lostplace", keep)
	if err != nil {
		e.t.Fatal(err)
	}
	defer stop()
	e.awaitNoWaiter(key, max(keep, e.opts.MinTTL).Round(time.Second)+time.Second+e.opts.ExpiryTolerance)
	attempt := func() int64 {
		e.t.Helper()
		tok, err := lk.Acquire(e.ctx, backend.Request{TTL: e.ttl(), Waiter: "lostplace", Keep: keep})
		if err != nil {
			e.t.Fatal(err)
		}
		return tok
	}
	if tok := attempt(); tok != 0 {
		e.t.Fatalf("the waiter's attempt on a held key got token %d", tok)
	}
	if ok, err := holder.Release(e.ctx); !ok || err != nil {
		e.t.Fatalf("release = %v, %v", ok, err)
	}
	newcomer := mutex(e.l, key)
	if tok, err := newcomer.Acquire(e.ctx, backend.Request{TTL: e.ttl()}); err != nil || tok != 0 {
		e.t.Errorf("a newcomer's attempt after the release = %d, %v; want refused: the waiter whose place had expired tried since, and is queued again", tok, err)
		if tok > 0 {
			newcomer.Release(e.ctx, tok)
		}
	}
	tok := attempt()
	if tok <= 0 {
		e.t.Fatal("the waiter queued again did not get the free key")
	}
	if ok, err := lk.Release(e.ctx, tok); !ok || err != nil {
		e.t.Errorf("release = %v, %v", ok, err)
	}
}

// awaitNoWaiter waits until key's mutex shows no live waiter (Inspect), or
// for most if the backend cannot inspect, or if one stays: a backend may
// keep a live waiter's place alive on its own.
func (e *env) awaitNoWaiter(key string, most time.Duration) {
	e.t.Helper()
	end := time.Now().Add(most)
	in, ok := mutex(e.l, key).(backend.Inspector)
	for time.Now().Before(end) {
		if ok {
			info, err := in.Inspect(e.ctx)
			if err != nil {
				e.t.Fatal(err)
			}
			if info.Waiting == 0 {
				return
			}
		}
		select {
		case <-e.ctx.Done():
			e.t.Fatal(e.ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
