package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/xsync-go/xsync"
)

// The cases in this file check honest outcomes at the edges: what the
// caller is told when a call hangs, a context ends mid-request, or the
// store cannot be reached.

// maxErrorLen is the most an error message may take, whatever the key.
const maxErrorLen = 4 << 10

// signalTolerance is how late after the lock's validity deadline the
// callback's context may end. The core keeps that deadline with a timer of
// its own, so this covers scheduling only.
const signalTolerance = 250 * time.Millisecond

// timeoutError is what a network client returns when its read deadline
// (set from ctx's deadline) fires: not ctx's error.
type timeoutError struct{}

func (timeoutError) Error() string   { return "conformance: read tcp: i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// errStoreDown is what a client of a store that refuses connections
// returns.
var errStoreDown = errors.New("conformance: dial tcp: connect: connection refused")

// faulty registers a faulty client of the harness (a [Faulter]) under a
// name of its own, or skips the subtest if the harness cannot make one.
func (e *env) faulty() (string, Fault) {
	e.t.Helper()
	fh, ok := e.h.(Faulter)
	if !ok {
		e.t.Skip("the harness is not a Faulter: the backend has no link to break")
	}
	l, f := fh.Faulty(e.t)
	e.t.Cleanup(f.Heal)
	e.wraps++
	name := fmt.Sprintf("conformance-faulty-%d:%s", e.wraps, e.t.Name())
	e.t.Cleanup(xsync.Swap(name, l))
	return name, f
}

func lostSignalOnTime(e *env) {
	needRefresher(e)
	key := e.key("k")
	unblock := make(chan struct{})
	hung := newSignal()
	w := &wrapped{base: e.l}
	w.refresh = func(context.Context, string, int64, time.Duration) (bool, error) {
		// A renewal that ignores its context (a client without context
		// support talking to a frozen server), and then answers
		// "extended", far too late.
		hung.fire()
		<-unblock
		return true, nil
	}
	name := e.register("hanging-refresh", w)
	a := xsync.New(name, key)
	if err := a.SetExp(e.ttl()); err != nil {
		e.t.Fatal(err)
	}
	if err := a.SetAutoExtend(true, 0); err != nil {
		e.t.Fatal(err)
	}
	valid := w.Validity(e.ttl())
	start := time.Now()
	var (
		elapsed time.Duration
		cause   error
		hanging bool
	)
	err := a.Run(e.ctx, func(ctx context.Context) error {
		defer close(unblock) // let the renewal return, whatever happens here
		select {
		case <-ctx.Done():
			elapsed, cause = time.Since(start), context.Cause(ctx)
		case <-time.After(3 * e.ttl()):
			return errors.New("callback context still alive three TTLs after the lock was taken, while a renewal hung")
		}
		select {
		case <-hung.ch:
			hanging = true
		default:
		}
		return nil
	})
	if !hanging {
		e.t.Fatalf("the callback's context ended (%v) before any renewal was made; the test proves nothing", cause)
	}
	if !errors.Is(cause, xsync.ErrLockLost) {
		e.t.Errorf("cause of the callback context's end = %v; want ErrLockLost", cause)
	}
	if elapsed > valid+signalTolerance {
		e.t.Errorf("with a renewal hanging, the callback's context ended %v after the lock was requested; its validity was %v", elapsed, valid)
	}
	if !errors.Is(err, xsync.ErrLockLost) {
		e.t.Errorf("Run = %v; want ErrLockLost: a renewal answering after the deadline must not revive the lock", err)
	}
	e.t.Logf("lost-lock signal %v after the request (validity %v) while the renewal hung", elapsed, valid)
}

func deadlineDuringAttempt(e *env) {
	key := e.key("k")
	w := &wrapped{base: e.l}
	w.acquire = func(ctx context.Context, key string, ttl time.Duration) (int64, error) {
		d, ok := ctx.Deadline()
		if !ok {
			return e.l.Acquire(ctx, key, ttl)
		}
		// The socket's read deadline is ctx's deadline: it fires at that
		// moment, possibly before ctx's own timer has marked ctx done.
		time.Sleep(time.Until(d))
		for time.Now().Before(d) {
		}
		return 0, timeoutError{}
	}
	name := e.register("read-deadline", w)
	cb := func(context.Context) error { return errors.New("callback ran") }
	for i := range 10 {
		ctx, cancel := context.WithTimeout(e.ctx, 20*time.Millisecond)
		err := xsync.New(name, key).Run(ctx, cb)
		cancel()
		if !xsync.IsMissingLockErr(err) || !errors.Is(err, context.DeadlineExceeded) {
			e.t.Fatalf("run %d: Run whose ctx deadline passed during the attempt = %v; want ErrMissingLock and context.DeadlineExceeded", i, err)
		}
		ctx, cancel = context.WithTimeout(e.ctx, 20*time.Millisecond)
		item, err := xsync.Lock(ctx, name, key, e.exp)
		cancel()
		if item != 0 || !errors.Is(err, context.DeadlineExceeded) {
			e.t.Fatalf("run %d: Lock whose ctx deadline passed during the attempt = (%d, %v); want (0, error matching context.DeadlineExceeded)", i, item, err)
		}
	}
	e.mustBeFree(e.peer, key)

	if _, ok := e.h.(Faulter); !ok {
		return
	}
	// The same through a real client whose replies come late.
	fname, f := e.faulty()
	f.Delay(time.Second)
	for i := range 3 {
		ctx, cancel := context.WithTimeout(e.ctx, 100*time.Millisecond)
		err := xsync.New(fname, e.key(fmt.Sprint("slow", i))).Run(ctx, cb)
		cancel()
		if !xsync.IsMissingLockErr(err) || !errors.Is(err, context.DeadlineExceeded) {
			e.t.Errorf("Run with replies 1s late and a 100ms ctx = %v; want ErrMissingLock and context.DeadlineExceeded", err)
		}
	}
}

func outageIsNotContention(e *env) {
	key := e.key("k")
	w := &wrapped{base: e.l}
	w.acquire = func(context.Context, string, time.Duration) (int64, error) { return 0, errStoreDown }
	name := e.register("refusing", w)
	cb := func(context.Context) error { return errors.New("callback ran") }
	check := func(what string, err error, ctxEnded bool) {
		e.t.Helper()
		switch {
		case err == nil:
			e.t.Errorf("%s = nil; want an error", what)
		case xsync.IsMissingLockErr(err):
			e.t.Errorf("%s = %v; matches ErrMissingLock, but nobody held the key: the store was down", what, err)
		case ctxEnded && !errors.Is(err, context.DeadlineExceeded):
			e.t.Errorf("%s = %v; want it to match context.DeadlineExceeded too", what, err)
		}
	}
	err := xsync.New(name, key).Run(e.ctx, cb)
	check("Run without retry on a store that refuses connections", err, false)
	if !errors.Is(err, errStoreDown) {
		e.t.Errorf("Run = %v; want it to wrap the client's error", err)
	}
	a := xsync.New(name, key)
	if err := a.SetRetry(1000, 10*time.Millisecond); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 150*time.Millisecond)
	err = a.Run(ctx, cb)
	cancel()
	check("Run retrying on a store that refuses connections until ctx ended", err, true)
	if !errors.Is(err, errStoreDown) {
		e.t.Errorf("Run = %v; want it to wrap the client's error", err)
	}

	if _, ok := e.h.(Faulter); !ok {
		return
	}
	// The same through a real client whose store is gone.
	fname, f := e.faulty()
	f.Down()
	fkey := e.key("down")
	ctx, cancel = context.WithTimeout(e.ctx, 500*time.Millisecond)
	item, err := xsync.Lock(ctx, fname, fkey, e.exp)
	cancel()
	if item != 0 || err == nil {
		e.t.Errorf("Lock on an unreachable store = (%d, %v); want (0, an error): contention is (0, nil)", item, err)
	}
	ctx, cancel = context.WithTimeout(e.ctx, 500*time.Millisecond)
	err = xsync.New(fname, fkey).Run(ctx, cb)
	cancel()
	check("Run without retry on an unreachable store", err, false)
	a = xsync.New(fname, fkey)
	if err := a.SetRetry(1000, 20*time.Millisecond); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(e.ctx, 500*time.Millisecond)
	err = a.Run(ctx, cb)
	cancel()
	check("Run retrying on an unreachable store until ctx ended", err, false)
	e.t.Logf("Run on an unreachable store: %v", err)
}

func noOrphanAfterCancelledAcquire(e *env) {
	name, f := e.faulty()
	const exp = 30 // seconds: an orphan would outlive the test's patience
	// Connections up first, so that the requests below reach the store.
	e.mustBeFree(name, e.key("warm-up"))
	// A slow store: every reply 150ms late, beyond the callers' 50ms; a
	// clean-up still gets through within a fraction of a second.
	f.Delay(150 * time.Millisecond)
	// The requests reach the store; the clean-up of each call must have
	// freed its key by the time the call returns, or soon after (its own
	// reply may still be on the way): far sooner than the 30s TTL. The peer
	// client's link is healthy.
	freed := func(what, key string) {
		returned := time.Now()
		for {
			got, err := xsync.Lock(e.ctx, e.peer, key, e.exp)
			if err != nil {
				e.t.Fatalf("peer Lock(%q): %v", key, err)
			}
			if got.HasLock() {
				e.t.Logf("%s: key free %v after the call returned", what, time.Since(returned).Round(time.Millisecond))
				e.unlock(e.peer, key, got, true)
				return
			}
			if time.Since(returned) > 2*time.Second {
				e.t.Errorf("%s cut short by its context left the key held for 2s (TTL %ds) with no Item able to release it: an orphaned lock", what, exp)
				return
			}
			e.sleepUntil(time.Now().Add(20 * time.Millisecond))
		}
	}
	// Callers give up at 50ms, before any reply; or at 250ms, after the
	// first reply but before the second (a backend that needs two round
	// trips to lock, such as a lease and then a transaction).
	for _, wait := range []time.Duration{50 * time.Millisecond, 250 * time.Millisecond} {
		key := e.key(fmt.Sprint("run-", wait))
		a := xsync.New(name, key)
		if err := a.SetExp(exp * time.Second); err != nil {
			e.t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(e.ctx, wait)
		_ = a.Run(ctx, func(context.Context) error { return nil }) // if it got the lock, Run releases it
		cancel()
		freed(fmt.Sprintf("Run with a %v ctx", wait), key)

		key = e.key(fmt.Sprint("lock-", wait))
		ctx, cancel = context.WithTimeout(e.ctx, wait)
		item, _ := xsync.Lock(ctx, name, key, exp)
		cancel()
		if item.HasLock() {
			e.unlock(e.peer, key, item, true)
		}
		freed(fmt.Sprintf("Lock with a %v ctx", wait), key)
	}
}

func retryBudget(e *env) {
	key := e.key("k")
	var (
		mu     sync.Mutex
		cur    = e.lock(e.peer, key, 60)
		churns int
	)
	const churn = 10
	name, c := e.instrument(func() {
		// Each time the waiter finds the key held, the holder releases it
		// and takes it again: every release notifies the waiter (on a
		// backend that notifies), and it finds the key held again.
		mu.Lock()
		defer mu.Unlock()
		if churns >= churn {
			return
		}
		churns++
		if ok, err := cur.Unlock(e.ctx, e.peer, key); !ok || err != nil {
			e.t.Errorf("holder's Unlock = (%v, %v)", ok, err)
			return
		}
		next, err := xsync.Lock(e.ctx, e.peer, key, 60)
		if err != nil || !next.HasLock() {
			e.t.Errorf("holder's Lock again = (%d, %v)", next, err)
			return
		}
		cur = next
	})
	const retries, interval = 3, 200 * time.Millisecond
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
	n := len(c.attempts())
	// Three timed retries wait at least interval/2 each, whatever the
	// notifications did in between.
	if elapsed < retries*interval/2 {
		e.t.Errorf("SetRetry(%d, %v) gave up after %v and %d attempts: wake-ups used up the retries", retries, interval, elapsed, n)
	}
	e.t.Logf("gave up after %v and %d attempts (%d releases woke it)", elapsed.Round(time.Millisecond), n, churns)
	mu.Lock()
	defer mu.Unlock()
	e.unlock(e.peer, key, cur, true)
}

func keyLimits(e *env) {
	big := e.key("")
	big += strings.Repeat("k", xsync.MaxKeyLen-len(big))
	item := e.lock(e.name, big, e.exp)
	e.mustBeHeld(e.peer, big)
	cb := func(context.Context) error { return errors.New("callback ran") }
	err := xsync.New(e.peer, big).Run(e.ctx, cb)
	if !xsync.IsMissingLockErr(err) {
		e.t.Errorf("Run on a held %d-byte key = %v; want ErrMissingLock", len(big), err)
	} else if len(err.Error()) > maxErrorLen {
		e.t.Errorf("contention error for a %d-byte key is %d bytes long; want at most %d: keys in messages must be shortened", len(big), len(err.Error()), maxErrorLen)
	}
	a := xsync.New(e.peer, big)
	if err := a.SetRetry(100, 20*time.Millisecond); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 50*time.Millisecond)
	err = a.Run(ctx, cb)
	cancel()
	if err == nil || len(err.Error()) > maxErrorLen {
		e.t.Errorf("Run on a held %d-byte key until ctx ended = %d-byte error; want an error of at most %d", len(big), len(fmt.Sprint(err)), maxErrorLen)
	}
	e.unlock(e.name, big, item, true)

	name, c := e.instrument(nil)
	tooBig := big + "k"
	if item, err := xsync.Lock(e.ctx, name, tooBig, e.exp); item != 0 || !errors.Is(err, xsync.ErrInvalid) || len(err.Error()) > maxErrorLen {
		e.t.Errorf("Lock with a key of MaxKeyLen+1 bytes = (%d, %d-byte error %.200v); want (0, a short ErrInvalid)", item, len(fmt.Sprint(err)), err)
	}
	if err := xsync.New(name, tooBig).Run(e.ctx, cb); !errors.Is(err, xsync.ErrInvalid) {
		e.t.Errorf("Run with a key of MaxKeyLen+1 bytes = %.200v; want ErrInvalid", err)
	}
	if ok, err := xsync.Item(1).Unlock(e.ctx, name, tooBig); ok || !errors.Is(err, xsync.ErrInvalid) {
		e.t.Errorf("Unlock with a key of MaxKeyLen+1 bytes = (%v, %.200v); want (false, ErrInvalid)", ok, err)
	}
	if n := c.calls.Load(); n != 0 {
		e.t.Errorf("keys over MaxKeyLen reached the backend %d times; want 0", n)
	}
}

// tinyTTL: the shortest TTL the API accepts (a millisecond) is granted on
// a free key, rounded up to the backend's precision, or refused as bad
// input (ErrInvalid, before any call) where the backend cannot trust so
// short a lock at all. An attempt is never cut short sooner than the TTL
// the backend actually grants, so a healthy store is not reported down,
// also when its round trip is longer than the TTL asked for.
func tinyTTL(e *env) {
	type try struct {
		name    string
		acquire func(ctx context.Context, c *xsync.Client, opts ...xsync.AcquireOption) (*xsync.Lease, error)
	}
	tries := []try{{"a mutex", func(ctx context.Context, c *xsync.Client, opts ...xsync.AcquireOption) (*xsync.Lease, error) {
		return c.Acquire(ctx, e.key("mutex"), opts...)
	}}}
	for _, k := range e.otherKinds("") {
		tries = append(tries, try{k.name, k.acquire})
	}
	clients := []*xsync.Client{e.client()}
	if _, ok := e.h.(Faulter); ok {
		name, f := e.faulty()
		f.Delay(20 * time.Millisecond) // a round trip longer than the TTL asked for
		c, err := xsync.Registered(name)
		if err != nil {
			e.t.Fatal(err)
		}
		clients = append(clients, c)
	}
	for i, c := range clients {
		for _, tr := range tries {
			for range 5 {
				l, err := tr.acquire(e.ctx, c, xsync.WithTTL(time.Millisecond))
				switch {
				case err == nil:
					_, _ = l.Release(e.ctx)
				case errors.Is(err, xsync.ErrInvalid):
				default:
					e.t.Fatalf("%s with a 1ms TTL on a free key (client %d) = %v; want it granted (rounded up), or ErrInvalid", tr.name, i, err)
				}
			}
		}
	}
}
