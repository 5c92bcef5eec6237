// Package backend is the contract between package xsync and a lock backend.
//
// Applications do not import this package; they import xsync and one
// backend package (memory, redis, redlock, etcd) and register an instance
// with xsync.Register. Implementers of a new backend import this package
// and nothing of xsync, and run the exported conformance suite
// (package conformance) against their backend.
//
// The required interface, [Locker], has two methods: one acquire attempt
// and an owner-only release. Every further capability is a separate
// small interface that xsync discovers by type assertion:
//
//   - [Refresher]: extend a held lock (needed for auto-extension).
//   - [Watcher]: tell a waiter that a key may have become free, so that it
//     can try at once instead of sleeping out its retry interval.
//   - [Queuer]: queue waiters in arrival order, so that a release wakes
//     only the first and a free key goes to it (FIFO handoff).
//   - [Validity]: say that a lock can be trusted for less than its TTL
//     (an allowance for clock drift between servers).
//   - [Pinger]: say whether the backend can serve locks right now (for
//     readiness probes).
//   - [OwnerAcquirer]: store a description of the holder with the lock.
//   - [Inspector]: tell who holds a key, with which token, for how long.
//   - [ForceReleaser]: free a key whoever holds it (an operator's action),
//     waking waiters and keeping the fencing counter.
//   - [Semaphorer], [RWLocker], [MultiLocker]: the other lock types (a
//     semaphore of N permits, a read-write lock, several keys at once).
//
// # Division of labour
//
// The core (package xsync) owns every policy: argument validation, retries,
// waiting between attempts, renewal cadence, deadlines and the mapping of
// outcomes to errors. A backend makes exactly one attempt per call and
// reports the outcome; it must not retry, sleep or wait for a key to become
// free.
//
// The core guarantees, for every call it makes into a backend:
//   - key is non-empty (it may hold any bytes: spaces, braces, unicode,
//     invalid UTF-8, a kilobyte or more);
//   - ttl is at least one millisecond (at least one second through the
//     seed API); a backend rounds it up to its own precision;
//   - token is a value the same backend returned from Acquire (> 0).
//
// # Outcomes are values
//
// Expected outcomes are reported as values, never as errors: a key held by
// someone else is (0, nil) from Acquire, and a release or refresh by a token
// that no longer holds the key is (false, nil). A non-nil error always means
// the backend could not do its job (network, server, timeout) and must wrap
// the underlying cause with %w so that errors.Is and errors.As reach it.
// An error that says the store could not be reached also wraps
// [ErrUnavailable], so that the core never mistakes it for a call that the
// caller's context cut short.
//
// # Fencing tokens
//
// A successful Acquire returns a token > 0 that identifies this acquisition.
// Backends that can (memory, redis, etcd) return fencing tokens: for one
// key, every successful acquisition returns a strictly larger token than
// every earlier one, across all clients of the same store, and this stays
// true when the backend forgets idle keys. A backend that cannot give that
// guarantee must still return tokens unique per key and acquisition, and
// must say so in its package documentation (and tell the conformance suite).
package backend

import (
	"context"
	"errors"
	"time"
)

// ErrUnavailable marks an error that says the store could not be reached:
// connections refused or cut, no quorum of nodes answering, no connection
// to any member. A backend wraps it into an error (with %w, beside the
// client's own error) when it knows that this, and not the caller's
// context, ended a call. The core then reports the call as a failure of the
// backend even if ctx ended meanwhile, never as a lock that was not
// obtained in time (xsync.ErrMissingLock).
var ErrUnavailable = errors.New("store unavailable")

// Locker is the interface every backend implements. Its methods may be
// called concurrently from many goroutines.
type Locker interface {
	// Acquire makes exactly one attempt to take key for ttl and does not
	// wait if the key is held.
	//
	// It returns the new lock's token (> 0) on success; (0, nil) if the key
	// is held by someone else; (0, err) if the backend failed. (0, nil) must
	// mean that the store answered that the key is held, never that it
	// could not be asked.
	//
	// If the outcome is unknown when Acquire is about to return an error
	// (ctx ended, or the call failed after the request may have reached the
	// store), Acquire must first undo what this attempt may have taken, best
	// effort and bounded (a context detached from ctx, with a short timeout
	// of the backend's choosing), so that a lock nobody can release does
	// not stay held for its TTL; its package documentation states the
	// window that remains.
	Acquire(ctx context.Context, key string, ttl time.Duration) (token int64, err error)

	// Release releases key if and only if token still holds it, atomically
	// on the server. It returns (true, nil) if it released the lock,
	// (false, nil) if token no longer holds key (expired, released, or taken
	// over by another holder), and (false, err) if the backend failed.
	Release(ctx context.Context, key string, token int64) (released bool, err error)
}

// Refresher is implemented by backends that can extend a held lock.
type Refresher interface {
	// Refresh sets the remaining lifetime of the lock held by token on key
	// to ttl, if and only if token still holds key, atomically on the
	// server. The results mean the same as Release's: (true, nil) extended;
	// (false, nil) token no longer holds key; (false, err) backend failure.
	// Refresh must not change the token.
	Refresh(ctx context.Context, key string, token int64, ttl time.Duration) (extended bool, err error)
}

// Watcher is implemented by backends that can tell a waiter that a key may
// have become free.
type Watcher interface {
	// Watch starts watching key and returns once the watch is in effect.
	// Until stop is called, the ready channel receives a value whenever key
	// may have become free: when a holder releases it, when it expires if
	// the backend can tell, and once right away if key is already free when
	// the watch takes effect. Values are coalesced (the channel is buffered
	// and a value is dropped if one is already pending); spurious values are
	// allowed. A backend should not miss a release made after Watch returns;
	// where it can (a lost pub/sub message), it must document it, and the
	// core bounds every wait by the caller's retry interval anyway.
	//
	// ctx bounds the set-up only (the core gives it the retry interval as
	// a deadline); the watch lasts until stop is called.
	// stop must be called exactly once, releases every resource the watch
	// holds, and must not block on the network for long.
	Watch(ctx context.Context, key string) (ready <-chan struct{}, stop func(), err error)
}

// Queuer is implemented by backends whose waiters can queue for a key in
// the order they came, so that a release wakes only the waiter that has
// waited longest, and a free key goes to it rather than to whoever asks
// first. The core uses it, when present, in place of [Watcher] for the
// waiters of one acquisition, and falls back to Watch when WatchQueue
// says [errors.ErrUnsupported].
type Queuer interface {
	// WatchQueue is Watch for the waiter w, a random identity the core
	// draws for one acquisition: it also puts w at the end of key's queue
	// (if not there yet). The ready channel then receives a value when
	// w's turn may have come: a release when w is the first live waiter,
	// the holder's expiry, or right away if key is free.
	//
	// A waiter stays in the queue, alive, for keep after it was queued or
	// after its latest attempt (AcquireQueued); the core attempts more
	// often than that while it waits. A waiter that is not alive is
	// dropped when the queue is next read, so a waiter that died in the
	// queue holds the others back for keep at most. stop takes w out of
	// the queue (best effort: keep bounds a failed removal too); it may
	// make one short call to the store.
	WatchQueue(ctx context.Context, key, w string, keep time.Duration) (ready <-chan struct{}, stop func(), err error)
	// AcquireQueued is one attempt by the queued waiter w, with the
	// results of Acquire, and owner as AcquireOwner's ("" for none). The
	// key is granted only if it is free and no live waiter is ahead of w;
	// then w leaves the queue. Otherwise w stays queued, alive for keep
	// more (and is queued again at the end if the store lost the queue).
	AcquireQueued(ctx context.Context, key string, ttl time.Duration, owner, w string, keep time.Duration) (token int64, err error)
}

// Validity is implemented by backends whose locks can be trusted for less
// than their TTL, for example because the servers' clocks may drift apart.
type Validity interface {
	// Validity returns how long a lock taken or extended for ttl can be
	// trusted, counted from just before the request was sent. It must be
	// more than zero and at most ttl. The core ends the callback's context
	// at that moment.
	Validity(ttl time.Duration) time.Duration
}

// Pinger is implemented by backends that can tell whether they can serve
// locks right now.
type Pinger interface {
	// Ping makes one check that the backend could take a lock now (its
	// server, or a quorum of its servers, answers) and returns nil if so,
	// or the error that says why not. It changes no lock.
	Ping(ctx context.Context) error
}

// OwnerAcquirer is implemented by backends that store a description of
// the holder with the lock, for operators (see [Inspector]).
type OwnerAcquirer interface {
	// AcquireOwner is Acquire that also stores owner (at most 256 bytes,
	// non-empty) with the lock while it is held. The owner never affects
	// who holds the lock.
	AcquireOwner(ctx context.Context, key string, ttl time.Duration, owner string) (int64, error)
}

// LockInfo is what [Inspector.Inspect] reports about a key.
type LockInfo struct {
	Held  bool
	Token int64         // the holder's token, when held
	TTL   time.Duration // how long the lock has left on the store's clock, when held
	Owner string        // the holder's owner metadata, if stored
}

// Inspector is implemented by backends that can tell who holds a key.
type Inspector interface {
	// Inspect reads the state of key in one consistent step. It changes
	// nothing.
	Inspect(ctx context.Context, key string) (LockInfo, error)
}

// ForceReleaser is implemented by backends that let an operator free a
// key whoever holds it.
type ForceReleaser interface {
	// ForceRelease deletes the lock on key, if any, and reports whether
	// there was one. It wakes waiters as a release does and keeps the
	// fencing counter, so later tokens are still larger.
	ForceRelease(ctx context.Context, key string) (bool, error)
}
