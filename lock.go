package xsync

import (
	"context"
	"fmt"
	"time"
)

// Item is the result of [Lock]: zero if the lock was not obtained, and
// otherwise the lock's token, which is > 0. On backends with fencing tokens
// (memory, redis, etcd) every later acquisition of the same key gets a
// larger Item, so int64(item) can guard writes to a protected resource.
type Item int64

// HasLock reports whether the lock was obtained (the Item is > 0). It says
// nothing about whether the lock is still held now: it may have expired.
func (item Item) HasLock() bool {
	return item > 0
}

// Lock makes one attempt to lock key on the backend registered as name,
// for exp seconds, and does not wait.
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
	c, err := registered(name)
	if err != nil {
		return 0, err
	}
	if exp < 1 {
		return 0, fmt.Errorf("%w: exp %d: must be at least 1 (second)", ErrInvalid, exp)
	}
	return c.lockOnce(ctx, key, time.Duration(exp)*time.Second)
}

// lockOnce is Lock after validation: one attempt, no owner metadata.
func (c *Client) lockOnce(ctx context.Context, key string, ttl time.Duration) (Item, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("xsync: lock %s: %w", keyString(key), context.Cause(ctx))
	}
	var start time.Time
	o := c.observer()
	if o != nil {
		start = c.clock.Now()
	}
	token, err := c.l.Acquire(ctx, key, ttl)
	if o != nil {
		o.Observe(ctx, Event{Kind: KindAttempt, Backend: c.name, Key: key, Outcome: attemptOutcome(ctx, token, err),
			Start: start, Duration: c.clock.Now().Sub(start), Token: Item(max(token, 0)), Err: err})
	}
	if err != nil {
		if ended(ctx) {
			// The client may report its read deadline rather than ctx's.
			return 0, fmt.Errorf("xsync: lock %s on backend %q: %w (the context ended: %w)", keyString(key), c.name, err, ctxError(ctx))
		}
		return 0, fmt.Errorf("xsync: lock %s on backend %q: %w", keyString(key), c.name, err)
	}
	if token <= 0 {
		return 0, nil
	}
	return Item(token), nil
}

// Unlock releases the lock on key, on the backend registered as name, if
// and only if this Item still holds it; the check and the release are one
// atomic step on the server.
//
// It returns (true, nil) if it released the lock; (false, nil) if the Item
// no longer holds the key (it expired, was released already, or another
// holder has it now) or is not a held Item; and (false, err) if the backend
// failed or the input was bad (empty key, unknown name).
func (item Item) Unlock(ctx context.Context, name string, key string) (isSuccess bool, err error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	c, err := registered(name)
	if err != nil {
		return false, err
	}
	return c.unlock(ctx, key, item)
}

// unlock is Unlock after validation.
func (c *Client) unlock(ctx context.Context, key string, item Item) (bool, error) {
	if item <= 0 {
		return false, nil
	}
	var start time.Time
	o := c.observer()
	if o != nil {
		start = c.clock.Now()
	}
	ok, err := c.l.Release(ctx, key, int64(item))
	if o != nil {
		o.Observe(ctx, Event{Kind: KindRelease, Backend: c.name, Key: key, Outcome: releaseOutcome(ok, err),
			Start: start, Duration: c.clock.Now().Sub(start), Token: item, Err: err})
	}
	if err != nil {
		return false, fmt.Errorf("xsync: unlock %s on backend %q: %w", keyString(key), c.name, err)
	}
	return ok, nil
}
