package conformance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/xsync-go/xsync"
)

// The rules of Run on the backend: the callback's context and error, the
// release at its end (also on panic and cancellation), waiting for a held
// key, and auto-extension.

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

func runRetryHandoff(e *env) {
	key := e.key("k")
	item := e.lock(e.peer, key, 60)
	held := newSignal()
	name, _ := e.instrument(held.fire)
	notifies := e.notifies()
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

func runRetryAfterExpiry(e *env) {
	key := e.key("k")
	start := time.Now()
	abandoned := e.lock(e.peer, key, e.exp) // never released: a crashed holder
	notifies := e.notifies()
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

func needRefresher(e *env) {
	if !e.refreshes() {
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
