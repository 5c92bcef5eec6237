package xsync

import (
	"context"
	"time"
)

// Item is a held lock's token: > 0 when held, zero when not obtained. It
// is what [Lock] returns, [Lease.Token] and [ItemFromContext] give, and
// events carry. On backends with fencing tokens (memory, redis, etcd)
// every later acquisition of the same mutex gets a larger Item, so
// int64(item) can guard writes to a protected resource.
type Item int64

// HasLock reports whether the lock was obtained (the Item is > 0). It says
// nothing about whether the lock is still held now: it may have expired.
func (item Item) HasLock() bool {
	return item > 0
}

type itemKey struct{}

// itemCtx is Run's callback context: it carries the held Item, and, for a
// lock that is not renewed, reports the lease's validity deadline where
// the context does not carry it itself (a client with a clock of its
// own). It is context.WithValue without boxing the Item; every other
// Value lookup (including the one context.Cause makes) goes to the wrapped
// context.
type itemCtx struct {
	context.Context
	item     Item
	deadline time.Time // zero: the wrapped context's
}

func (c *itemCtx) Value(key any) any {
	if _, ok := key.(itemKey); ok {
		return c.item
	}
	return c.Context.Value(key)
}

func (c *itemCtx) Deadline() (time.Time, bool) {
	d, ok := c.Context.Deadline()
	if c.deadline.IsZero() || ok && d.Before(c.deadline) {
		return d, ok
	}
	return c.deadline, true
}

// ItemFromContext returns the token held by the Run whose callback
// received ctx (or a context derived from it), or 0 if there is none.
// Pass it to the protected resource as a fencing token.
func ItemFromContext(ctx context.Context) Item {
	item, _ := ctx.Value(itemKey{}).(Item)
	return item
}
