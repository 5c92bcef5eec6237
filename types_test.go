package xsync_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend/memory"
)

// Bad arguments of the other lock types are ErrInvalid, and a backend
// without the type is errors.ErrUnsupported; neither reaches the backend.
func TestTypesBadInputNeverReachesBackend(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	noop := func(context.Context) error { return nil }
	c := xsync.NewClient(memory.New())
	many := make([]string, xsync.MaxKeys+1)
	for i := range many {
		many[i] = fmt.Sprint("k", i)
	}
	for name, err := range map[string]error{
		"semaphore limit 0":       c.Semaphore("k", 0).Run(ctx, noop),
		"semaphore limit -1":      func() error { _, err := c.Semaphore("k", -1).Acquire(ctx); return err }(),
		"semaphore over max":      c.Semaphore("k", xsync.MaxPermits+1).Run(ctx, noop),
		"semaphore empty key":     c.Semaphore("", 1).Run(ctx, noop),
		"semaphore nil callback":  c.Semaphore("k", 1).Run(ctx, nil),
		"semaphore ttl 0":         c.Semaphore("k", 1).Run(ctx, noop, xsync.WithTTL(0)),
		"rw empty key":            c.RWLock("").RunRead(ctx, noop),
		"rw huge key":             c.RWLock(strings.Repeat("k", xsync.MaxKeyLen+1)).RunWrite(ctx, noop),
		"rw nil callback":         c.RWLock("k").RunWrite(ctx, nil),
		"no keys":                 c.RunAll(ctx, nil, noop),
		"too many keys":           c.RunAll(ctx, many, noop),
		"duplicate keys":          func() error { _, err := c.AcquireAll(ctx, []string{"a", "b", "a"}); return err }(),
		"an empty key of several": c.RunAll(ctx, []string{"a", ""}, noop),
		"multi nil callback":      c.RunAll(ctx, []string{"a"}, nil),
	} {
		assert.ErrorIs(t, err, xsync.ErrInvalid, name)
	}

	f := &faulty{acquire: []result{{token: 1}}} // a mutex, nothing else
	b := xsync.NewClient(f)
	for name, err := range map[string]error{
		"semaphore":  b.Semaphore("k", 2).Run(ctx, noop),
		"read lock":  b.RWLock("k").RunRead(ctx, noop),
		"write lock": func() error { _, err := b.RWLock("k").AcquireWrite(ctx); return err }(),
		"multi-key":  b.RunAll(ctx, []string{"a", "b"}, noop),
	} {
		assert.ErrorIs(t, err, errors.ErrUnsupported, name)
		assert.False(t, xsync.IsMissingLockErr(err), name)
	}
	assert.Zero(t, f.calls.Load(), "bad input reached the backend")
}

// The leases of the other types live as a mutex's does: a manual clock
// expires them, Extend moves their deadline, Keys names what they hold,
// and TTL reads what they have left.
func TestTypesLeases(t *testing.T) {
	t.Parallel()
	c, _, clock := manual(t)
	ctx := t.Context()
	keys := []string{"a", "b"}
	m, err := c.AcquireAll(ctx, keys, xsync.WithTTL(10*time.Second))
	require.NoError(t, err)
	keys[0] = "changed" // the caller's slice is not the lease's
	assert.Equal(t, []string{"a", "b"}, m.Keys())
	assert.Equal(t, "a b", m.Key())
	left, err := m.TTL(ctx)
	require.NoError(t, err)
	assert.Equal(t, 10*time.Second, left)
	_, err = c.Acquire(ctx, "b")
	assert.ErrorIs(t, err, xsync.ErrMissingLock, "the mutex of a key AcquireAll holds")

	p, err := c.Semaphore("s", 1).Acquire(ctx, xsync.WithTTL(10*time.Second))
	require.NoError(t, err)
	assert.Equal(t, []string{"s"}, p.Keys())
	require.NoError(t, p.Extend(ctx, 30*time.Second))

	clock.Advance(11 * time.Second)
	<-m.Done()
	assert.ErrorIs(t, m.Err(), xsync.ErrLockLost, "the multi-key lease expired")
	assert.NoError(t, p.Err(), "the extended permit holds")
	_, err = c.Semaphore("s", 1).Acquire(ctx)
	assert.ErrorIs(t, err, xsync.ErrMissingLock)
	ok, err := p.Release(ctx)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.ErrorIs(t, p.Err(), xsync.ErrReleased)
}

// Run of a write lock gives the callback the writer's token, waits for
// the readers, and is woken by their release (its retry interval is a
// minute); readers share.
func TestTypesRunWaits(t *testing.T) {
	t.Parallel()
	store := memory.New()
	ctx := t.Context()
	rw := xsync.NewClient(store).RWLock("cfg")
	r1, err := rw.AcquireRead(ctx)
	require.NoError(t, err)
	r2, err := rw.AcquireRead(ctx)
	require.NoError(t, err)
	refused := make(chan struct{}, 1)
	writer := xsync.NewClient(store, xsync.WithObserver(observerFunc(func(e xsync.Event) {
		if e.Kind == xsync.KindAttempt && e.Outcome == xsync.OutcomeHeld {
			select {
			case refused <- struct{}{}:
			default:
			}
		}
	}))).RWLock("cfg")
	wrote := make(chan xsync.Item, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		assert.NoError(t, writer.RunWrite(ctx, func(ctx context.Context) error {
			wrote <- xsync.ItemFromContext(ctx)
			return nil
		}, xsync.WithWait(time.Minute), xsync.WithRetryInterval(time.Minute)))
	})
	<-refused // the writer found the readers and waits
	released := time.Now()
	for _, r := range []*xsync.Lease{r1, r2} {
		ok, err := r.Release(ctx)
		require.NoError(t, err)
		assert.True(t, ok)
	}
	wg.Wait()
	assert.Less(t, time.Since(released), 15*time.Second, "the release woke the writer; it did not sleep out its minute")
	assert.Greater(t, <-wrote, r2.Token(), "the writer's token is a fencing token")
}

// observerFunc is an xsync.Observer made of a function.
type observerFunc func(xsync.Event)

func (f observerFunc) Observe(_ context.Context, e xsync.Event) { f(e) }
