package conformance

import (
	"context"
	"errors"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// wrapped is a backend that the suite puts between the core and the
// backend under test, to count calls or to play a client's misbehaviour
// (a call that hangs, a read timeout that fires before ctx's). Each hook
// replaces one method; a nil hook passes the call through. It keeps every
// optional capability of the backend it wraps: Refresher only if the base
// has it (the core checks for it before it locks), and Watcher, Queuer,
// Validity and Pinger always, falling back to what the core does without
// them (WatchQueue says errors.ErrUnsupported).
type wrapped struct {
	base          backend.Locker
	acquire       func(ctx context.Context, key string, ttl time.Duration) (int64, error)
	release       func(ctx context.Context, key string, token int64) (bool, error)
	refresh       func(ctx context.Context, key string, token int64, ttl time.Duration) (bool, error)
	acquireQueued func(ctx context.Context, key string, ttl time.Duration, owner, w string, keep time.Duration) (int64, error)
	watchQueue    func(ctx context.Context, key, w string, keep time.Duration) (<-chan struct{}, func(), error)
}

var errNoWatch = errors.New("conformance: the wrapped backend cannot watch")

// locker returns w as the core should see it.
func (w *wrapped) locker() backend.Locker {
	if _, ok := w.base.(backend.Refresher); ok {
		return wrappedRefresher{w}
	}
	return w
}

func (w *wrapped) Acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	if w.acquire != nil {
		return w.acquire(ctx, key, ttl)
	}
	return w.base.Acquire(ctx, key, ttl)
}

func (w *wrapped) Release(ctx context.Context, key string, token int64) (bool, error) {
	if w.release != nil {
		return w.release(ctx, key, token)
	}
	return w.base.Release(ctx, key, token)
}

func (w *wrapped) Watch(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	if b, ok := w.base.(backend.Watcher); ok {
		return b.Watch(ctx, key)
	}
	return nil, nil, errNoWatch
}

func (w *wrapped) WatchQueue(ctx context.Context, key, waiter string, keep time.Duration) (<-chan struct{}, func(), error) {
	// A hook on Acquire must see every attempt: without one on queued
	// attempts too, the waiters do not queue.
	if _, ok := w.base.(backend.Queuer); !ok || w.acquire != nil && w.acquireQueued == nil {
		return nil, nil, errors.ErrUnsupported
	}
	if w.watchQueue != nil {
		return w.watchQueue(ctx, key, waiter, keep)
	}
	return w.base.(backend.Queuer).WatchQueue(ctx, key, waiter, keep)
}

func (w *wrapped) AcquireQueued(ctx context.Context, key string, ttl time.Duration, owner, waiter string, keep time.Duration) (int64, error) {
	if w.acquireQueued != nil {
		return w.acquireQueued(ctx, key, ttl, owner, waiter, keep)
	}
	return w.base.(backend.Queuer).AcquireQueued(ctx, key, ttl, owner, waiter, keep)
}

func (w *wrapped) Validity(ttl time.Duration) time.Duration {
	if b, ok := w.base.(backend.Validity); ok {
		return b.Validity(ttl)
	}
	return ttl
}

func (w *wrapped) Ping(ctx context.Context) error {
	if b, ok := w.base.(backend.Pinger); ok {
		return b.Ping(ctx)
	}
	return errors.ErrUnsupported
}

type wrappedRefresher struct{ *wrapped }

func (w wrappedRefresher) Refresh(ctx context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	if w.refresh != nil {
		return w.refresh(ctx, key, token, ttl)
	}
	return w.base.(backend.Refresher).Refresh(ctx, key, token, ttl)
}
