package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/wrap"
)

// The rules about the core alone: validation, retry policy, the timer
// that keeps a lease's deadline, the errors of faked client failures, the
// observer's events. They hold or fail the same way on every backend, so
// the suite's own tests run them once ([RunCore]); a backend need not.

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

func lostSignalOnTime(e *env) {
	needRefresher(e)
	key := e.key("k")
	unblock := make(chan struct{})
	hung := newSignal()
	w := &wrap.Locker{Base: e.l}
	w.Hooks.Refresh = func(context.Context, wrap.Ref, backend.Refresher, int64, time.Duration) (bool, error) {
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

// deadlineDuringAttemptFaked: a client whose read deadline (ctx's) fires
// before ctx's own timer marks ctx done: Run reports ErrMissingLock and
// the deadline, Lock the deadline.
func deadlineDuringAttemptFaked(e *env) {
	key := e.key("k")
	w := &wrap.Locker{Base: e.l}
	w.Hooks.Acquire = func(ctx context.Context, _ wrap.Ref, base backend.Lock, r backend.Request) (int64, error) {
		d, ok := ctx.Deadline()
		if !ok {
			return base.Acquire(ctx, r)
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
}

// outageFaked: a client whose store refuses connections: Run reports the
// client's error, never ErrMissingLock, also when ctx ends while it
// retries (then with ctx's error too).
func outageFaked(e *env) {
	key := e.key("k")
	w := &wrap.Locker{Base: e.l}
	w.Hooks.Acquire = func(context.Context, wrap.Ref, backend.Lock, backend.Request) (int64, error) { return 0, errStoreDown }
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
}

// keyTooLong: a key over MaxKeyLen is ErrInvalid for Lock, Run and
// Unlock, with a short message, and never reaches the backend.
func keyTooLong(e *env) {
	cb := func(context.Context) error { return errors.New("callback ran") }
	big := e.key("")
	big += strings.Repeat("k", xsync.MaxKeyLen-len(big))
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
