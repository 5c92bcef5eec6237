package xsync_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend/memory"
)

// recorder keeps every event it observes.
type recorder struct {
	mu     sync.Mutex
	events []xsync.Event
	starts int
}

func (r *recorder) Observe(_ context.Context, e xsync.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) kinds() []xsync.EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []xsync.EventKind
	for _, e := range r.events {
		out = append(out, e.Kind)
	}
	return out
}

type starter struct{ *recorder }

type startKey struct{}

func (s starter) StartRun(ctx context.Context, _, _ string) context.Context {
	s.mu.Lock()
	s.starts++
	s.mu.Unlock()
	return context.WithValue(ctx, startKey{}, "started")
}

func TestObserverDefaultAndPerName(t *testing.T) {
	name := use(t, memory.New())
	def, own := &recorder{}, &recorder{}
	t.Cleanup(xsync.SetObserver("", def))
	_, err := xsync.Lock(t.Context(), name, "k", 1)
	require.NoError(t, err)
	assert.Equal(t, []xsync.EventKind{xsync.KindAttempt}, def.kinds(), "the default observer sees a backend without its own")
	restore := xsync.SetObserver(name, own)
	_, err = xsync.Lock(t.Context(), name, "k2", 1)
	require.NoError(t, err)
	assert.Len(t, own.kinds(), 1, "a backend's own observer wins")
	assert.Len(t, def.kinds(), 1)
	restore()
	_, err = xsync.Lock(t.Context(), name, "k3", 1)
	require.NoError(t, err)
	assert.Len(t, def.kinds(), 2, "restored: the default again")
}

func TestObserverRunEventsAndTee(t *testing.T) {
	name := use(t, memory.New())
	a, b := &recorder{}, starter{&recorder{}}
	t.Cleanup(xsync.SetObserver(name, xsync.Tee(a, nil, b)))
	var seen any
	require.NoError(t, xsync.New(name, "k").Run(t.Context(), func(ctx context.Context) error {
		seen = ctx.Value(startKey{})
		return nil
	}))
	want := []xsync.EventKind{xsync.KindAttempt, xsync.KindWait, xsync.KindHold, xsync.KindRelease}
	assert.Equal(t, want, a.kinds())
	assert.Equal(t, want, b.kinds())
	assert.Equal(t, 1, b.starts)
	assert.Equal(t, "started", seen, "the callback's context comes from StartRun's")
	for _, e := range a.events {
		assert.True(t, e.Run)
		assert.Equal(t, name, e.Backend)
		assert.Positive(t, e.Token)
	}
}

// lostSignal is a recorder that also says when a KindLost arrives.
type lostSignal struct {
	recorder
	lost chan struct{}
}

func (r *lostSignal) Observe(ctx context.Context, e xsync.Event) {
	r.recorder.Observe(ctx, e)
	if e.Kind == xsync.KindLost {
		close(r.lost)
	}
}

// Every hold is observed the same way, whatever its kind and whether
// Acquire or Run took it: attempt, wait, hold, release; and a lease lost
// at its deadline reports the end of its hold and the loss.
func TestEveryKindObservedAlike(t *testing.T) {
	t.Parallel()
	type kind struct {
		lock, key string
		acquire   func(c *xsync.Client, ctx context.Context, opts ...xsync.AcquireOption) (*xsync.Lease, error)
		run       func(c *xsync.Client, ctx context.Context, cb func(context.Context) error, opts ...xsync.AcquireOption) error
	}
	kinds := []kind{
		{"mutex", "k", func(c *xsync.Client, ctx context.Context, opts ...xsync.AcquireOption) (*xsync.Lease, error) {
			return c.Acquire(ctx, "k", opts...)
		}, func(c *xsync.Client, ctx context.Context, cb func(context.Context) error, opts ...xsync.AcquireOption) error {
			return c.Run(ctx, "k", cb, opts...)
		}},
		{"semaphore", "k", func(c *xsync.Client, ctx context.Context, opts ...xsync.AcquireOption) (*xsync.Lease, error) {
			return c.Semaphore("k", 2).Acquire(ctx, opts...)
		}, func(c *xsync.Client, ctx context.Context, cb func(context.Context) error, opts ...xsync.AcquireOption) error {
			return c.Semaphore("k", 2).Run(ctx, cb, opts...)
		}},
		{"read", "k", func(c *xsync.Client, ctx context.Context, opts ...xsync.AcquireOption) (*xsync.Lease, error) {
			return c.RWLock("k").AcquireRead(ctx, opts...)
		}, func(c *xsync.Client, ctx context.Context, cb func(context.Context) error, opts ...xsync.AcquireOption) error {
			return c.RWLock("k").RunRead(ctx, cb, opts...)
		}},
		{"write", "k", func(c *xsync.Client, ctx context.Context, opts ...xsync.AcquireOption) (*xsync.Lease, error) {
			return c.RWLock("k").AcquireWrite(ctx, opts...)
		}, func(c *xsync.Client, ctx context.Context, cb func(context.Context) error, opts ...xsync.AcquireOption) error {
			return c.RWLock("k").RunWrite(ctx, cb, opts...)
		}},
		{"keys", "a b", func(c *xsync.Client, ctx context.Context, opts ...xsync.AcquireOption) (*xsync.Lease, error) {
			return c.AcquireAll(ctx, []string{"a", "b"}, opts...)
		}, func(c *xsync.Client, ctx context.Context, cb func(context.Context) error, opts ...xsync.AcquireOption) error {
			return c.RunAll(ctx, []string{"a", "b"}, cb, opts...)
		}},
	}
	check := func(t *testing.T, k kind, events []xsync.Event, run bool, want ...xsync.EventKind) {
		t.Helper()
		var got []xsync.EventKind
		for _, e := range events {
			got = append(got, e.Kind)
			assert.Equal(t, k.lock, e.Lock, "%s event", e.Kind)
			assert.Equal(t, "obs", e.Backend, "%s event", e.Kind)
			assert.Equal(t, k.key, e.Key, "%s event", e.Kind)
			assert.Equal(t, run, e.Run, "%s event", e.Kind)
			assert.Positive(t, e.Token, "%s event", e.Kind)
		}
		assert.Equal(t, want, got)
	}
	for _, k := range kinds {
		t.Run(k.lock, func(t *testing.T) {
			t.Parallel()
			clock := memory.NewManualClock(time.Unix(1_800_000_000, 0))
			r := &lostSignal{lost: make(chan struct{})}
			c := xsync.NewClient(memory.New(memory.WithClock(clock.Now)), xsync.WithClock(clock), xsync.WithName("obs"), xsync.WithObserver(r))
			ctx := t.Context()

			lease, err := k.acquire(c, ctx)
			require.NoError(t, err)
			released, err := lease.Release(ctx)
			require.NoError(t, err)
			require.True(t, released)
			check(t, k, r.take(), false, xsync.KindAttempt, xsync.KindWait, xsync.KindHold, xsync.KindRelease)

			require.NoError(t, k.run(c, ctx, func(context.Context) error { return nil }))
			check(t, k, r.take(), true, xsync.KindAttempt, xsync.KindWait, xsync.KindHold, xsync.KindRelease)

			lease, err = k.acquire(c, ctx, xsync.WithTTL(time.Second))
			require.NoError(t, err)
			clock.Advance(2 * time.Second)
			<-lease.Done()
			<-r.lost // reported by the lease's timer, right after Done closed
			events := r.take()
			check(t, k, events, false, xsync.KindAttempt, xsync.KindWait, xsync.KindHold, xsync.KindLost)
			assert.Equal(t, xsync.OutcomeLost, events[2].Outcome)
			assert.ErrorIs(t, events[3].Err, xsync.ErrLockLost)
			assert.ErrorIs(t, lease.Err(), xsync.ErrLockLost)
		})
	}
}

// take returns the events recorded so far and forgets them.
func (r *recorder) take() []xsync.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}
