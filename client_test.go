package xsync_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/backend/memory"
)

// manual returns a client and its memory backend on a manual clock.
func manual(t *testing.T) (*xsync.Client, *memory.Locker, *memory.ManualClock) {
	t.Helper()
	clock := memory.NewManualClock(time.Unix(1_800_000_000, 0))
	l := memory.New(memory.WithClock(clock.Now))
	return xsync.NewClient(l, xsync.WithClock(clock)), l, clock
}

func TestClientBadInputNeverReachesBackend(t *testing.T) {
	t.Parallel()
	f := &faulty{acquire: []result{{token: 1}}}
	c := xsync.NewClient(f)
	ctx := t.Context()
	for name, opts := range map[string][]xsync.AcquireOption{
		"ttl 0":                  {xsync.WithTTL(0)},
		"negative wait":          {xsync.WithWait(-2 * time.Second)},
		"zero interval":          {xsync.WithRetryInterval(0)},
		"negative max hold":      {xsync.WithAutoExtend(-time.Second)},
		"negative hold":          {xsync.WithHoldAtLeast(-time.Second)},
		"owner too long":         {xsync.WithOwner(strings.Repeat("o", xsync.MaxOwnerLen))},
		"extend unsupported":     {xsync.WithAutoExtend(0)},
		"hold > ttl, no refresh": {xsync.WithTTL(time.Second), xsync.WithHoldAtLeast(time.Minute)},
	} {
		_, err := c.Acquire(ctx, "k", opts...)
		assert.Error(t, err, name)
		assert.True(t, errors.Is(err, xsync.ErrInvalid) || errors.Is(err, errors.ErrUnsupported), "%s: %v", name, err)
		assert.Error(t, c.Run(ctx, "k", func(context.Context) error { return nil }, opts...), name)
	}
	_, err := c.Acquire(ctx, "")
	assert.ErrorIs(t, err, xsync.ErrInvalid)
	assert.ErrorIs(t, c.Run(ctx, "k", nil), xsync.ErrInvalid)
	_, err = c.Inspect(ctx, "k")
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = c.ForceRelease(ctx, "k")
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	assert.Zero(t, f.calls.Load(), "bad input reached the backend")
	assert.Panics(t, func() { xsync.NewClient(nil) })

	// A lease on a backend without the capabilities says so.
	l, err := c.Acquire(ctx, "k")
	require.NoError(t, err)
	assert.ErrorIs(t, l.Extend(ctx, 0), errors.ErrUnsupported)
	_, err = l.TTL(ctx)
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	assert.ErrorIs(t, l.Extend(ctx, -time.Second), xsync.ErrInvalid)
	f.release = result{ok: true}
	ok, err := l.Release(ctx)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.ErrorIs(t, l.Err(), xsync.ErrReleased)
}

func TestRegistered(t *testing.T) {
	_, err := xsync.Registered("no-such-backend")
	assert.ErrorIs(t, err, xsync.ErrUnknownBackend)
	l := memory.New()
	name := use(t, l)
	c, err := xsync.Registered(name)
	require.NoError(t, err)
	assert.Same(t, l, c.Locker())
}

// A lease on a manual clock: held until its deadline, lost exactly when
// the clock passes it, with ErrLockLost; Extend moves the deadline.
func TestLeaseOnManualClock(t *testing.T) {
	t.Parallel()
	c, _, clock := manual(t)
	ctx := t.Context()
	l, err := c.Acquire(ctx, "k", xsync.WithTTL(10*time.Second))
	require.NoError(t, err)
	assert.Equal(t, clock.Now().Add(10*time.Second), l.Deadline())

	clock.Advance(9 * time.Second)
	require.NoError(t, l.Extend(ctx, 10*time.Second))
	assert.Equal(t, clock.Now().Add(10*time.Second), l.Deadline())
	ttl, err := l.TTL(ctx)
	require.NoError(t, err)
	assert.Equal(t, 10*time.Second, ttl)

	clock.Advance(10 * time.Second)
	<-l.Done()
	assert.ErrorIs(t, l.Err(), xsync.ErrLockLost)
	assert.ErrorIs(t, l.Extend(ctx, 0), xsync.ErrLockLost, "a lost lease cannot be extended")
	ok, err := l.Release(ctx)
	require.NoError(t, err)
	assert.False(t, ok)
}

// Auto-extension on a manual clock: renewals every TTL/3 keep the lease
// alive across many TTLs; the cap ends it.
func TestLeaseAutoExtendOnManualClock(t *testing.T) {
	t.Parallel()
	c, store, clock := manual(t)
	ctx := t.Context()
	l, err := c.Acquire(ctx, "k", xsync.WithTTL(3*time.Second), xsync.WithAutoExtend(time.Minute))
	require.NoError(t, err)
	for range 30 { // 30 renewals: 30 s, ten TTLs
		// Pending: the expiry, the cap, and the renewal's next tick.
		require.NoError(t, clock.BlockUntil(ctx, 3))
		d := l.Deadline()
		clock.Advance(time.Second)
		require.NoError(t, clock.BlockUntil(ctx, 3)) // renewed, and the next tick armed
		require.True(t, l.Deadline().After(d), "a renewal moved the deadline")
		require.NoError(t, l.Err())
	}
	info, err := store.Mutex("k").(backend.Inspector).Inspect(ctx)
	require.NoError(t, err)
	assert.Len(t, info.Holders, 1, "held")
	clock.Advance(time.Minute)
	<-l.Done()
	assert.ErrorIs(t, l.Err(), xsync.ErrLockLost, "the cap ends the lease")
	_, err = l.Release(ctx)
	require.NoError(t, err)
}

// A lease whose renewal finds the lock gone (an operator forced it out)
// ends at once with ErrLockLost.
func TestLeaseLostWhenForcedOut(t *testing.T) {
	t.Parallel()
	c, _, clock := manual(t)
	ctx := t.Context()
	l, err := c.Acquire(ctx, "k", xsync.WithTTL(3*time.Second), xsync.WithAutoExtend(0), xsync.WithOwner("batch"))
	require.NoError(t, err)
	info, err := c.Inspect(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, l.Token(), info.Token)
	assert.Contains(t, info.Owner, "batch")
	freed, err := c.ForceRelease(ctx, "k")
	require.NoError(t, err)
	require.True(t, freed)
	require.NoError(t, clock.BlockUntil(ctx, 2)) // the expiry and the renewal's tick
	clock.Advance(time.Second)                   // the next renewal
	<-l.Done()
	assert.ErrorIs(t, l.Err(), xsync.ErrLockLost)
	next, err := c.Acquire(ctx, "k")
	require.NoError(t, err)
	assert.Greater(t, next.Token(), l.Token(), "force-release keeps the fencing counter")
}

// Run on a manual clock: the callback's context carries the deadline and
// ends with ErrLockLost when the clock passes it.
func TestClientRunLosesLockOnManualClock(t *testing.T) {
	t.Parallel()
	c, _, clock := manual(t)
	in := make(chan context.Context)
	done := make(chan error)
	go func() {
		done <- c.Run(t.Context(), "k", func(ctx context.Context) error {
			in <- ctx
			<-ctx.Done()
			return nil
		}, xsync.WithTTL(5*time.Second))
	}()
	ctx := <-in
	dl, ok := ctx.Deadline()
	assert.True(t, ok)
	assert.Equal(t, clock.Now().Add(5*time.Second), dl)
	assert.NoError(t, ctx.Err())
	clock.Advance(5 * time.Second)
	assert.ErrorIs(t, <-done, xsync.ErrLockLost)
	assert.ErrorIs(t, context.Cause(ctx), xsync.ErrLockLost)
}

// WithWait is a deadline on the client's clock: a waiter gives up with
// ErrMissingLock once it has passed.
func TestWaitIsADeadline(t *testing.T) {
	t.Parallel()
	c, _, clock := manual(t)
	ctx := t.Context()
	_, err := c.Acquire(ctx, "k", xsync.WithTTL(time.Hour))
	require.NoError(t, err)
	errc := make(chan error)
	go func() {
		_, err := c.Acquire(ctx, "k", xsync.WithWait(time.Minute), xsync.WithRetryInterval(10*time.Second))
		errc <- err
	}()
	// Step the clock whenever the waiter has armed its next retry (the
	// holder's expiry is the other pending timer), until it gives up.
	bctx, stop := context.WithCancel(ctx)
	defer stop()
	start := clock.Now()
	for {
		armed := make(chan error, 1)
		go func() { armed <- clock.BlockUntil(bctx, 2) }()
		select {
		case err := <-errc:
			assert.True(t, xsync.IsMissingLockErr(err), "%v", err)
			waited := clock.Now().Sub(start)
			assert.True(t, waited >= time.Minute && waited <= 70*time.Second, "gave up after %v of a 1m wait", waited)
			return
		case <-armed:
		}
		clock.Advance(10 * time.Second)
	}
}

// After Release, Extend and TTL say the lease was released, and not that
// it was lost.
func TestLeaseAfterRelease(t *testing.T) {
	t.Parallel()
	c, _, _ := manual(t)
	ctx := t.Context()
	l, err := c.Acquire(ctx, "k")
	require.NoError(t, err)
	ok, err := l.Release(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	err = l.Extend(ctx, 0)
	assert.ErrorIs(t, err, xsync.ErrReleased)
	assert.NotErrorIs(t, err, xsync.ErrLockLost)
	_, err = l.TTL(ctx)
	assert.ErrorIs(t, err, xsync.ErrReleased)
	assert.NotErrorIs(t, err, xsync.ErrLockLost)
}

// A callback that returns ctx.Err() after its lock was lost gets one
// error, on one line, that matches both.
func TestLossAndCallbackErrorOneLine(t *testing.T) {
	t.Parallel()
	c, _, clock := manual(t)
	err := c.Run(t.Context(), "k", func(ctx context.Context) error {
		clock.Advance(time.Hour)
		<-ctx.Done()
		return ctx.Err()
	}, xsync.WithTTL(time.Second))
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, xsync.ErrLockLost)
	assert.NotContains(t, err.Error(), "\n")
	t.Log(err)
}

// What a client registers on a manual clock, as ManualClock.BlockUntil's
// documentation counts it.
func TestManualClockTimers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, _, clock := manual(t)
	l, err := c.Acquire(ctx, "plain", xsync.WithTTL(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 1, clock.Pending(), "a lease: its deadline")
	capped, err := c.Acquire(ctx, "capped", xsync.WithTTL(time.Minute), xsync.WithAutoExtend(time.Hour))
	require.NoError(t, err)
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, clock.BlockUntil(bctx, 4), "a lease with a cap and renewal: deadline, cap, next renewal")
	assert.Equal(t, 4, clock.Pending())
	got := make(chan error, 1)
	go func() {
		_, err := c.Acquire(ctx, "plain", xsync.WithWait(time.Minute), xsync.WithRetryInterval(time.Second))
		got <- err
	}()
	require.NoError(t, clock.BlockUntil(bctx, 5), "a waiter: its next attempt")
	assert.Equal(t, 5, clock.Pending(), "a waiter: its next attempt alone")
	mustRelease(t, l)
	mustRelease(t, capped)
	clock.Advance(time.Second)
	require.NoError(t, <-got)
}

func mustRelease(t *testing.T, l *xsync.Lease) {
	t.Helper()
	ok, err := l.Release(context.Background())
	require.NoError(t, err)
	require.True(t, ok)
}

// A client is named in messages by what the user gave: WithName, or the
// backend's package.
func TestClientNamedByBackend(t *testing.T) {
	t.Parallel()
	f := &faulty{acquire: []result{{err: errServer}}}
	_, err := xsync.NewClient(memory.New()).Acquire(t.Context(), "k", xsync.WithOwner(strings.Repeat("x", xsync.MaxOwnerLen)))
	require.ErrorIs(t, err, xsync.ErrInvalid)
	_, err = xsync.NewClient(f).Acquire(t.Context(), "k")
	require.ErrorIs(t, err, errServer)
	assert.Contains(t, err.Error(), `lock "k" on xsync_test: server on fire`, "an unnamed client is named by its backend's package")
	assert.Equal(t, 1, strings.Count(err.Error(), "xsync:"), "one prefix: %v", err)
	_, err = xsync.NewClient(&faulty{acquire: []result{{err: errServer}}}, xsync.WithName("orders")).Acquire(t.Context(), "k")
	assert.Contains(t, err.Error(), `lock "k" on orders: server on fire`)
}

// A lease released after its deadline, before its expiry was handled, is
// lost, not released: Run says so, even where the backend (which keeps
// its own time) still released the lock. On one P the alarm's goroutine
// cannot run before Run releases, which makes that order certain.
func TestRunReportsLossBeforeTheAlarm(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	clock := memory.NewManualClock(time.Unix(1_800_000_000, 0))
	for range 20 {
		f := &faulty{acquire: []result{{token: 1}}, release: result{ok: true}}
		c := xsync.NewClient(f, xsync.WithClock(clock))
		err := c.Run(t.Context(), "k", func(context.Context) error {
			clock.Advance(2 * time.Second) // the alarm's goroutine has not run yet
			return nil
		}, xsync.WithTTL(time.Second))
		require.ErrorIs(t, err, xsync.ErrLockLost)
	}
}
