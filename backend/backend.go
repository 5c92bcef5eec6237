// Package backend is the contract between package xsync and a lock backend.
//
// Applications do not import this package; they import xsync and one
// backend package (memory, redis, redlock, etcd). Implementers of a new
// backend import this package and nothing of xsync, and run the exported
// conformance suite (package conformance) against their backend.
//
// # The contract in brief
//
// A backend is a [Locker]: two methods, one acquire attempt of a mutex key
// and an owner-only release. Everything else is optional and found by type
// assertion, in two places:
//
//   - On the Locker, its kinds of lock, each handed out as a [Lock] value:
//     [Mutexer] (the mutex with its abilities), [Semaphorer], [RWLocker]
//     (its read and write sides), [Electioner] (a leader election),
//     [MultiLocker] (several mutex keys at
//     once); and the store's abilities, [Lister], [Pinger] and
//     [Validity].
//   - On a Lock, its abilities, the same for every kind: [Refresher],
//     [Watcher] (waking and queueing waiters), [Granter] (handing the
//     lock to the first waiter at its release), [Notifier] (telling
//     observers of every change), [Inspector] and [ForceReleaser].
//
// The core holds every kind of Lock the same way: it attempts, waits,
// renews, watches and releases without knowing which kind it holds.
//
// # Division of labour
//
// The core (package xsync) owns every policy: argument validation, retries,
// waiting between attempts, renewal cadence, how long a waiter's place is
// kept, deadlines and the mapping of outcomes to errors. A backend makes
// exactly one attempt per call and reports the outcome; it must not retry,
// sleep or wait for a lock to become free.
//
// The core guarantees, for every call it makes into a backend: keys are
// non-empty (they may hold any bytes: spaces, braces, unicode, NUL,
// invalid UTF-8, a kilobyte or more) and at most 64 KiB; a multi-key lock
// has 1 to 64 distinct keys; a semaphore's limit is 1 to 4096; a TTL is at
// least a millisecond (a backend rounds it up to its precision); a token
// is one the same backend returned (> 0); an owner is at most 256 bytes; a
// waiter's name is letters and digits.
//
// # Outcomes are values
//
// Expected outcomes are values, never errors: a lock held by someone else
// is (0, nil) from Acquire, and a release or refresh by a token that no
// longer holds the lock is (false, nil). A non-nil error always means the
// backend could not do its job (network, server, timeout) and wraps the
// cause with %w, so that errors.Is and errors.As reach it. An error that
// says the store could not be reached also wraps [ErrUnavailable].
//
// An ability may say [errors.ErrUnsupported] when called, as database/sql's
// driver.ErrSkip lets an optional interface decline at run time (a wrapper
// that forwards to a Lock without it): the core then does without it, as
// if the Lock did not have it. A kind's method may decline the same way by
// returning a nil Lock: the caller then gets errors.ErrUnsupported.
//
// # Fencing tokens
//
// A successful Acquire returns a token > 0 that identifies the
// acquisition. Backends that can (memory, redis, etcd) return fencing
// tokens: for one key, every successful acquisition of a mutex, a write
// lock or a multi-key lock returns a strictly larger token than every
// earlier one, across all clients of the same store, also after the
// backend forgot idle keys. Permits and read locks are held side by side:
// their tokens are unique, not fencing. A backend that cannot give fencing
// tokens must still give unique ones, and say so in its documentation.
//
// # Kinds are separate locks
//
// A mutex, a semaphore, a read-write lock (and each later kind) of the
// same key are separate locks, and a backend keeps their state apart by
// construction: no key of one kind can name the state of another. A
// multi-key lock takes the mutex keys themselves.
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
// obtained in time.
var ErrUnavailable = errors.New("store unavailable")

// Locker is the interface every backend implements: the mutex of a key,
// by key. Its methods, and those of every Lock it hands out, may be called
// concurrently from many goroutines.
type Locker interface {
	// Acquire is Mutex(key).Acquire with Request{TTL: ttl}: one attempt to
	// take key for ttl.
	Acquire(ctx context.Context, key string, ttl time.Duration) (token int64, err error)
	// Release is Mutex(key).Release(ctx, token).
	Release(ctx context.Context, key string, token int64) (released bool, err error)
}

// Lock is one lock of the store, of any kind: a mutex key, a semaphore,
// a side of a read-write lock, a set of keys. It is a small value that
// names the lock; making one contacts nothing.
type Lock interface {
	// Acquire makes exactly one attempt and does not wait.
	//
	// It returns the new hold's token (> 0); (0, nil) if the lock is held
	// (or, with waiters queued, not this attempt's turn); (0, err) if the
	// backend failed. (0, nil) must mean that the store answered, never
	// that it could not be asked.
	//
	// If the outcome is unknown when Acquire is about to return an error
	// (ctx ended, or the call failed after the request may have reached
	// the store), Acquire must first undo what this attempt may have
	// taken, best effort and bounded (a context detached from ctx, with a
	// short timeout of the backend's choosing), so that a lock nobody can
	// release does not stay held for its TTL; its documentation states
	// the window that remains.
	Acquire(ctx context.Context, r Request) (token int64, err error)

	// Release gives back what token holds, if and only if it still holds
	// it, atomically on the store: (true, nil) if it did; (false, nil) if
	// token holds nothing (expired, released, taken over); (false, err) if
	// the backend failed.
	Release(ctx context.Context, token int64) (released bool, err error)
}

// Request is what one attempt asks for.
type Request struct {
	// TTL is how long the hold lasts unless refreshed.
	TTL time.Duration
	// Owner describes the holder for operators ([Inspector]); "" for none.
	// A backend that cannot store it ignores it. It never affects who
	// holds the lock.
	Owner string
	// Waiter is "" for an attempt by a caller that does not wait (one
	// attempt, or no watch). Otherwise it names a waiter that joined the
	// lock's waiters with [Watcher.Watch]: the attempt is granted only in
	// the waiter's turn, a grant takes the waiter's place away, and a
	// refusal keeps it alive at least two thirds of Keep more.
	Waiter string
	// Keep is how long a refused Waiter's place stays alive. A backend
	// may leave a place that has two thirds of Keep left as it is (a
	// renewal rewrites the queue): the core attempts at least three
	// times per Keep while it waits, so such a place is renewed before
	// it comes within one retry interval of its end.
	Keep time.Duration
	// Seq numbers a waiter's attempts, 1, 2, ... from its watch on, where
	// the waiter watches with [Granter.WatchGrant]; 0 otherwise. A
	// Granter records the Seq of the attempt that last renewed the
	// waiter's place.
	Seq int64
}

// The kinds of lock. A Locker implements those it has.
type (
	// Mutexer hands out the mutex of a key with its abilities: the same
	// lock as the Locker's own Acquire and Release.
	Mutexer interface {
		Mutex(key string) Lock
	}
	// Semaphorer hands out the semaphore of a key: at most limit holders
	// at once, each with a permit of its own. Holders of one key should
	// use the same limit: an attempt counts the permits held, whatever
	// limit their holders asked for.
	Semaphorer interface {
		Semaphore(key string, limit int) Lock
	}
	// RWLocker hands out the two sides of the read-write lock of a key:
	// many readers, or one writer. Writers are not starved: a writer that
	// waits (it joined with Watch) keeps new readers out, and its place
	// goes when it gets the lock or leaves.
	RWLocker interface {
		RWLock(key string) (read, write Lock)
	}
	// Electioner hands out the election of a name: a lock of its own
	// kind, apart from the mutexes, whose one holder is the leader and
	// whose Request.Owner is the candidate's identity (stored where the
	// backend stores owners). Its Lock has the mutex's abilities, and a
	// Notifier where the backend can tell of changes.
	Electioner interface {
		Election(name string) Lock
	}
	// MultiLocker hands out the lock of several mutex keys taken all or
	// none, in one atomic step, under one token. A key with waiters queued
	// counts as held. Release of one of the keys through its Mutex with
	// the token releases that key alone; the others stay held and expire
	// at their TTL (nothing they depend on may be reused meanwhile). The
	// set's Release frees what its token still holds and says true only
	// if that was every key.
	MultiLocker interface {
		Multi(keys []string) Lock
	}
)

// The abilities of a Lock, the same for every kind.
type (
	// Refresher sets the remaining lifetime of what token holds to ttl,
	// if token still holds it, atomically on the store; the results mean
	// what Release's do. The token does not change.
	Refresher interface {
		Refresh(ctx context.Context, token int64, ttl time.Duration) (refreshed bool, err error)
	}

	// Watcher lets a waiter learn when the lock may be free.
	//
	// Watch starts waiting as waiter (a name the core draws per waiting
	// acquisition) and returns once the watch is in effect. Until stop is
	// called, ready receives a value whenever the waiter's turn may have
	// come: a release, an expiry the backend can tell of, a waiter ahead
	// leaving; and once at once if the lock could be taken when the watch
	// takes effect. Values are coalesced and may be spurious. A backend
	// should not miss a release made after Watch returns; where it can
	// (a lost pub/sub message), it must say so: the core bounds every
	// wait by its retry interval anyway.
	//
	// A Lock that keeps its waiters in order (a FIFO queue; a read-write
	// lock's waiting writers, who keep readers out) gives waiter a place
	// there, alive for keep unless an attempt by the waiter renews it
	// ([Request.Waiter]); a waiter whose process died thus holds the others
	// back for keep at most. stop leaves: the place goes at once (best
	// effort: keep bounds a removal that failed) and readers or waiters it
	// held back are woken. stop must be called once and may make one
	// short call to the store.
	//
	// ctx bounds the set-up only; the watch lasts until stop.
	Watcher interface {
		Watch(ctx context.Context, waiter string, keep time.Duration) (ready <-chan struct{}, stop func(), err error)
	}

	// Granter is a Watcher whose lock, when it is freed, goes straight to
	// the first waiter in line: the waiter needs no attempt of its own to
	// take it.
	//
	// WatchGrant is [Watcher.Watch] for such a waiter. While the watch
	// lasts, a release, a force release or the leaving of a waiter ahead
	// that frees the lock while waiter is the first live waiter in line
	// grants the lock to waiter in the same atomic step: a new token, as
	// an Acquire's would be, and its place goes. The grant lasts until
	// the waiter's place would have ended (keep from the processing of
	// the request that last renewed it; a waiter that died holds it no
	// longer than a place), unless its token refreshes or releases it
	// first. ready then receives a value, and granted returns the token
	// and the number of the request that last renewed the place: the
	// [Request.Seq] of an attempt, or 0 for the watch's own set-up. The
	// store processed that request before the grant, so the grant lasts
	// at least keep from when the request was sent. granted returns (0,
	// 0) while no grant was told of (a lost message: the waiter's next
	// attempt takes the grant, below). Once granted has returned a token,
	// the lock belongs to the caller, and stop leaves it held; otherwise
	// stop also releases a grant made to waiter, as a release would.
	//
	// An attempt by the waiter (Request.Waiter) that finds the lock
	// granted to it takes the grant: it returns the grant's token, and the
	// lock then has Request.TTL left from the attempt, with its owner.
	//
	// Confirm gives the lock token holds Request.TTL left and records
	// Request.Owner, if token still holds it: a Refresh that also stores
	// the owner, for a lock taken from granted. Its results mean what
	// Refresh's do.
	Granter interface {
		Watcher
		WatchGrant(ctx context.Context, waiter string, keep time.Duration) (ready <-chan struct{}, granted func() (token, seq int64), stop func(), err error)
		Confirm(ctx context.Context, token int64, r Request) (confirmed bool, err error)
	}

	// Notifier tells an observer when the lock's holders may have
	// changed: changes receives a value once at once, and then after
	// every grant, release and expiry the backend can tell of (coalesced,
	// possibly spurious), until stop is called. ctx bounds the set-up
	// only. An observer reads the state with Inspect after each value;
	// the core also reads it when the holder's TTL runs out, so a backend
	// that cannot tell of expiries need not.
	Notifier interface {
		Changes(ctx context.Context) (changes <-chan struct{}, stop func(), err error)
	}

	// Inspector reads the lock's state in one consistent step, for
	// operators. It changes nothing.
	Inspector interface {
		Inspect(ctx context.Context) (Info, error)
	}

	// ForceReleaser frees the lock whoever holds it (an operator's
	// action), wakes its waiters as a release does, and keeps the fencing
	// counter, so later tokens are still larger. It reports whether
	// anything was held.
	ForceReleaser interface {
		ForceRelease(ctx context.Context) (freed bool, err error)
	}
)

// Info is what [Inspector.Inspect] reads: the lock's holders, in the
// order they got it where the backend can tell.
type Info struct {
	Holders []Holder
	// Waiting is how many waiters keep a place (queued waiters; writers
	// waiting to write), where the backend keeps places; 0 otherwise.
	Waiting int
}

// Listed is one lock [Lister.List] found.
type Listed struct {
	Kind string // "mutex", "semaphore", "rwlock" or "election"
	Key  string // the key as the caller gave it
	Info Info
}

// Holder is one hold of a lock.
type Holder struct {
	Token int64
	TTL   time.Duration // how long it has left on the store's clock
	Owner string        // its owner metadata, if stored
	Write bool          // a read-write lock's writer
}

// The abilities of the store, on the Locker.
type (
	// Lister lists, for operators, the locks of every kind that are held
	// or have waiters keeping a place, whose keys begin with prefix: at
	// most limit of them (1 to 1000) from cursor on ("" for the first
	// page), and the cursor of the next page ("" after the last), which
	// is the backend's own. It changes nothing. A page may be short, or
	// empty while next is not ""; a lock that changes meanwhile may be
	// listed twice or not at all; a multi-key lock shows as its keys'
	// mutexes.
	Lister interface {
		List(ctx context.Context, prefix, cursor string, limit int) (locks []Listed, next string, err error)
	}
	// Pinger makes one check that the backend could take a lock now (its
	// server, or a quorum of its servers, answers) and returns nil if so,
	// or the error that says why not. It changes no lock.
	Pinger interface {
		Ping(ctx context.Context) error
	}
	// Validity says how long a lock taken or refreshed for ttl can be
	// trusted, counted from just before the request was sent: at most ttl
	// (an allowance for clock drift between servers). 0 or less means the
	// backend cannot trust so short a lock at all.
	Validity interface {
		Validity(ttl time.Duration) time.Duration
	}
)
