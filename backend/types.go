package backend

import (
	"context"
	"time"
)

// The lock types beyond the mutex. Each is an optional capability that the
// core discovers by type assertion, as it does the others; a backend
// without it makes the core report errors.ErrUnsupported before any call.
// Every method makes one attempt, as [Locker]'s do, with the same rules
// for outcomes (held is (0, nil); a token that no longer holds is
// (false, nil); an error means the backend failed and wraps the cause).
//
// Each type has a key space of its own: a semaphore "k", a read-write lock
// "k" and a mutex "k" are three independent locks. A multi-key lock takes
// mutex keys: the very locks [Locker.Acquire] takes.

// Semaphorer is implemented by backends with counting semaphores: at most
// limit holders of a key at once, each with a permit of its own.
type Semaphorer interface {
	// AcquirePermit makes one attempt to take one of key's limit permits
	// for ttl: a token (> 0) if fewer than limit permits are held, (0,
	// nil) if limit are. All holders of one key should use the same
	// limit: an attempt counts the permits held, whatever limit their
	// holders asked for. limit is at least 1.
	//
	// Tokens are unique among the key's permits; a permit holder's token
	// is not a fencing token (permits are held side by side). If the
	// outcome is unknown when AcquirePermit is about to return an error,
	// it first gives back the permit it may have taken, as Acquire does.
	AcquirePermit(ctx context.Context, key string, limit int, ttl time.Duration) (token int64, err error)
	// ReleasePermit gives back the permit token holds on key: (true, nil)
	// if it did, (false, nil) if token holds no permit (expired or
	// released).
	ReleasePermit(ctx context.Context, key string, token int64) (bool, error)
	// RefreshPermit sets the remaining lifetime of token's permit to ttl,
	// if token still holds it.
	RefreshPermit(ctx context.Context, key string, token int64, ttl time.Duration) (bool, error)
	// WatchPermits is [Watcher.Watch] for key's permits: ready receives a
	// value whenever a permit may have been freed (a release, an expiry
	// the backend can tell of), and at once if no permit is held. A
	// backend that cannot notify returns errors.ErrUnsupported; waiters
	// then try again at their retry interval.
	WatchPermits(ctx context.Context, key string) (ready <-chan struct{}, stop func(), err error)
}

// RWLocker is implemented by backends with read-write locks: many
// readers, or one writer, at a time.
//
// Writers are not starved by readers: a writer that waits leaves a mark
// while its attempts are refused, and the mark keeps new readers out; the
// readers that hold finish, and the writer gets the key at its next
// attempt. The mark means "a writer is waiting now": it is the waiting
// writer's own (named by w, as a queued waiter is), it lives keep after
// each refused attempt (the core passes max(3 × retry interval, 1s), and
// attempts more often than that while it waits), the writer's grant
// removes it, and so does [RWLocker.WithdrawWrite] when the writer gives
// up. A one-shot attempt (w "") leaves none. A writer that died while
// waiting keeps readers out for keep at most.
type RWLocker interface {
	// AcquireRead makes one attempt to take key for reading: granted unless
	// a writer holds key or a waiting writer's mark is alive.
	AcquireRead(ctx context.Context, key string, ttl time.Duration) (token int64, err error)
	// AcquireWrite makes one attempt to take key for writing: granted if
	// nobody holds it; refused otherwise, and then, if w is not "", the
	// waiting writer w's mark keeps new readers out for keep (a later
	// refused attempt of w renews it). w is a random identity of letters
	// and digits that the core draws for one waiting acquisition; "" for
	// an attempt that will not wait, which leaves no mark. A grant
	// removes w's mark. On a fencing backend a writer's token is larger
	// than every earlier token (read or write) of the key.
	AcquireWrite(ctx context.Context, key string, ttl time.Duration, w string, keep time.Duration) (token int64, err error)
	// WithdrawWrite removes the waiting writer w's mark, if it has one,
	// and wakes the key's waiters (readers it kept out may go now). The
	// core calls it when w gives up its wait.
	WithdrawWrite(ctx context.Context, key, w string) error
	// ReleaseRW gives back what token holds on key (a read or the write
	// lock).
	ReleaseRW(ctx context.Context, key string, token int64) (bool, error)
	// RefreshRW sets the remaining lifetime of what token holds to ttl.
	RefreshRW(ctx context.Context, key string, token int64, ttl time.Duration) (bool, error)
	// WatchRW is [Watcher.Watch] for key's read-write lock: ready receives
	// a value whenever a holder may have left or a writer's mark gone,
	// and at once if a reader or a writer could take the lock when the
	// watch takes effect (nobody holds it, or no writer holds it and no
	// mark is alive); errors.ErrUnsupported as for WatchPermits.
	WatchRW(ctx context.Context, key string) (ready <-chan struct{}, stop func(), err error)
}

// MultiLocker is implemented by backends that can take several mutex keys
// all or nothing, in one atomic step. The core passes at least one key,
// without duplicates, each valid as a Locker key. Waiters use [Watcher] on
// each key.
type MultiLocker interface {
	// AcquireMulti takes every key of keys for ttl if all are free, and
	// none otherwise. All keys get the same token; on a fencing backend
	// it is larger than every earlier token of each key. A key with
	// waiters queued ([Queuer]) counts as held: a multi-key lock does not
	// overtake them.
	//
	// A backend that cannot take the keys in one step (Redis Cluster with
	// keys in different hash slots) returns an error that says so,
	// without taking any.
	AcquireMulti(ctx context.Context, keys []string, ttl time.Duration) (token int64, err error)
	// ReleaseMulti releases every key of keys that token still holds. It
	// returns true if token held them all.
	//
	// [Locker.Release] of one of the keys with the token releases that
	// key alone: the others stay held, and still expire at their TTL.
	// Nothing a key still depends on (an etcd lease, say) may be reused
	// for other locks while it does.
	ReleaseMulti(ctx context.Context, keys []string, token int64) (bool, error)
	// RefreshMulti sets the remaining lifetime of every key to ttl if
	// token still holds them all, and changes nothing otherwise.
	RefreshMulti(ctx context.Context, keys []string, token int64, ttl time.Duration) (bool, error)
}
