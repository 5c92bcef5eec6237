package xsync

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/xsync-go/xsync/backend"
)

// The kinds of lock a Client takes. Each is a lock of the backend (a
// backend.Lock) that the engine holds the same way; they differ only in
// the lock they name. A semaphore, a read-write lock and a mutex of the
// same key are separate locks; a multi-key lock takes the mutexes of its
// keys. Each kind but the mutex needs a capability of the backend: without
// it, every call returns an error matching errors.ErrUnsupported before
// reaching the backend.

// mutex is the target of key's mutex.
func (c *Client) mutex(key string) target {
	return target{l: c.l, kind: "mutex", name: key}
}

// unsupported is the error of a kind the backend does not have.
func (c *Client) unsupported(kind string) error {
	return fmt.Errorf("xsync: %s: %s has none: %w", kind, c.name, errors.ErrUnsupported)
}

// Acquire takes key's mutex, waiting for it as [WithWait] says, and
// returns the lease. The error matches [ErrMissingLock] if the key was
// held for the whole wait (or ctx ended while waiting, then with ctx's
// error too), and is otherwise the backend's failure or bad input
// ([ErrInvalid]; bad input never reaches the backend). The caller must
// Release the lease, or let it expire.
func (c *Client) Acquire(ctx context.Context, key string, opts ...AcquireOption) (*Lease, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	t := c.mutex(key)
	return c.acquire(ctx, &t, opts)
}

// Run takes key's mutex as [Client.Acquire] does, calls cb while holding
// it, and releases it. cb gets a context derived from ctx that carries the
// token ([ItemFromContext]) and is cancelled, with a cause matching
// [ErrLockLost], when the lock can no longer be trusted. The lock is
// released when cb returns, also when it panics (the panic goes on) and
// when ctx has ended. Run returns cb's error as it is; if the lock was
// lost before cb returned, the error also matches ErrLockLost.
func (c *Client) Run(ctx context.Context, key string, cb func(ctx context.Context) error, opts ...AcquireOption) error {
	if cb == nil {
		return fmt.Errorf("%w: nil callback", ErrInvalid)
	}
	if err := checkKey(key); err != nil {
		return err
	}
	t := c.mutex(key)
	return c.run(ctx, &t, cb, opts)
}

// MaxPermits is the largest permit count a [Semaphore] accepts: backends
// count the held permits at every attempt.
const MaxPermits = 4096

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

func (s *Semaphore) target() (target, error) {
	if err := checkKey(s.key); err != nil {
		return target{}, err
	}
	if s.limit < 1 || s.limit > MaxPermits {
		return target{}, fmt.Errorf("%w: semaphore limit %d: want 1 to MaxPermits (%d)", ErrInvalid, s.limit, MaxPermits)
	}
	b, ok := s.c.l.(backend.Semaphorer)
	if !ok {
		return target{}, s.c.unsupported("semaphore")
	}
	lk := b.Semaphore(s.key, s.limit)
	if lk == nil { // a wrapper of a backend without semaphores
		return target{}, s.c.unsupported("semaphore")
	}
	return target{lock: lk, kind: "semaphore", name: s.key}, nil
}

// Acquire takes a permit, waiting for one as [WithWait] says, with the
// outcomes of [Client.Acquire]: an error matching [ErrMissingLock] if all
// permits were held for the whole wait.
func (s *Semaphore) Acquire(ctx context.Context, opts ...AcquireOption) (*Lease, error) {
	t, err := s.target()
	if err != nil {
		return nil, err
	}
	return s.c.acquire(ctx, &t, opts)
}

// Run takes a permit as Acquire does, calls cb while holding it, and
// gives it back: the semantics of [Client.Run].
func (s *Semaphore) Run(ctx context.Context, cb func(ctx context.Context) error, opts ...AcquireOption) error {
	if cb == nil {
		return fmt.Errorf("%w: nil callback", ErrInvalid)
	}
	t, err := s.target()
	if err != nil {
		return err
	}
	return s.c.run(ctx, &t, cb, opts)
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
// [WithRetryInterval]). Readers are not ordered among themselves. On a
// fencing backend, each writer's token is a fencing token, larger than
// every earlier token of the key; readers' tokens are unique.
type RWLock struct {
	c   *Client
	key string
}

// RWLock returns the read-write lock of key. A bad key is reported by its
// methods.
func (c *Client) RWLock(key string) *RWLock { return &RWLock{c: c, key: key} }

func (m *RWLock) target(write bool) (target, error) {
	if err := checkKey(m.key); err != nil {
		return target{}, err
	}
	b, ok := m.c.l.(backend.RWLocker)
	if !ok {
		return target{}, m.c.unsupported("read-write lock")
	}
	read, wr := b.RWLock(m.key)
	if read == nil || wr == nil { // a wrapper of a backend without them
		return target{}, m.c.unsupported("read-write lock")
	}
	if write {
		return target{lock: wr, kind: "write", name: m.key}, nil
	}
	return target{lock: read, kind: "read", name: m.key}, nil
}

// AcquireRead takes the lock for reading, with the outcomes of
// [Client.Acquire].
func (m *RWLock) AcquireRead(ctx context.Context, opts ...AcquireOption) (*Lease, error) {
	return m.acquire(ctx, false, opts)
}

// AcquireWrite takes the lock for writing, with the outcomes of
// [Client.Acquire].
func (m *RWLock) AcquireWrite(ctx context.Context, opts ...AcquireOption) (*Lease, error) {
	return m.acquire(ctx, true, opts)
}

// RunRead calls cb while holding the lock for reading: the semantics of
// [Client.Run].
func (m *RWLock) RunRead(ctx context.Context, cb func(ctx context.Context) error, opts ...AcquireOption) error {
	return m.run(ctx, false, cb, opts)
}

// RunWrite calls cb while holding the lock for writing: the semantics of
// [Client.Run].
func (m *RWLock) RunWrite(ctx context.Context, cb func(ctx context.Context) error, opts ...AcquireOption) error {
	return m.run(ctx, true, cb, opts)
}

func (m *RWLock) acquire(ctx context.Context, write bool, opts []AcquireOption) (*Lease, error) {
	t, err := m.target(write)
	if err != nil {
		return nil, err
	}
	return m.c.acquire(ctx, &t, opts)
}

func (m *RWLock) run(ctx context.Context, write bool, cb func(ctx context.Context) error, opts []AcquireOption) error {
	if cb == nil {
		return fmt.Errorf("%w: nil callback", ErrInvalid)
	}
	t, err := m.target(write)
	if err != nil {
		return err
	}
	return m.c.run(ctx, &t, cb, opts)
}

// MaxKeys is the largest number of keys [Client.AcquireAll] takes at once.
const MaxKeys = 64

// multi checks keys and returns the target that takes them all.
func (c *Client) multi(keys []string) (target, error) {
	if len(keys) == 0 || len(keys) > MaxKeys {
		return target{}, fmt.Errorf("%w: %d keys: want 1 to MaxKeys (%d)", ErrInvalid, len(keys), MaxKeys)
	}
	seen := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return target{}, err
		}
		if _, dup := seen[k]; dup {
			return target{}, fmt.Errorf("%w: key %s given twice", ErrInvalid, keyString(k))
		}
		seen[k] = struct{}{}
	}
	b, ok := c.l.(backend.MultiLocker)
	if !ok {
		return target{}, c.unsupported("multi-key lock")
	}
	keys = append([]string(nil), keys...) // the caller may reuse its slice
	lk := b.Multi(keys)
	if lk == nil { // a wrapper of a backend without them
		return target{}, c.unsupported("multi-key lock")
	}
	return target{lock: lk, kind: "keys", name: strings.Join(keys, " "), keys: keys}, nil
}

// AcquireAll takes every key of keys (1 to [MaxKeys], no duplicates) all
// or nothing, in one atomic step on the backend, waiting as [WithWait]
// says; the outcomes are those of [Client.Acquire] (ErrMissingLock: some
// key was held for the whole wait). The keys are the mutex keys
// [Client.Acquire] takes: a key held through either excludes the other.
// The lease's token releases one of the keys alone as well (Item.Unlock
// of that key): the other keys stay held until the lease is released or
// they expire, and the lease's Release then frees them and returns false
// (its token no longer held every key). All keys get one token, on a
// fencing backend larger than every earlier token of each key. A key
// with waiters queued counts as held: a multi-key lock does not overtake
// them. Messages and events name the lock by its keys joined with spaces;
// [Lease.Keys] returns them.
//
// Redis Cluster takes several keys in one step only in one hash slot: use
// a hash tag ("{order:42}:payment", "{order:42}:stock"); keys in several
// slots are an error from the backend and take nothing.
func (c *Client) AcquireAll(ctx context.Context, keys []string, opts ...AcquireOption) (*Lease, error) {
	t, err := c.multi(keys)
	if err != nil {
		return nil, err
	}
	return c.acquire(ctx, &t, opts)
}

// RunAll calls cb while holding every key of keys, taken as
// [Client.AcquireAll] takes them: the semantics of [Client.Run].
func (c *Client) RunAll(ctx context.Context, keys []string, cb func(ctx context.Context) error, opts ...AcquireOption) error {
	if cb == nil {
		return fmt.Errorf("%w: nil callback", ErrInvalid)
	}
	t, err := c.multi(keys)
	if err != nil {
		return err
	}
	return c.run(ctx, &t, cb, opts)
}
