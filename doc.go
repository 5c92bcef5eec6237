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
// operators.
//
// # Kinds of lock
//
// Beside the mutex of [Client.Run] and [Client.Acquire], a client takes
// four other kinds of lock. Every kind has the same options, the same
// [Lease], the same errors and the same events for observers:
//
//   - [Client.Semaphore]: at most N holders of a key at once, each with a
//     permit of its own (limit concurrent calls to a slow service across
//     replicas).
//   - [Client.RWLock]: many readers or one writer; a waiting writer keeps
//     new readers out, so writers are not starved; writers get fencing
//     tokens on fencing backends.
//   - [Client.AcquireAll]: several keys, all or nothing, in one atomic
//     step on the backend.
//   - [Client.Election]: leader election: one leader at a time, with a
//     term whose epoch fences, [Election.Lead] to run work only while
//     leading, and [Election.Observe] for everyone to know who leads.
//
// A backend offers a kind by implementing one small interface (package
// backend); without it, the call returns an error matching
// errors.ErrUnsupported before reaching the backend. memory, redis and
// etcd have every kind; redlock has the mutex and elections (see its
// package documentation). The kinds' key spaces are disjoint: a semaphore "x" and
// a mutex "x" are two locks.
//
// # What is guaranteed
//
// Every backend keeps these rules (the conformance suite checks them):
//
//   - Mutual exclusion while the lock's TTL runs: at most one holder of a
//     mutex (N of a semaphore) at a time, as far as the backend can tell
//     (see each backend's documentation for the faults under which it
//     cannot).
//   - A held lock has a token > 0. On backends that say so (memory, redis,
//     etcd) a mutex's token is a fencing token: every later acquisition of
//     the same key gets a strictly larger token, so a resource that
//     remembers the largest token it has seen can reject a stale holder's
//     writes.
//   - Owner-only release: a release frees only a lock that its token
//     still holds, atomically on the server.
//   - Every lock expires: a lock that is not released or renewed is free
//     again after its TTL.
//
// # What is not guaranteed
//
// A lock is a lease. If the holder stalls (GC pause, paused VM, slow
// network) longer than the TTL, the lock expires and someone else may take
// it while the old holder still runs. The core ends the holder's context
// ([Lease.Done], Run's callback context) when the TTL it measured runs
// out, but code that ignores it, or a clock that jumps, can still overlap
// with the next holder. Where that matters, pass the token to the
// protected resource ([ItemFromContext], [Lease.Token]) and let the
// resource reject smaller ones.
//
// # Errors
//
//   - [ErrMissingLock]: the lock was not obtained because it was held (at
//     the last attempt, or for the whole wait), or because ctx ended
//     before an attempt could tell. With ctx's end it also matches ctx's
//     error; a deadline that passed during a request counts, even if the
//     client reported its own read timeout first. Check with
//     [IsMissingLockErr].
//   - [ErrLockLost]: the lock was lost while held (its TTL ran out, a
//     renewal found it gone or kept failing, the hold cap was reached).
//   - [ErrReleased]: the lease was released by its holder.
//   - [ErrInvalid]: bad input (empty key, key over [MaxKeyLen], a TTL the
//     backend cannot keep, nil callback, ...). Bad input never reaches a
//     backend.
//   - Any other error is the backend failing (network, server); it wraps
//     the backend's own error, so errors.Is and errors.As reach it. It
//     never matches ErrMissingLock: a store that is down is not contention,
//     also when ctx ends while Run retries against it.
//
// Check errors with errors.Is, never with ==: they are wrapped. Messages
// show at most the first 48 bytes of a key, with its length and a hash.
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
// which faults it does not. [Open] builds one from a URL (mem://,
// redis://, rediss://, redlock://, etcd://), so that each environment can
// pick its own by configuration.
//
// # Observing
//
// [SetObserver] or [WithObserver] attaches an [Observer]: it sees every
// acquire attempt, wait, hold, renewal, lost lock and release, of every
// kind of lock. Package xslog logs them with log/slog; the module
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
// # The seed API
//
// The first API of this package, kept as a thin layer over [Client]: a
// backend is registered under a name ([Register], [Swap] for one test),
// and keys are locked by name.
//
//	xsync.Register("default", memory.New())
//	err := xsync.New("default", key).Run(ctx, func(ctx context.Context) error {
//		return awardPoints(ctx, uid) // runs only while the lock is held
//	})
//
// [Async] carries the seed's knobs (SetExp, SetRetry, SetAutoExtend);
// [Lock] and [Item.Unlock] are one attempt and its owner-only release;
// [Registered] returns the client behind a name; a name with no backend
// is [ErrUnknownBackend].
//
// # Concurrency
//
// Every function and method is safe for concurrent use, except the Set*
// methods of an [Async] racing with its Run.
package xsync
