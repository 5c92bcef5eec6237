package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend/memory"
)

// newService gives each test its own backend, clock and client: no global
// registry, so the tests run in parallel.
func newService(t *testing.T) (*Payments, *xsync.Client, *memory.ManualClock) {
	t.Helper()
	clock := memory.NewManualClock(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	locks := xsync.NewClient(memory.New(memory.WithClock(clock.Now)), xsync.WithClock(clock))
	return NewPayments(locks), locks, clock
}

func TestOnePaymentPerOrder(t *testing.T) {
	t.Parallel()
	p, _, _ := newService(t)
	ctx := t.Context()
	charging, finish := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- p.Pay(ctx, "o1", func(context.Context) error { close(charging); <-finish; return nil })
	}()
	<-charging
	err := p.Pay(ctx, "o1", func(context.Context) error { return errors.New("charged twice") })
	assert.True(t, xsync.IsMissingLockErr(err), "a concurrent payment is busy: %v", err)
	close(finish)
	require.NoError(t, <-done)
	assert.ErrorIs(t, p.Pay(ctx, "o1", func(context.Context) error { return nil }), ErrAlreadyPaid)
	require.NoError(t, p.Pay(ctx, "o2", func(context.Context) error { return nil }), "other orders are independent")
}

// The lock expires during a slow charge (the clock moves past the TTL):
// the charge's context ends with ErrLockLost, and nothing is recorded.
func TestLockLostDuringCharge(t *testing.T) {
	t.Parallel()
	p, _, clock := newService(t)
	charging := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- p.Pay(t.Context(), "o1", func(ctx context.Context) error {
			close(charging)
			<-ctx.Done() // a slow provider, cut off when the lock is lost
			return context.Cause(ctx)
		})
	}()
	<-charging
	clock.Advance(31 * time.Second)
	err := <-done
	assert.ErrorIs(t, err, xsync.ErrLockLost)
	assert.False(t, p.isPaid("o1"), "nothing recorded under a lost lock")
}

// A holder that vanished (it never releases) blocks the order until its
// TTL passes on the clock; a waiter then takes over at once.
func TestWaiterTakesOverAbandonedLock(t *testing.T) {
	t.Parallel()
	_, locks, clock := newService(t)
	ctx := t.Context()
	abandoned, err := locks.Acquire(ctx, "pay:o1", xsync.WithTTL(30*time.Second))
	require.NoError(t, err)

	waiting := make(chan struct{}, 1)
	waiter := xsync.NewClient(memoryOf(t, locks), xsync.WithClock(clock), xsync.WithObserver(observerFunc(func(e xsync.Event) {
		if e.Kind == xsync.KindAttempt && e.Outcome == xsync.OutcomeHeld {
			select {
			case waiting <- struct{}{}:
			default:
			}
		}
	})))
	got := make(chan *xsync.Lease, 1)
	go func() {
		l, err := waiter.Acquire(ctx, "pay:o1", xsync.WithTTL(30*time.Second), xsync.WithWait(time.Minute))
		assert.NoError(t, err)
		got <- l
	}()
	<-waiting // the waiter found the key held
	// Pending on the clock: the abandoned lease's expiry and the waiter's
	// next retry.
	require.NoError(t, clock.BlockUntil(ctx, 2))
	select {
	case <-got:
		t.Fatal("the waiter got a held lock")
	default:
	}
	clock.Advance(31 * time.Second)
	l := <-got
	require.NotNil(t, l)
	assert.Greater(t, l.Token(), abandoned.Token(), "a larger fencing token")
	select {
	case <-abandoned.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the abandoned lease did not end")
	}
	assert.ErrorIs(t, abandoned.Err(), xsync.ErrLockLost)
}

// memoryOf is the backend behind a test's client: tests keep it to build
// a second client of the same store.
func memoryOf(t *testing.T, c *xsync.Client) xsync.Locker {
	t.Helper()
	return c.Locker()
}

type observerFunc func(xsync.Event)

func (f observerFunc) Observe(_ context.Context, e xsync.Event) { f(e) }
