package conformance_test

import (
	"context"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// The toy's locks as the backend contract hands them out, and the same
// through a link that can be broken (the toy harness's Faulty client).

// toyOps are the calls of one of the toy's locks; the abilities it has
// are those it has calls for.
type toyOps struct {
	acquire func(context.Context, backend.Request) (int64, error)
	release func(context.Context, int64) (bool, error)
	refresh func(context.Context, int64, time.Duration) (bool, error)
	watch   func(context.Context, string, time.Duration) (<-chan struct{}, func(), error)
	inspect func(context.Context) (backend.Info, error)
	force   func(context.Context) (bool, error)
	// The mutex's grants.
	watchGrant func(context.Context, string, time.Duration) (<-chan struct{}, func() (int64, int64), func(), error)
	confirm    func(context.Context, int64, backend.Request) (bool, error)
}

// lock is the lock of o, with the abilities o has calls for: every kind
// refreshes; the mutex, semaphores and read-write locks watch, and are
// inspected and forced.
func (o toyOps) lock() backend.Lock {
	switch {
	case o.watchGrant != nil:
		return toyGranting{toyMutex{toyWatching{toyRefreshing{o}}}}
	case o.inspect != nil:
		return toyMutex{toyWatching{toyRefreshing{o}}}
	case o.watch != nil:
		return toyWatching{toyRefreshing{o}}
	}
	return toyRefreshing{o}
}

type toyRefreshing struct{ o toyOps }

func (l toyRefreshing) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	return l.o.acquire(ctx, r)
}
func (l toyRefreshing) Release(ctx context.Context, tok int64) (bool, error) {
	return l.o.release(ctx, tok)
}
func (l toyRefreshing) Refresh(ctx context.Context, tok int64, ttl time.Duration) (bool, error) {
	return l.o.refresh(ctx, tok, ttl)
}

type toyWatching struct{ toyRefreshing }

func (l toyWatching) Watch(ctx context.Context, w string, keep time.Duration) (<-chan struct{}, func(), error) {
	return l.o.watch(ctx, w, keep)
}

type toyMutex struct{ toyWatching }

func (l toyMutex) Inspect(ctx context.Context) (backend.Info, error) { return l.o.inspect(ctx) }
func (l toyMutex) ForceRelease(ctx context.Context) (bool, error)    { return l.o.force(ctx) }

type toyGranting struct{ toyMutex }

func (l toyGranting) WatchGrant(ctx context.Context, w string, keep time.Duration) (<-chan struct{}, func() (int64, int64), func(), error) {
	return l.o.watchGrant(ctx, w, keep)
}
func (l toyGranting) Confirm(ctx context.Context, tok int64, r backend.Request) (bool, error) {
	return l.o.confirm(ctx, tok, r)
}

var (
	_ backend.Mutexer     = (*toy)(nil)
	_ backend.Semaphorer  = (*toy)(nil)
	_ backend.RWLocker    = (*toy)(nil)
	_ backend.MultiLocker = (*toy)(nil)
)

func (b *toy) Mutex(key string) backend.Lock { return b.mutexOps(key).lock() }

func (b *toy) mutexOps(key string) toyOps {
	return toyOps{
		acquire: func(ctx context.Context, r backend.Request) (int64, error) {
			if r.Waiter != "" {
				return b.AcquireQueued(ctx, key, r.TTL, r.Owner, r.Waiter, r.Keep, r.Seq)
			}
			return b.AcquireOwner(ctx, key, r.TTL, r.Owner)
		},
		release: func(ctx context.Context, tok int64) (bool, error) { return b.Release(ctx, key, tok) },
		refresh: func(ctx context.Context, tok int64, ttl time.Duration) (bool, error) {
			return b.Refresh(ctx, key, tok, ttl)
		},
		watch: func(ctx context.Context, w string, keep time.Duration) (<-chan struct{}, func(), error) {
			return b.WatchQueue(ctx, key, w, keep)
		},
		inspect: func(context.Context) (backend.Info, error) { return b.inspect(key), nil },
		force:   func(context.Context) (bool, error) { return b.forceRelease(key), nil },
		watchGrant: func(ctx context.Context, w string, keep time.Duration) (<-chan struct{}, func() (int64, int64), func(), error) {
			return b.WatchGrant(ctx, key, w, keep)
		},
		confirm: func(ctx context.Context, tok int64, r backend.Request) (bool, error) {
			return b.Confirm(ctx, key, tok, r)
		},
	}
}

func (b *toy) Semaphore(key string, limit int) backend.Lock { return b.semaphoreOps(key, limit).lock() }

func (b *toy) semaphoreOps(key string, limit int) toyOps {
	return toyOps{
		acquire: func(ctx context.Context, r backend.Request) (int64, error) {
			return b.AcquirePermit(ctx, key, limit, r.TTL)
		},
		release: func(ctx context.Context, tok int64) (bool, error) { return b.ReleasePermit(ctx, key, tok) },
		refresh: func(ctx context.Context, tok int64, ttl time.Duration) (bool, error) {
			return b.RefreshPermit(ctx, key, tok, ttl)
		},
		watch: func(ctx context.Context, _ string, _ time.Duration) (<-chan struct{}, func(), error) {
			return b.WatchPermits(ctx, key)
		},
		inspect: func(context.Context) (backend.Info, error) {
			return b.inspectGroup(func() map[string]*toyGroup { s, _ := b.spaces(); return s }, key), nil
		},
		force: func(context.Context) (bool, error) {
			return b.forceGroup(func() map[string]*toyGroup { s, _ := b.spaces(); return s }, "s:", key), nil
		},
	}
}

func (b *toy) RWLock(key string) (read, write backend.Lock) {
	r, w := b.rwOps(key)
	return r.lock(), w.lock()
}

func (b *toy) rwOps(key string) (read, write toyOps) {
	release := func(ctx context.Context, tok int64) (bool, error) { return b.ReleaseRW(ctx, key, tok) }
	rws := func() map[string]*toyGroup { _, r := b.spaces(); return r }
	inspect := func(context.Context) (backend.Info, error) { return b.inspectGroup(rws, key), nil }
	force := func(context.Context) (bool, error) { return b.forceGroup(rws, "r:", key), nil }
	refresh := func(ctx context.Context, tok int64, ttl time.Duration) (bool, error) {
		return b.RefreshRW(ctx, key, tok, ttl)
	}
	read = toyOps{
		acquire: func(ctx context.Context, r backend.Request) (int64, error) { return b.AcquireRead(ctx, key, r.TTL) },
		release: release, refresh: refresh, inspect: inspect, force: force,
		watch: func(ctx context.Context, _ string, _ time.Duration) (<-chan struct{}, func(), error) {
			return b.WatchRW(ctx, key)
		},
	}
	write = toyOps{
		acquire: func(ctx context.Context, r backend.Request) (int64, error) {
			return b.AcquireWrite(ctx, key, r.TTL, r.Waiter, r.Keep)
		},
		release: release, refresh: refresh, inspect: inspect, force: force,
		watch: func(ctx context.Context, w string, keep time.Duration) (<-chan struct{}, func(), error) {
			b.joinWrite(key, w, keep)
			ready, stop, err := b.WatchRW(ctx, key)
			return ready, func() {
				stop()
				_ = b.WithdrawWrite(context.Background(), key, w)
			}, err
		},
	}
	return read, write
}

func (b *toy) Multi(keys []string) backend.Lock { return b.multiOps(keys).lock() }

func (b *toy) multiOps(keys []string) toyOps {
	return toyOps{
		acquire: func(ctx context.Context, r backend.Request) (int64, error) { return b.AcquireMulti(ctx, keys, r.TTL) },
		release: func(ctx context.Context, tok int64) (bool, error) { return b.ReleaseMulti(ctx, keys, tok) },
		refresh: func(ctx context.Context, tok int64, ttl time.Duration) (bool, error) {
			return b.RefreshMulti(ctx, keys, tok, ttl)
		},
	}
}

// The faulty client's locks: each call goes through the link, and an
// attempt whose reply was lost gives back what it took, unless a defect
// says otherwise (orphans for the mutex, types-orphans for the others).

var (
	_ backend.Mutexer     = (*toyClient)(nil)
	_ backend.Semaphorer  = (*toyClient)(nil)
	_ backend.RWLocker    = (*toyClient)(nil)
	_ backend.MultiLocker = (*toyClient)(nil)
)

func (c *toyClient) Acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	return c.Mutex(key).Acquire(ctx, backend.Request{TTL: ttl})
}

func (c *toyClient) Release(ctx context.Context, key string, token int64) (bool, error) {
	return c.Mutex(key).Release(ctx, token)
}

func (c *toyClient) Mutex(key string) backend.Lock {
	return c.linked(c.toy.mutexOps(key), "orphans").lock()
}

func (c *toyClient) Semaphore(key string, limit int) backend.Lock {
	return c.linked(c.toy.semaphoreOps(key, limit), "types-orphans").lock()
}

func (c *toyClient) RWLock(key string) (read, write backend.Lock) {
	r, w := c.toy.rwOps(key)
	return c.linked(r, "types-orphans").lock(), c.linked(w, "types-orphans").lock()
}

func (c *toyClient) Multi(keys []string) backend.Lock {
	return c.linked(c.toy.multiOps(keys), "types-orphans").lock()
}

// linked is o through c's link; an attempt whose reply is lost gives back
// what it took unless c's defect is orphans.
func (c *toyClient) linked(o toyOps, orphans string) toyOps {
	acquire, release, refresh := o.acquire, o.release, o.refresh
	o.acquire = func(ctx context.Context, r backend.Request) (int64, error) {
		d, down := c.link()
		if down {
			if c.defect == "outage-as-contention" {
				return 0, nil
			}
			return 0, errToyDown
		}
		tok, err := acquire(ctx, r)
		if !reply(ctx, d) {
			// The request was applied; its reply is lost. Undo it.
			if tok > 0 && c.defect != orphans {
				_, _ = release(context.Background(), tok)
			}
			return 0, ctx.Err()
		}
		return tok, err
	}
	o.release = func(ctx context.Context, tok int64) (bool, error) {
		d, down := c.link()
		if down {
			return false, errToyDown
		}
		ok, err := release(ctx, tok)
		if !reply(ctx, d) {
			return false, ctx.Err()
		}
		return ok, err
	}
	o.refresh = func(ctx context.Context, tok int64, ttl time.Duration) (bool, error) {
		d, down := c.link()
		if down {
			return false, errToyDown
		}
		ok, err := refresh(ctx, tok, ttl)
		if !reply(ctx, d) {
			return false, ctx.Err()
		}
		return ok, err
	}
	return o
}
