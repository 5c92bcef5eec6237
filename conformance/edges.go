package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/xsync-go/xsync"
)

// The rules at the edges: what the caller is told when a client's replies
// come late, a context ends mid-request, or the store cannot be reached;
// no lock orphaned by an attempt cut short; the longest key and the
// shortest TTL.

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

func (timeoutError) Error() string { return "conformance: read tcp: i/o timeout" }

func (timeoutError) Timeout() bool { return true }

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

// deadlineDuringAttempt: a real client whose replies come after the
// caller's deadline: Run reports ErrMissingLock and the deadline.
func deadlineDuringAttempt(e *env) {
	cb := func(context.Context) error { return errors.New("callback ran") }
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

// outageIsNotContention: a real client whose store is gone: Lock and Run
// report the backend's error, never ErrMissingLock, also when ctx ends
// while Run retries.
func outageIsNotContention(e *env) {
	cb := func(context.Context) error { return errors.New("callback ran") }
	check := func(what string, err error) {
		e.t.Helper()
		switch {
		case err == nil:
			e.t.Errorf("%s = nil; want an error", what)
		case xsync.IsMissingLockErr(err):
			e.t.Errorf("%s = %v; matches ErrMissingLock, but nobody held the key: the store was down", what, err)
		}
	}
	fname, f := e.faulty()
	f.Down()
	fkey := e.key("down")
	ctx, cancel := context.WithTimeout(e.ctx, 500*time.Millisecond)
	item, err := xsync.Lock(ctx, fname, fkey, e.exp)
	cancel()
	if item != 0 || err == nil {
		e.t.Errorf("Lock on an unreachable store = (%d, %v); want (0, an error): contention is (0, nil)", item, err)
	}
	ctx, cancel = context.WithTimeout(e.ctx, 500*time.Millisecond)
	err = xsync.New(fname, fkey).Run(ctx, cb)
	cancel()
	check("Run without retry on an unreachable store", err)
	a := xsync.New(fname, fkey)
	if err := a.SetRetry(1000, 20*time.Millisecond); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(e.ctx, 500*time.Millisecond)
	err = a.Run(ctx, cb)
	cancel()
	check("Run retrying on an unreachable store until ctx ended", err)
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
