package redlock

import (
	"context"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// Acquire implements [backend.Locker]: the mutex's attempt (see
// [Locker.Mutex]).
func (l *Locker) Acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	return l.acquire(ctx, key, ttl)
}

// Release implements [backend.Locker]: the mutex's release (see
// [Locker.Mutex]).
func (l *Locker) Release(ctx context.Context, key string, token int64) (bool, error) {
	return l.release(ctx, key, token)
}

// Mutex implements [backend.Mutexer]: the mutex of key, the key
// {prefix}m:{key} on every node. Acquire is one Redlock round over all
// nodes in parallel (owner metadata is not stored); Release and Refresh
// run on every node; Watch hears the release on any node; Inspect and
// ForceRelease act across the nodes. Waiters do not queue on the nodes;
// a Locker's own waiters of the key line up (see the package doc), and an
// attempt by a waiter that is not first in its Locker's line is refused
// without a round: the first one makes the round for them all.
func (l *Locker) Mutex(key string) backend.Lock { return mutex{l, key} }

type mutex struct {
	l   *Locker
	key string
}

var (
	_ backend.Refresher     = mutex{}
	_ backend.Watcher       = mutex{}
	_ backend.Inspector     = mutex{}
	_ backend.ForceReleaser = mutex{}
)

func (m mutex) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	if r.Waiter != "" && m.l.lines.behind(m.l.prefix+mutexSpace+m.key, r.Waiter) {
		return 0, nil
	}
	return m.l.acquire(ctx, m.key, r.TTL)
}

func (m mutex) Release(ctx context.Context, token int64) (bool, error) {
	return m.l.release(ctx, m.key, token)
}

func (m mutex) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	return m.l.refresh(ctx, m.key, token, ttl)
}

func (m mutex) Watch(ctx context.Context, waiter string, _ time.Duration) (<-chan struct{}, func(), error) {
	return m.l.watch(ctx, m.key, true, waiter)
}

func (m mutex) Inspect(ctx context.Context) (backend.Info, error) { return m.l.inspect(ctx, m.key) }

func (m mutex) ForceRelease(ctx context.Context) (bool, error) { return m.l.forceRelease(ctx, m.key) }
