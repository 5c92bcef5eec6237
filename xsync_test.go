package xsync_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/backend/memory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// faulty is a backend whose every outcome the test scripts: a
// fault-injecting fake for what a real backend does only under faults.
type faulty struct {
	mu       sync.Mutex
	acquire  []result // consumed one per call; the last one repeats
	release  result
	refresh  func(n int) result // n counts calls from 1
	refreshN int
	watchErr error
	calls    atomic.Int32
}

type result struct {
	token int64
	ok    bool
	err   error
}

func (f *faulty) Acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.acquire[0]
	if len(f.acquire) > 1 {
		f.acquire = f.acquire[1:]
	}
	return r.token, r.err
}

func (f *faulty) Release(ctx context.Context, key string, token int64) (bool, error) {
	f.calls.Add(1)
	return f.release.ok, f.release.err
}

// faultyLock is a faulty backend's mutex as a lock value.
type faultyLock struct {
	f   *faulty
	key string
}

func (l faultyLock) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	return l.f.Acquire(ctx, l.key, r.TTL)
}

func (l faultyLock) Release(ctx context.Context, token int64) (bool, error) {
	return l.f.Release(ctx, l.key, token)
}

// faultyRefresher is a faulty backend whose mutex can be refreshed.
type faultyRefresher struct{ *faulty }

func (f faultyRefresher) Mutex(key string) backend.Lock {
	return refreshingLock{faultyLock{f.faulty, key}}
}

type refreshingLock struct{ faultyLock }

func (l refreshingLock) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	f := l.f
	f.mu.Lock()
	f.refreshN++
	n := f.refreshN
	f.mu.Unlock()
	r := f.refresh(n)
	return r.ok, r.err
}

// faultyWatcher is a faulty backend whose mutex's watch fails to start.
type faultyWatcher struct{ *faulty }

func (f faultyWatcher) Mutex(key string) backend.Lock {
	return watchingLock{faultyLock{f.faulty, key}, func() (<-chan struct{}, func(), error) { return nil, nil, f.watchErr }}
}

type watchingLock struct {
	faultyLock
	watch func() (<-chan struct{}, func(), error)
}

func (l watchingLock) Watch(context.Context, string, time.Duration) (<-chan struct{}, func(), error) {
	return l.watch()
}

var errServer = errors.New("server on fire")

func use(t *testing.T, l xsync.Locker) string {
	t.Helper()
	name := "test:" + t.Name()
	t.Cleanup(xsync.Swap(name, l))
	return name
}

func TestRegister(t *testing.T) {
	l := memory.New()
	xsync.Register("test-register", l)
	t.Cleanup(func() { xsync.Unregister("test-register") })
	assert.Contains(t, xsync.Backends(), "test-register")
	assert.PanicsWithValue(t, `xsync: Register called twice for backend "test-register"`, func() {
		xsync.Register("test-register", memory.New())
	})
	assert.Panics(t, func() { xsync.Register("test-nil", nil) })
	assert.Panics(t, func() { xsync.Swap("test-nil", nil) })
	assert.NotContains(t, xsync.Backends(), "test-nil")
}

func TestBackendsSorted(t *testing.T) {
	for _, n := range []string{"test-c", "test-a", "test-b"} {
		t.Cleanup(xsync.Swap(n, memory.New()))
	}
	var got []string
	for _, n := range xsync.Backends() {
		if n == "test-a" || n == "test-b" || n == "test-c" {
			got = append(got, n)
		}
	}
	assert.Equal(t, []string{"test-a", "test-b", "test-c"}, got)
}

func TestSwapRestores(t *testing.T) {
	first, second := memory.New(), memory.New()
	restoreOuter := xsync.Swap("test-swap", first)
	item, err := xsync.Lock(t.Context(), "test-swap", "k", 10)
	require.NoError(t, err)
	require.True(t, item.HasLock())

	restore := xsync.Swap("test-swap", second)
	other, err := xsync.Lock(t.Context(), "test-swap", "k", 10)
	require.NoError(t, err)
	assert.True(t, other.HasLock(), "the swapped-in backend is a different store")

	restore()
	restore() // idempotent
	again, err := xsync.Lock(t.Context(), "test-swap", "k", 10)
	require.NoError(t, err)
	assert.False(t, again.HasLock(), "restore brought the first backend back, where k is held")

	restoreOuter()
	_, err = xsync.Lock(t.Context(), "test-swap", "k", 10)
	assert.ErrorIs(t, err, xsync.ErrUnknownBackend, "restoring a name that was not registered unregisters it")
}

func TestUnknownBackendMessage(t *testing.T) {
	_, err := xsync.Lock(t.Context(), "nope", "k", 1)
	assert.EqualError(t, err, `xsync: unknown backend "nope" (forgotten Register?)`)
}

func TestLockWrapsBackendError(t *testing.T) {
	name := use(t, &faulty{acquire: []result{{err: errServer}}})
	item, err := xsync.Lock(t.Context(), name, "k", 1)
	assert.Zero(t, item)
	assert.ErrorIs(t, err, errServer)
	assert.False(t, xsync.IsMissingLockErr(err), "a backend failure is not contention")
}

func TestLockNonPositiveTokenIsNotHeld(t *testing.T) {
	name := use(t, &faulty{acquire: []result{{token: -7}}})
	item, err := xsync.Lock(t.Context(), name, "k", 1)
	assert.NoError(t, err)
	assert.False(t, item.HasLock())
}

func TestLockCancelledCtx(t *testing.T) {
	f := &faulty{acquire: []result{{token: 1}}}
	name := use(t, f)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := xsync.Lock(ctx, name, "k", 1)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, f.calls.Load(), "a cancelled ctx must not reach the backend")
}

func TestUnlockWrapsBackendError(t *testing.T) {
	name := use(t, &faulty{release: result{err: errServer}})
	ok, err := xsync.Item(3).Unlock(t.Context(), name, "k")
	assert.False(t, ok)
	assert.ErrorIs(t, err, errServer)
}

func TestRunLastAttemptFailure(t *testing.T) {
	cb := func(context.Context) error { return errors.New("callback ran") }
	for _, tc := range []struct {
		name    string
		results []result
		missing bool
	}{
		{"failure then contention", []result{{err: errServer}, {}}, true},
		{"contention then failure", []result{{}, {err: errServer}}, false},
		{"failures only", []result{{err: errServer}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &faulty{acquire: tc.results}
			a := xsync.New(use(t, f), "k")
			require.NoError(t, a.SetRetry(1, 0))
			err := a.Run(t.Context(), cb)
			assert.Equal(t, tc.missing, xsync.IsMissingLockErr(err), "err = %v", err)
			assert.Equal(t, !tc.missing, errors.Is(err, errServer), "err = %v", err)
			assert.EqualValues(t, 2, f.calls.Load())
		})
	}
}

func TestRunRetriesAfterBackendError(t *testing.T) {
	f := &faulty{acquire: []result{{err: errServer}, {token: 5}}}
	a := xsync.New(use(t, f), "k")
	require.NoError(t, a.SetRetry(1, 0))
	var got xsync.Item
	err := a.Run(t.Context(), func(ctx context.Context) error {
		got = xsync.ItemFromContext(ctx)
		return nil
	})
	// The release result {ok: false} makes Run report the lock as lost.
	assert.ErrorIs(t, err, xsync.ErrLockLost)
	assert.Equal(t, xsync.Item(5), got)
}

func TestRunReportsReleaseOfLostLock(t *testing.T) {
	f := &faulty{acquire: []result{{token: 1}}, release: result{ok: false}}
	err := xsync.New(use(t, f), "k").Run(t.Context(), func(context.Context) error { return errServer })
	assert.ErrorIs(t, err, errServer, "the callback's error is kept")
	assert.ErrorIs(t, err, xsync.ErrLockLost, "a release that found the lock gone means the lock was lost")
}

func TestRunHidesFailedRelease(t *testing.T) {
	f := &faulty{acquire: []result{{token: 1}}, release: result{err: errServer}}
	err := xsync.New(use(t, f), "k").Run(t.Context(), func(context.Context) error { return nil })
	assert.NoError(t, err, "the work was done under the lock; a failed release only leaves it to expire")
}

func TestRunWatchFailureFallsBackToInterval(t *testing.T) {
	f := &faulty{acquire: []result{{}, {}, {token: 1}}, release: result{ok: true}, watchErr: errServer}
	a := xsync.New(use(t, faultyWatcher{f}), "k")
	require.NoError(t, a.SetRetry(2, time.Millisecond))
	assert.NoError(t, a.Run(t.Context(), func(context.Context) error { return nil }))
	assert.EqualValues(t, 4, f.calls.Load(), "3 attempts and 1 release")
}

// flakyWatcher's first watch fails to start; later ones notify at once.
type flakyWatcher struct {
	*faulty
	watches atomic.Int32
}

func (f *flakyWatcher) Mutex(key string) backend.Lock {
	return watchingLock{faultyLock{f.faulty, key}, func() (<-chan struct{}, func(), error) {
		if f.watches.Add(1) == 1 {
			return nil, nil, errServer
		}
		ch := make(chan struct{})
		close(ch)
		return ch, func() {}, nil
	}}
}

// A watch that failed to start (slow under load, say) is tried again at
// the next contended attempt, not given up for the whole wait.
func TestRunWatchRetriedAfterFailedSetUp(t *testing.T) {
	f := &flakyWatcher{faulty: &faulty{acquire: []result{{}, {}, {token: 1}}, release: result{ok: true}}}
	a := xsync.New(use(t, f), "k")
	require.NoError(t, a.SetRetry(5, 10*time.Millisecond))
	assert.NoError(t, a.Run(t.Context(), func(context.Context) error { return nil }))
	assert.EqualValues(t, 2, f.watches.Load(), "the failed watch was tried again")
	assert.EqualValues(t, 4, f.calls.Load(), "3 attempts and 1 release")
}

func TestRunDeadlineDuringWait(t *testing.T) {
	f := &faulty{acquire: []result{{}}}
	a := xsync.New(use(t, f), "k")
	require.NoError(t, a.SetRetry(5, time.Hour))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	err := a.Run(ctx, func(context.Context) error { return nil })
	assert.True(t, xsync.IsMissingLockErr(err))
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.EqualValues(t, 1, f.calls.Load())
}

func TestRunCtxEndsDuringAttempt(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	l := &cancellingLocker{cancel: cancel}
	err := xsync.New(use(t, l), "k").Run(ctx, func(context.Context) error { return nil })
	assert.True(t, xsync.IsMissingLockErr(err), "ctx ended before the lock was obtained: err = %v", err)
	assert.ErrorIs(t, err, context.Canceled)
}

// cancellingLocker cancels the caller's ctx during Acquire and fails the
// way a network client does.
type cancellingLocker struct {
	cancel context.CancelFunc
}

func (c *cancellingLocker) Acquire(ctx context.Context, _ string, _ time.Duration) (int64, error) {
	c.cancel()
	return 0, fmt.Errorf("dial: %w", ctx.Err())
}

func (c *cancellingLocker) Release(context.Context, string, int64) (bool, error) { return false, nil }

func TestRunAutoExtendUnsupported(t *testing.T) {
	f := &faulty{acquire: []result{{token: 1}}}
	a := xsync.New(use(t, f), "k")
	require.NoError(t, a.SetAutoExtend(true, 0))
	err := a.Run(t.Context(), func(context.Context) error { return nil })
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	assert.Zero(t, f.calls.Load())
}

func TestRunAutoExtendSurvivesTransientFailure(t *testing.T) {
	f := &faulty{acquire: []result{{token: 1}}, release: result{ok: true}}
	f.refresh = func(n int) result {
		if n == 1 {
			return result{err: errServer}
		}
		return result{ok: true}
	}
	a := xsync.New(use(t, faultyRefresher{f}), "k")
	require.NoError(t, a.SetAutoExtend(true, 0))
	start := time.Now()
	err := a.Run(t.Context(), func(ctx context.Context) error {
		// Past the first TTL: the second renewal (at 2/3 s) kept it.
		select {
		case <-ctx.Done():
			return fmt.Errorf("lock lost after %v: %w", time.Since(start), context.Cause(ctx))
		case <-time.After(1300 * time.Millisecond):
			return nil
		}
	})
	assert.NoError(t, err)
}

func TestRunAutoExtendPersistentFailure(t *testing.T) {
	f := &faulty{acquire: []result{{token: 1}}, release: result{ok: false}}
	f.refresh = func(int) result { return result{err: errServer} }
	a := xsync.New(use(t, faultyRefresher{f}), "k")
	require.NoError(t, a.SetAutoExtend(true, 0))
	var cause error
	err := a.Run(t.Context(), func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			cause = context.Cause(ctx)
		case <-time.After(3 * time.Second):
		}
		return nil
	})
	assert.ErrorIs(t, cause, xsync.ErrLockLost)
	assert.ErrorIs(t, cause, errServer, "the cause says why the renewals failed")
	assert.ErrorIs(t, err, xsync.ErrLockLost)
}

func TestItemFromContext(t *testing.T) {
	assert.Zero(t, xsync.ItemFromContext(t.Context()))
}

func TestErrorMessages(t *testing.T) {
	a := xsync.New("x", "k")
	assert.EqualError(t, a.SetExp(time.Millisecond), "xsync: invalid argument: exp 1ms: must be at least 1s")
	assert.EqualError(t, a.SetRetry(-1, 0), "xsync: invalid argument: retry count -1: must be >= 0")
	_, err := xsync.Lock(t.Context(), "x", "", 1)
	assert.EqualError(t, err, "xsync: invalid argument: empty key")
}

// TestRegistryConcurrency runs registry and lock calls concurrently;
// it asserts only under the race detector's eye.
func TestRegistryConcurrency(t *testing.T) {
	name := use(t, memory.New())
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			restore := xsync.Swap(fmt.Sprint("test-conc-", i), memory.New())
			defer restore()
			for range 100 {
				item, err := xsync.Lock(t.Context(), name, fmt.Sprint("k", i), 5)
				assert.NoError(t, err)
				_, err = item.Unlock(t.Context(), name, fmt.Sprint("k", i))
				assert.NoError(t, err)
				_ = xsync.Backends()
			}
		})
	}
	wg.Wait()
}

type validityLocker struct{ *faulty }

func (validityLocker) Validity(ttl time.Duration) time.Duration { return ttl / 2 }

func TestRunUsesBackendValidity(t *testing.T) {
	f := &faulty{acquire: []result{{token: 1}}, release: result{ok: true}}
	a := xsync.New(use(t, validityLocker{f}), "k")
	require.NoError(t, a.SetExp(10*time.Second))
	start := time.Now()
	require.NoError(t, a.Run(t.Context(), func(ctx context.Context) error {
		d, ok := ctx.Deadline()
		require.True(t, ok)
		assert.WithinRange(t, d, start, start.Add(5*time.Second+time.Second), "the deadline is the backend's validity, not the TTL")
		assert.Greater(t, d, start.Add(4*time.Second))
		return nil
	}))
}

func TestPing(t *testing.T) {
	assert.NoError(t, xsync.Ping(t.Context(), use(t, memory.New())))
	assert.ErrorIs(t, xsync.Ping(t.Context(), "nope"), xsync.ErrUnknownBackend)
	t.Run("without Pinger", func(t *testing.T) {
		assert.ErrorIs(t, xsync.Ping(t.Context(), use(t, &faulty{})), errors.ErrUnsupported)
	})
}

type tinyValidity struct{ *faulty }

func (tinyValidity) Validity(time.Duration) time.Duration { return 200 * time.Microsecond }

// A callback that returns after the lock's validity deadline, whether or
// not the timer that ends its context has fired yet, makes Run report the
// loss.
func TestRunReportsLossAtTheDeadline(t *testing.T) {
	for range 20 {
		f := &faulty{acquire: []result{{token: 1}}, release: result{ok: true}}
		err := xsync.New(use(t, tinyValidity{f}), "k").Run(t.Context(), func(ctx context.Context) error {
			d, _ := ctx.Deadline()
			for time.Now().Before(d) { // until the deadline passes: time must pass
			}
			return nil
		})
		require.ErrorIs(t, err, xsync.ErrLockLost)
	}
}
