// Package xsync is a distributed lock with one small API over swappable
// backends: in-process memory, one Redis, Redlock over several Redis nodes,
// and etcd.
//
// A service builds a [Client] from a backend value and keeps it, as it
// keeps a *sql.DB:
//
//	locks := xsync.NewClient(redis.New(rdb)) // memory.New(), etcd.New(cli), ...
//	err := locks.Run(ctx, "pay:"+order, func(ctx context.Context) error {
//		return charge(ctx, order, xsync.ItemFromContext(ctx)) // the fencing token
//	}, xsync.WithTTL(30*time.Second), xsync.WithWait(2*time.Second))
//	if xsync.IsMissingLockErr(err) {
//		// held by someone else for the whole wait
//	}
//
// [Client.Acquire] returns a [Lease] to hold, extend, watch ([Lease.Done])
// and release; [Client.Inspect] and [Client.ForceRelease] are for
// operators, on backends that can.
//
// The seed API is a thin layer over the same client: a backend is
// registered under a name, and keys are locked by name:
//
//	xsync.Register("default", memory.New()) // or redis.New(client), ...
//
//	a := xsync.New("default", fmt.Sprintf("checkin:%d:%s", uid, day))
//	err := a.Run(ctx, func(ctx context.Context) error {
//		return awardPoints(ctx, uid) // runs only while the lock is held
//	})
//	if xsync.IsMissingLockErr(err) {
//		// someone else holds the lock: a duplicate request
//	}
//
// [Lock] and [Item.Unlock] are the lower-level pair: one attempt, no
// waiting, and the caller releases. [Registered] returns the client behind
// a name.
//
// # What is guaranteed
//
// Every backend keeps these rules (the conformance suite checks them):
//
//   - Mutual exclusion while the lock's TTL runs: at most one Item holds a
//     key at a time, as far as the backend can tell (see each backend's
//     documentation for the faults under which it cannot).
//   - A held Item is a token > 0. On backends that say so (memory, redis,
//     etcd) it is a fencing token: every later acquisition of the same key
//     gets a strictly larger token, so a resource that remembers the largest
//     token it has seen can reject a stale holder's writes.
//   - Owner-only release: [Item.Unlock] releases only a lock that this Item
//     still holds, atomically on the server.
//   - Every lock expires: a lock that is not released is free again after
//     its TTL (exp, at least one second).
//
// # What is not guaranteed
//
// A lock is a lease. If the holder stalls (GC pause, paused VM, slow
// network) longer than the TTL, the lock expires and someone else may take
// it while the old holder still runs. [Async.Run] cancels the callback's
// context when the TTL it measured runs out, but a callback that ignores its
// context, or a clock that jumps, can still overlap with the next holder.
// Where that matters, pass the Item to the protected resource as a fencing
// token ([ItemFromContext]) and let the resource reject smaller tokens.
//
// # Lock types
//
// Beside the mutex, a [Client] takes three other lock types, each with
// the same options, the same [Lease] and the same errors:
//
//   - [Client.Semaphore]: at most N holders of a key at once, each with a
//     permit of its own (limit concurrent calls to a slow service across
//     replicas).
//   - [Client.RWLock]: many readers or one writer; a waiting writer keeps
//     new readers out, so writers are not starved; writers get fencing
//     tokens on fencing backends.
//   - [Client.AcquireAll]: several mutex keys, all or nothing, in one atomic
//     step on the backend.
//
// Each needs an optional capability of the backend: memory, redis and etcd
// have all three; redlock has none (see its package documentation).
// Without it, the call returns an error matching errors.ErrUnsupported
// before reaching the backend.
//
// # Backends
//
// A backend is any [Locker] (the interface in package backend). This module
// provides:
//
//   - backend/memory: in-process, for unit tests and single-process apps.
//   - backend/redis: one Redis (single node, Sentinel, Cluster); fencing
//     tokens; not highly available.
//   - backend/redlock: Redlock over N independent Redis nodes, with
//     redsync; survives the loss of a minority; tokens are not fencing.
//   - backend/etcd: etcd leases and transactions; consensus-backed, with
//     the key's create revision as the fencing token.
//
// Each backend's package documentation says what it guarantees and under
// which faults it does not. Backends are registered by name with
// [Register], as database/sql registers drivers; [Swap] puts a backend
// behind a name for the length of one test. [Open] builds one from a URL
// (mem://, redis://, rediss://, redlock://, etcd://), so that each
// environment can pick its own by configuration.
//
// # Errors
//
//   - [ErrMissingLock]: the lock was not obtained because the key was held
//     (at the last attempt, or while Run waited for it), or because ctx
//     ended before an attempt could tell. With ctx's end it also matches
//     ctx's error; a deadline that passed during a request counts, even if
//     the client reported its own read timeout first. Check with
//     [IsMissingLockErr].
//   - [ErrLockLost]: the lock was lost while the callback of [Async.Run]
//     ran (TTL ran out, renewal failed, the backend no longer held it), so
//     mutual exclusion may not have held.
//   - [ErrUnknownBackend]: no backend is registered under the name.
//   - [ErrInvalid]: bad input (empty key, key over [MaxKeyLen], exp below
//     one second, nil callback, ...). Bad input never reaches a backend.
//   - Any other error is the backend failing (network, server); it wraps
//     the backend's own error, so errors.Is and errors.As reach it. It
//     never matches ErrMissingLock: a store that is down is not contention,
//     also when ctx ends while Run retries against it.
//
// Check errors with errors.Is, never with ==: they are wrapped. Messages
// show at most the first 48 bytes of a key, with its length and a hash.
//
// # Observing
//
// [SetObserver] attaches an [Observer] to a backend's name (or to every
// backend): it sees every acquire attempt, wait, hold, renewal, lost lock
// and release. Package xslog logs them with log/slog; the module
// github.com/xsync-go/xsync/xotel reports them to OpenTelemetry.
//
// # Testing
//
// Unit tests give each test its own client on the memory backend, and can
// run in parallel; a manual clock shared by both expires or loses locks
// without sleeping:
//
//	clock := memory.NewManualClock(time.Now())
//	locks := xsync.NewClient(memory.New(memory.WithClock(clock.Now)), xsync.WithClock(clock))
//	clock.Advance(time.Minute) // every lease of up to a minute is lost now
//
// Code on the seed API swaps a memory backend behind a name instead (such
// tests cannot run in parallel):
//
//	t.Cleanup(xsync.Swap("default", memory.New()))
//
// # Concurrency
//
// Every function and method is safe for concurrent use, except the Set*
// methods of an [Async] racing with its Run.
package xsync

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/registry"
)

// Locker is a lock backend: what [Register] accepts. It is the interface of
// package backend, repeated here so that applications need not import
// that package.
type Locker = backend.Locker

var (
	// ErrMissingLock means the lock was not obtained: another holder has
	// it, or ctx ended while waiting for it (or before an attempt could
	// tell). It never means that the backend failed: those errors do not
	// match it. Use [IsMissingLockErr] or errors.Is to check for it.
	ErrMissingLock = errors.New("xsync: missing lock")

	// ErrLockLost means a lock held by [Async.Run] was lost before the
	// callback returned: its TTL ran out, a renewal failed, or the backend
	// no longer held it when it was released. Mutual exclusion may not have
	// held for the whole callback. It is the cause of the callback
	// context's cancellation (see context.Cause) and is matched by the error
	// Run returns.
	ErrLockLost = errors.New("xsync: lock lost")

	// ErrUnknownBackend means no backend is registered under the name
	// given.
	ErrUnknownBackend = errors.New("xsync: unknown backend")

	// ErrInvalid means an argument was invalid. The call did not reach the
	// backend.
	ErrInvalid = errors.New("xsync: invalid argument")
)

// IsMissingLockErr reports whether err means that the lock was not
// obtained. It is errors.Is(err, ErrMissingLock).
func IsMissingLockErr(err error) bool {
	return errors.Is(err, ErrMissingLock)
}

// backends holds, per name, the client of the backend registered under it
// (the seed API's client: Lock, Unlock and Run allocate none).
var backends = registry.New[*Client]("Register", "backend")

func seedClient(name string, l Locker) *Client {
	return &Client{l: l, name: name, clock: systemClock{}, owner: defaultOwner}
}

// Register makes a backend instance available under name. Register
// panics if l is nil or if name is already registered, so that a
// misconfiguration fails at start-up. Call it from main (or the code that
// builds the backend's client), not from init.
func Register(name string, l Locker) {
	if l == nil {
		panic("xsync: Register backend is nil")
	}
	backends.Register(name, seedClient(name, l))
}

// Swap puts l behind name, whether or not name is registered, and returns
// a function that restores what was registered before (or unregisters name
// if nothing was). It is meant for tests:
//
//	t.Cleanup(xsync.Swap("default", memory.New()))
//
// Swap panics if l is nil. Tests that swap the same name must not run in
// parallel with each other.
func Swap(name string, l Locker) (restore func()) {
	if l == nil {
		panic("xsync: Swap backend is nil")
	}
	return backends.Swap(name, seedClient(name, l))
}

// Backends returns the sorted names of the registered backends.
func Backends() []string { return backends.Names() }

// registered is the client of the backend registered as name.
func registered(name string) (*Client, error) {
	c, ok := backends.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w %q (forgotten Register?)", ErrUnknownBackend, name)
	}
	return c, nil
}

// MaxKeyLen is the longest key xsync accepts, in bytes, on every backend.
// A lock key names a resource ("checkin:42:20261127"); a longer one is
// refused with [ErrInvalid] before it reaches a backend (etcd, for one,
// refuses requests from about 0.7 MiB of key).
const MaxKeyLen = 64 << 10

// keyShown is how many bytes of a key error messages show.
const keyShown = 64

// keyString is key as error messages show it: quoted, and if it is long,
// cut to its first bytes plus its length and a hash, so that no message
// grows with the key.
func keyString(key string) string {
	if len(key) <= keyShown {
		return strconv.Quote(key)
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return fmt.Sprintf("%q... (%d bytes, fnv32a %08x)", key[:keyShown-16], len(key), h.Sum32())
}

// unregister removes name from the registry; tests use it (export_test.go).
func unregister(name string) { backends.Delete(name) }

// Ping checks that the backend registered as name can serve locks right
// now, for readiness probes: one round trip to its server (Redis), a quorum
// of its servers (Redlock), or its cluster's leader (etcd). It returns nil
// if so, [ErrUnknownBackend] for an unknown name, an error matching
// errors.ErrUnsupported if the backend cannot tell, and otherwise the
// backend's error, wrapped.
func Ping(ctx context.Context, name string) error {
	c, err := registered(name)
	if err != nil {
		return err
	}
	return c.Ping(ctx)
}
