package xsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// The lock types beyond the mutex: a semaphore of N permits, a read-write
// lock, and several mutex keys at once. Each is taken through a [Client]
// with the options of [Client.Acquire] and gives a [Lease] with the same
// life (validity deadline, Extend, auto-extension, Done and Err, Release);
// Run runs a callback with the semantics of [Client.Run]. Each needs an
// optional capability of the backend ([backend.Semaphorer],
// [backend.RWLocker], [backend.MultiLocker]); without it, every call
// returns an error matching errors.ErrUnsupported before reaching the
// backend. Waiting uses the backend's notification where it has one, and
// timed retries otherwise.
//
// [WithOwner] is ignored by these types (no backend stores owner metadata
// for them), and [Lease.TTL] returns errors.ErrUnsupported for their
// leases.
//
// A semaphore, a read-write lock and a mutex of the same key are three
// independent locks; a multi-key lock takes the mutex keys themselves.

// MaxPermits is the largest permit count a [Semaphore] accepts: backends
// count the held permits at every attempt.
const MaxPermits = 4096

// MaxKeys is the largest number of keys [Client.AcquireAll] takes at once.
const MaxKeys = 64

// target is an acquisition of another lock type than the mutex: the
// backend calls that take, give back, renew and wait for it.
type target struct {
	label string   // the key as messages and events show it
	keys  []string // the keys the lease holds
	// attempt gets the spec's values, not the spec: a pointer passed to
	// a func value escapes, and every acquisition's spec with it.
	attempt func(ctx context.Context, ttl, interval time.Duration) (int64, error)
	release func(ctx context.Context, token int64) (bool, error)
	refresh func(ctx context.Context, token int64, ttl time.Duration) (bool, error)
	watch   func(ctx context.Context) (<-chan struct{}, func(), error) // nil: no notification
	// waiter is this acquisition's identity while it waits ("" for one
	// attempt): a write lock's mark is named by it.
	waiter string
	// giveUp undoes what a waiter left on the store (a writer's mark)
	// when its acquisition ends without the lock; nil: nothing to undo.
	giveUp func(ctx context.Context, waiter string) error
}

// gaveUp undoes what t's waiting left on the store, best effort and
// bounded, after an acquisition that did not get the lock.
func (t *target) gaveUp(ctx context.Context) {
	if t == nil || t.giveUp == nil || t.waiter == "" {
		return
	}
	dctx := newDetached(ctx, maxGiveUpTimeout)
	_ = t.giveUp(dctx, t.waiter)
	dctx.stop()
}

// maxGiveUpTimeout bounds how long an acquisition that did not get its
// lock spends undoing what its waiting left on the store.
const maxGiveUpTimeout = 250 * time.Millisecond

// acquireTarget is Client.Acquire for t.
func (c *Client) acquireTarget(ctx context.Context, t *target, opts []AcquireOption) (*Lease, error) {
	return c.acquireLease(ctx, t.label, t, opts)
}

// runTarget is Client.Run for t.
func (c *Client) runTarget(ctx context.Context, t *target, cb func(ctx context.Context) error, opts []AcquireOption) error {
	if cb == nil {
		return fmt.Errorf("%w: nil callback", ErrInvalid)
	}
	s, err := c.specFor(t, opts)
	if err != nil {
		return err
	}
	s.run = true
	return c.run(ctx, t.label, cb, &s)
}

// unsupported is the error of a lock type the backend does not have.
func (c *Client) unsupported(what string) error {
	return fmt.Errorf("xsync: %s: backend %q has none: %w", what, c.name, errors.ErrUnsupported)
}

// Semaphore is a counting semaphore on one key: at most its limit of
// holders at once, across every client of the store. Each holder has a
// lease of its own; a holder that dies frees its permit at its TTL.
// Permit tokens are unique among the key's permits but are not fencing
// tokens (permits are held side by side).
//
//	api := locks.Semaphore("partner-api", 4) // at most 4 calls at once, over all replicas
//	err := api.Run(ctx, func(ctx context.Context) error {
//		return callPartner(ctx)
//	}, xsync.WithWait(10*time.Second))
//
// All holders of a key should use the same limit: an attempt counts the
// permits held, whatever limit their holders asked for. Permits are not
// handed out in arrival order.
type Semaphore struct {
	c     *Client
	key   string
	limit int
}

// Semaphore returns the semaphore of key with limit permits (1 to
// [MaxPermits]). Bad arguments are reported by its methods.
func (c *Client) Semaphore(key string, limit int) *Semaphore {
	return &Semaphore{c: c, key: key, limit: limit}
}

func (s *Semaphore) target() (*target, error) {
	if err := checkKey(s.key); err != nil {
		return nil, err
	}
	if s.limit < 1 || s.limit > MaxPermits {
		return nil, fmt.Errorf("%w: semaphore limit %d: want 1 to MaxPermits (%d)", ErrInvalid, s.limit, MaxPermits)
	}
	b, ok := s.c.l.(backend.Semaphorer)
	if !ok {
		return nil, s.c.unsupported("semaphore")
	}
	return &target{
		label: s.key,
		keys:  []string{s.key},
		attempt: func(ctx context.Context, ttl, _ time.Duration) (int64, error) {
			return b.AcquirePermit(ctx, s.key, s.limit, ttl)
		},
		release: func(ctx context.Context, token int64) (bool, error) { return b.ReleasePermit(ctx, s.key, token) },
		refresh: func(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
			return b.RefreshPermit(ctx, s.key, token, ttl)
		},
		watch: func(ctx context.Context) (<-chan struct{}, func(), error) { return b.WatchPermits(ctx, s.key) },
	}, nil
}

// Acquire takes a permit, waiting for one as [WithWait] says, with the
// outcomes of [Client.Acquire]: an error matching [ErrMissingLock] if all
// permits were held for the whole wait.
func (s *Semaphore) Acquire(ctx context.Context, opts ...AcquireOption) (*Lease, error) {
	t, err := s.target()
	if err != nil {
		return nil, err
	}
	return s.c.acquireTarget(ctx, t, opts)
}

// Run takes a permit as Acquire does, calls cb while holding it, and
// gives it back: the semantics of [Client.Run].
func (s *Semaphore) Run(ctx context.Context, cb func(ctx context.Context) error, opts ...AcquireOption) error {
	t, err := s.target()
	if err != nil {
		return err
	}
	return s.c.runTarget(ctx, t, cb, opts)
}

// RWLock is a read-write lock on one key: many readers, or one writer, at
// a time, across every client of the store.
//
// Writers are not starved: while a writer waits (from its first refused
// attempt on, with [WithWait]), new readers are refused, and the readers
// that hold finish. Only a writer that waits now keeps readers out: one
// that makes a single attempt leaves nothing behind, one whose wait or
// context ends stops keeping them out as it returns, and one that dies
// while waiting keeps them out for its keep time at most (max(3 × its
// retry interval, 1s), as the backend rounds it; see
// [WithRetryInterval]). Readers are
// not ordered among themselves. On a fencing backend, each writer's token
// is a fencing token, larger than every earlier token of the key; readers'
// tokens are unique.
type RWLock struct {
	c   *Client
	key string
}

// RWLock returns the read-write lock of key. A bad key is reported by its
// methods.
func (c *Client) RWLock(key string) *RWLock { return &RWLock{c: c, key: key} }

func (m *RWLock) target(write bool) (*target, error) {
	if err := checkKey(m.key); err != nil {
		return nil, err
	}
	b, ok := m.c.l.(backend.RWLocker)
	if !ok {
		return nil, m.c.unsupported("read-write lock")
	}
	t := &target{
		label:   m.key,
		keys:    []string{m.key},
		release: func(ctx context.Context, token int64) (bool, error) { return b.ReleaseRW(ctx, m.key, token) },
		refresh: func(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
			return b.RefreshRW(ctx, m.key, token, ttl)
		},
		watch: func(ctx context.Context) (<-chan struct{}, func(), error) { return b.WatchRW(ctx, m.key) },
	}
	if write {
		t.attempt = func(ctx context.Context, ttl, interval time.Duration) (int64, error) {
			return b.AcquireWrite(ctx, m.key, ttl, t.waiter, queueKeep(interval))
		}
		t.giveUp = func(ctx context.Context, w string) error { return b.WithdrawWrite(ctx, m.key, w) }
	} else {
		t.attempt = func(ctx context.Context, ttl, _ time.Duration) (int64, error) { return b.AcquireRead(ctx, m.key, ttl) }
	}
	return t, nil
}

// AcquireRead takes the lock for reading, with the outcomes of
// [Client.Acquire].
func (m *RWLock) AcquireRead(ctx context.Context, opts ...AcquireOption) (*Lease, error) {
	t, err := m.target(false)
	if err != nil {
		return nil, err
	}
	return m.c.acquireTarget(ctx, t, opts)
}

// AcquireWrite takes the lock for writing, with the outcomes of
// [Client.Acquire].
func (m *RWLock) AcquireWrite(ctx context.Context, opts ...AcquireOption) (*Lease, error) {
	t, err := m.target(true)
	if err != nil {
		return nil, err
	}
	return m.c.acquireTarget(ctx, t, opts)
}

// RunRead calls cb while holding the lock for reading: the semantics of
// [Client.Run].
func (m *RWLock) RunRead(ctx context.Context, cb func(ctx context.Context) error, opts ...AcquireOption) error {
	t, err := m.target(false)
	if err != nil {
		return err
	}
	return m.c.runTarget(ctx, t, cb, opts)
}

// RunWrite calls cb while holding the lock for writing: the semantics of
// [Client.Run].
func (m *RWLock) RunWrite(ctx context.Context, cb func(ctx context.Context) error, opts ...AcquireOption) error {
	t, err := m.target(true)
	if err != nil {
		return err
	}
	return m.c.runTarget(ctx, t, cb, opts)
}

// multiTarget checks keys and builds the target that takes them all.
func (c *Client) multiTarget(keys []string) (*target, error) {
	if len(keys) == 0 || len(keys) > MaxKeys {
		return nil, fmt.Errorf("%w: %d keys: want 1 to MaxKeys (%d)", ErrInvalid, len(keys), MaxKeys)
	}
	seen := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, err
		}
		if _, dup := seen[k]; dup {
			return nil, fmt.Errorf("%w: key %s given twice", ErrInvalid, keyString(k))
		}
		seen[k] = struct{}{}
	}
	b, ok := c.l.(backend.MultiLocker)
	if !ok {
		return nil, c.unsupported("multi-key lock")
	}
	keys = append([]string(nil), keys...) // the caller may reuse its slice
	t := &target{
		label: strings.Join(keys, " "),
		keys:  keys,
		attempt: func(ctx context.Context, ttl, _ time.Duration) (int64, error) {
			return b.AcquireMulti(ctx, keys, ttl)
		},
		release: func(ctx context.Context, token int64) (bool, error) { return b.ReleaseMulti(ctx, keys, token) },
		refresh: func(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
			return b.RefreshMulti(ctx, keys, token, ttl)
		},
	}
	if w, ok := c.l.(backend.Watcher); ok {
		t.watch = func(ctx context.Context) (<-chan struct{}, func(), error) { return watchAll(ctx, w, keys) }
	}
	return t, nil
}

// watchAll watches every key and merges their notifications into one
// channel.
func watchAll(ctx context.Context, w backend.Watcher, keys []string) (<-chan struct{}, func(), error) {
	ready := make(chan struct{}, 1)
	done := make(chan struct{})
	var (
		stops []func()
		wg    sync.WaitGroup
	)
	stop := func() {
		close(done)
		wg.Wait()
		for _, s := range stops {
			s()
		}
	}
	for _, k := range keys {
		ch, s, err := w.Watch(ctx, k)
		if err != nil {
			stop()
			return nil, nil, err
		}
		stops = append(stops, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ch:
					select {
					case ready <- struct{}{}:
					default:
					}
				case <-done:
					return
				}
			}
		}()
	}
	var once sync.Once
	return ready, func() { once.Do(stop) }, nil
}

// AcquireAll takes every key of keys (1 to [MaxKeys], no duplicates) all
// or nothing, in one atomic step on the backend, waiting as [WithWait]
// says; the outcomes are those of [Client.Acquire] (ErrMissingLock: some
// key was held for the whole wait). The keys are the mutex keys
// [Client.Acquire] takes: a key held through either excludes the other.
// The lease's token releases one of the keys alone as well (Item.Unlock
// of that key): the other keys stay held until the lease is released or
// they expire, and the lease's Release then frees them and returns false
// (its token no longer held every key).
// All keys get one token, on a fencing backend larger than every earlier
// token of each key. A key with waiters queued counts as held: a
// multi-key lock does not overtake them. Messages and events name the
// lock by its keys joined with spaces; [Lease.Keys] returns them.
//
// Redis Cluster takes several keys in one step only in one hash slot: use
// a hash tag ("{order:42}:payment", "{order:42}:stock"); keys in several
// slots are an error from the backend and take nothing.
func (c *Client) AcquireAll(ctx context.Context, keys []string, opts ...AcquireOption) (*Lease, error) {
	t, err := c.multiTarget(keys)
	if err != nil {
		return nil, err
	}
	return c.acquireTarget(ctx, t, opts)
}

// RunAll calls cb while holding every key of keys, taken as
// [Client.AcquireAll] takes them: the semantics of [Client.Run].
func (c *Client) RunAll(ctx context.Context, keys []string, cb func(ctx context.Context) error, opts ...AcquireOption) error {
	t, err := c.multiTarget(keys)
	if err != nil {
		return err
	}
	return c.runTarget(ctx, t, cb, opts)
}
