// Package memory is an in-process lock backend for xsync: for unit tests
// and for applications that run as a single process.
//
// Locks live in the memory of one [Locker]; two Lockers, or two processes,
// do not exclude each other. Within one Locker every rule of the xsync
// contract holds:
//
//   - Every call is atomic (one mutex per Locker).
//   - Tokens are fencing tokens: they come from one counter per Locker, so
//     every acquisition gets a larger token than every earlier acquisition
//     of any key, including keys that were forgotten.
//   - A lock is free again once its TTL has passed on the Locker's clock
//     (nanosecond precision; expiry is checked on every call).
//   - Released and expired locks are forgotten: memory use follows the
//     number of locks held, not the number of keys ever used. No goroutine
//     or timer runs per held lock; a timer runs per key only while
//     somebody waits for that key.
//   - Waiters learn of a release through a channel at once, and of an
//     expiry when it is due on the real clock. They do not queue: every
//     waiter of the key wakes and the first to try wins, the releaser
//     included. In one process a handoff costs nanoseconds and barging
//     keeps the lock's owner warm; order among waiters is not promised.
//     A read-write lock's waiting writers do keep new readers out.
//   - Every kind has every ability: refresh, watch, inspect (holders,
//     time left, owner metadata) and force release.
//
// Mutexes, semaphores and read-write locks keep their state in separate
// maps: a key of one kind never names another kind's lock. A multi-key
// lock takes the mutexes of its keys.
//
// TestHistory holds it to the history checks too, in one process and
// without faults.
//
// # Testing with a manual clock
//
// [WithClock] replaces the clock, so that a test can expire locks without
// sleeping:
//
//	clock := memory.NewManualClock(time.Now())
//	l := memory.New(memory.WithClock(clock.Now))
//	// ... take a lock for 10s ...
//	clock.Advance(11 * time.Second) // the lock is now free
//
// The same clock passed to xsync.NewClient (xsync.WithClock(clock)) makes
// the core measure validity, waits and renewals on it as well: Advance
// then expires a lease, ends a callback's context and wakes a waiter's
// next attempt, all without sleeping. (The seed API measures on the real
// clock; a waiter learns of an expiry caused by Advance on its next
// attempt.)
//
// # URLs
//
// Importing this package registers the URL scheme "mem" with
// xsync.Open: "mem://" opens a new, empty in-memory Locker. It takes no
// host, path or options.
//
// # Elections
//
// An election is a mutex in a space of the Locker's own, apart from its
// mutexes, with a counter of its own: every term's epoch is larger than
// every earlier one's. Its waiters and observers are woken by every
// grant and release, and by a term's expiry on the real clock.
package memory
