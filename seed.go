package xsync

import (
	"context"
	"fmt"
	"time"

	"github.com/xsync-go/xsync/internal/registry"
)

// The seed API: backends registered by name, locks taken by name, as the
// original package had it. Every function here is a thin layer over the
// Client registered under the name.

// backends holds, per name, the client of the backend registered under it.
var backends = registry.New[*Client]("Register", "backend")

// Register makes a backend instance available under name, as database/sql
// registers drivers. Register panics if l is nil or if name is already
// registered, so that a misconfiguration fails at start-up. Call it from
// main (or the code that builds the backend's client), not from init.
func Register(name string, l Locker) {
	if l == nil {
		panic("xsync: Register backend is nil")
	}
	backends.Register(name, NewClient(l, WithName(name)))
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
	return backends.Swap(name, NewClient(l, WithName(name)))
}

// Backends returns the sorted names of the registered backends.
func Backends() []string { return backends.Names() }

// Registered returns the client of the backend registered as name (see
// [Register]); it follows later changes of the registration ([Swap]) only
// if called again. It returns an error matching [ErrUnknownBackend] if no
// backend is registered under name.
func Registered(name string) (*Client, error) {
	c, ok := backends.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w %q (forgotten Register?)", ErrUnknownBackend, name)
	}
	return c, nil
}

// Ping checks that the backend registered as name can serve locks right
// now (see [Client.Ping]); an unknown name is [ErrUnknownBackend].
func Ping(ctx context.Context, name string) error {
	c, err := Registered(name)
	if err != nil {
		return err
	}
	return c.Ping(ctx)
}

// DefaultExp is the lock lifetime (TTL) that [New] gives an Async.
const DefaultExp = time.Second

// Async runs a callback while holding the mutex of one key on a
// registered backend. Build it with [New], adjust it with the Set*
// methods, and call [Async.Run]. An Async may be reused and its Run called
// concurrently; the Set* methods must not race with Run on the same
// Async.
type Async struct {
	name, key string
	exp       time.Duration
	retries   int32
	interval  time.Duration
	extend    bool
	maxHold   time.Duration
}

// New returns an Async for key on the backend registered as name, with a
// lock lifetime (exp) of 1s ([DefaultExp]), no retry, and no
// auto-extension. New does not validate its arguments; Run does.
func New(name string, key string) *Async {
	return &Async{name: name, key: key, exp: DefaultExp}
}

// SetExp sets the lock's lifetime (TTL). exp must be at least one second;
// size it to the time the callback may take (for example the timeout of
// the request that runs it). The default is 1s. On bad input SetExp
// returns an error matching [ErrInvalid] and changes nothing.
func (a *Async) SetExp(exp time.Duration) error {
	if exp < time.Second {
		return fmt.Errorf("%w: exp %v: must be at least 1s", ErrInvalid, exp)
	}
	a.exp = exp
	return nil
}

// SetRetry sets how long Run waits for a held key: up to cnt more timed
// attempts after the first one, each after a random wait between
// interval/2 and interval (so that contenders do not retry in step), in all
// at most about cnt × interval. With a backend that reports releases, a
// waiter also tries as soon as the key is released or expires; such an
// attempt does not use up one of the cnt. The default is no retry. cnt and
// interval must be >= 0; otherwise SetRetry returns an error matching
// [ErrInvalid] and changes nothing.
func (a *Async) SetRetry(cnt int32, interval time.Duration) error {
	if cnt < 0 {
		return fmt.Errorf("%w: retry count %d: must be >= 0", ErrInvalid, cnt)
	}
	if interval < 0 {
		return fmt.Errorf("%w: retry interval %v: must be >= 0", ErrInvalid, interval)
	}
	a.retries, a.interval = cnt, interval
	return nil
}

// SetAutoExtend turns auto-extension on or off: with it on, Run renews the
// lock every exp/3 for as long as the callback runs, as [WithAutoExtend]
// does; maxHold > 0 caps the hold (0: no cap). It needs a backend that can
// refresh locks; on one that cannot, Run fails with an error matching
// errors.ErrUnsupported before it tries to lock. maxHold must be >= 0;
// otherwise SetAutoExtend returns an error matching [ErrInvalid] and
// changes nothing. The default is off.
func (a *Async) SetAutoExtend(on bool, maxHold time.Duration) error {
	if maxHold < 0 {
		return fmt.Errorf("%w: max hold %v: must be >= 0", ErrInvalid, maxHold)
	}
	a.extend, a.maxHold = on, maxHold
	return nil
}

// Run obtains the lock, calls cb while holding it, and releases it: the
// semantics of [Client.Run], with the Async's settings.
//
// Obtaining: Run makes one attempt and, if the key is held, waits and
// tries again (see [Async.SetRetry]). The error says what happened: the
// key was held at the last attempt ([ErrMissingLock]); ctx ended while
// Run waited for a held key, or before an attempt could tell
// (ErrMissingLock and ctx's error; a deadline that passed during the
// request counts as ctx's even if the client reported a read timeout
// first); or the last attempt failed on the backend (that error, wrapped,
// never matching ErrMissingLock: an outage is not contention).
//
// Holding: cb receives a context derived from ctx that carries the Item
// ([ItemFromContext]) and that is cancelled, with a cause matching
// [ErrLockLost], when the lock can no longer be trusted: when its TTL
// (measured from just before the request to lock, less the backend's
// allowance for clock drift) runs out, or with auto-extension on when
// renewal finds the lock gone, when no renewal succeeded before that
// moment, or when maxHold is reached. A timer of the core keeps that
// moment. Without auto-extension the context's Deadline is that moment.
//
// Releasing: the lock is released when cb returns, also when it panics
// (the panic then goes on) and also when ctx has ended (on a context
// detached from ctx, with a timeout of exp or 5s, whichever is shorter).
// Run returns cb's error as it is, except that if the lock was lost
// before cb returned (or the backend no longer held it at release), the
// returned error also matches ErrLockLost. A failed release is not
// reported: the lock expires after its TTL anyway. (Unlocking the Item
// inside cb is therefore reported as a loss too: let Run release.)
//
// Bad input (empty key, key over [MaxKeyLen], nil cb, unknown backend)
// returns an error matching [ErrInvalid] or [ErrUnknownBackend] without
// reaching the backend.
func (a Async) Run(ctx context.Context, cb func(ctx context.Context) error) error {
	if cb == nil {
		return fmt.Errorf("%w: nil callback", ErrInvalid)
	}
	if err := checkKey(a.key); err != nil {
		return err
	}
	c, err := Registered(a.name)
	if err != nil {
		return err
	}
	if a.exp < time.Second { // only a zero Async (not made by New) gets here
		return fmt.Errorf("%w: exp %v: must be at least 1s", ErrInvalid, a.exp)
	}
	s := spec{ttl: a.exp, retries: a.retries, interval: a.interval, extend: a.extend, maxHold: a.maxHold, run: true}
	t := c.mutex(a.key)
	if err := c.check(&t, &s); err != nil {
		return err
	}
	return c.runSpec(ctx, &t, &s, cb)
}

// Lock makes one attempt to lock key's mutex on the backend registered as
// name, for exp seconds, and does not wait.
//
// It returns a held Item (HasLock true) if it obtained the lock, (0, nil) if
// the key is held by someone else, and (0, err) if the backend failed (err
// wraps the backend's error, and ctx's error as well if ctx ended during the
// call, even when the client reported its own read timeout first), ctx had
// already ended, or the input was bad: an empty key, a key over
// [MaxKeyLen], exp < 1 ([ErrInvalid]) or an unknown name
// ([ErrUnknownBackend]). Bad input never reaches the backend. A call whose
// outcome is unknown (ctx ended mid-request) is cleaned up by the backend,
// best effort, so that it leaves no lock behind that nobody can release.
//
// The caller must release the lock with [Item.Unlock], or let it expire.
func Lock(ctx context.Context, name string, key string, exp int32) (Item, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	c, err := Registered(name)
	if err != nil {
		return 0, err
	}
	if exp < 1 {
		return 0, fmt.Errorf("%w: exp %d: must be at least 1 (second)", ErrInvalid, exp)
	}
	return c.lockOnce(ctx, key, time.Duration(exp)*time.Second)
}

// Unlock releases the lock on key, on the backend registered as name, if
// and only if this Item still holds it; the check and the release are one
// atomic step on the server. An Item of a multi-key lock
// ([Client.AcquireAll]) releases the key given alone.
//
// It returns (true, nil) if it released the lock; (false, nil) if the Item
// no longer holds the key (it expired, was released already, or another
// holder has it now) or is not a held Item; and (false, err) if the backend
// failed or the input was bad (empty key, unknown name).
func (item Item) Unlock(ctx context.Context, name string, key string) (isSuccess bool, err error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	c, err := Registered(name)
	if err != nil {
		return false, err
	}
	return c.unlock(ctx, key, item)
}
