package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/backend/memory"
	"github.com/xsync-go/xsync/conformance"
	"github.com/xsync-go/xsync/conformance/history"
	"github.com/xsync-go/xsync/internal/benchutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Harness { return &harness{l: memory.New()} })
}

// harness gives every subtest a Locker of its own; its "clients" are that
// one Locker, as in a single process.
type harness struct{ l *memory.Locker }

func (h *harness) Locker(*testing.T) backend.Locker { return h.l }
func (h *harness) Limits() conformance.Limits       { return conformance.Limits{} }
func (h *harness) Size(*testing.T) int              { return h.l.Len() }

func TestManualClockExpiresWithoutSleeping(t *testing.T) {
	clock := memory.NewManualClock(time.Unix(1_700_000_000, 0))
	l := memory.New(memory.WithClock(clock.Now))
	ctx := t.Context()

	tok, err := l.Acquire(ctx, "k", 10*time.Second)
	require.NoError(t, err)
	require.Positive(t, tok)

	clock.Advance(10*time.Second - time.Nanosecond)
	again, err := l.Acquire(ctx, "k", time.Second)
	require.NoError(t, err)
	assert.Zero(t, again, "held until the last nanosecond of its TTL")

	clock.Advance(time.Nanosecond)
	next, err := l.Acquire(ctx, "k", time.Second)
	require.NoError(t, err)
	assert.Greater(t, next, tok, "free at its TTL, with a larger token")

	ok, err := l.Release(ctx, "k", tok)
	require.NoError(t, err)
	assert.False(t, ok, "the expired holder cannot release the new lock")
	clock.Advance(-time.Hour) // ignored: the clock never goes back
	assert.Equal(t, 1, l.Len())
}

func TestManualClockWithCore(t *testing.T) {
	clock := memory.NewManualClock(time.Now())
	t.Cleanup(xsync.Swap("test-manual", memory.New(memory.WithClock(clock.Now))))
	item, err := xsync.Lock(t.Context(), "test-manual", "user:1", 60)
	require.NoError(t, err)
	require.True(t, item.HasLock())
	clock.Advance(time.Minute)
	next, err := xsync.Lock(t.Context(), "test-manual", "user:1", 60)
	require.NoError(t, err)
	assert.True(t, next.HasLock(), "a minute on the manual clock expired the lock")
}

func TestRefreshExtends(t *testing.T) {
	clock := memory.NewManualClock(time.Now())
	l := memory.New(memory.WithClock(clock.Now))
	ctx := t.Context()
	tok, _ := l.Acquire(ctx, "k", 2*time.Second)
	m := l.Mutex("k").(backend.Refresher)
	clock.Advance(time.Second)
	ok, err := m.Refresh(ctx, tok, 2*time.Second)
	require.NoError(t, err)
	require.True(t, ok)
	clock.Advance(1500 * time.Millisecond) // 2.5s after acquiring
	other, _ := l.Acquire(ctx, "k", time.Second)
	assert.Zero(t, other, "refreshed lock still held past its first TTL")
	ok, _ = m.Refresh(ctx, tok+1, time.Second)
	assert.False(t, ok, "another token cannot refresh")
	clock.Advance(time.Second)
	ok, _ = m.Refresh(ctx, tok, time.Second)
	assert.False(t, ok, "an expired lock cannot be refreshed")
}

// A waiter is woken when the holder's TTL runs out on the real clock, not
// only when it is released or its retry interval passes.
func TestWatchWakesAtExpiry(t *testing.T) {
	l := memory.New()
	ctx := t.Context()
	_, err := l.Acquire(ctx, "k", time.Second)
	require.NoError(t, err)
	ready, stop, err := watch(ctx, l, "k")
	require.NoError(t, err)
	defer stop()
	select {
	case <-ready:
		t.Fatal("woken while the key is held")
	default:
	}
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("not woken by the expiry")
	}
	tok, err := l.Acquire(ctx, "k", time.Second)
	require.NoError(t, err)
	assert.Positive(t, tok)
}

func TestWatchReadyWhenFree(t *testing.T) {
	l := memory.New()
	ready, stop, err := watch(t.Context(), l, "k")
	require.NoError(t, err)
	stop()
	stop() // idempotent
	select {
	case <-ready:
	default:
		t.Fatal("a watch on a free key must be ready at once")
	}
}

func TestWatchStopReleasesTimer(t *testing.T) {
	l := memory.New()
	ctx := t.Context()
	tok, _ := l.Acquire(ctx, "k", time.Hour)
	_, stop1, _ := watch(ctx, l, "k")
	_, stop2, _ := watch(ctx, l, "k")
	stop1()
	stop2()
	ok, err := l.Release(ctx, "k", tok)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Zero(t, l.Len())
}

func watch(ctx context.Context, l *memory.Locker, key string) (<-chan struct{}, func(), error) {
	return l.Mutex(key).(backend.Watcher).Watch(ctx, "w", time.Second)
}

// BenchmarkAcquireRelease is the backend alone, without the core.
func BenchmarkAcquireRelease(b *testing.B) {
	l := memory.New()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		tok, _ := l.Acquire(ctx, "k", 10*time.Second)
		if ok, _ := l.Release(ctx, "k", tok); !ok {
			b.Fatal("release failed")
		}
	}
}

func TestWithClockNilPanics(t *testing.T) {
	assert.PanicsWithValue(t, "memory: WithClock(nil)", func() { memory.WithClock(nil) })
}

// The history checker on the memory backend, with every kind of lock: no
// faults to inject in one process, so the history must be clean.
func TestHistory(t *testing.T) {
	history.Run(t, &harness{l: memory.New()}, history.Options{Name: "memory/none", Kinds: history.AllKinds})
}

// BenchmarkTypes interleaves an uncontended acquire+release of each lock
// type through a Client (the mutex, a semaphore's permit, a read lock,
// the write lock, two keys at once) and reports each against the mutex.
func BenchmarkTypes(b *testing.B) {
	b.ReportAllocs()
	ops := benchutil.TypeOps(b, xsync.NewClient(memory.New()), "")
	benchutil.ReportTypes(b, benchutil.Interleave(b, ops...), "")
}
