// Package wrap puts a layer between the core and a backend that hooks
// every call to every lock the backend hands out: the conformance suite
// and the history recorder use it to count and record calls and to play
// a client's misbehaviour.
package wrap

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// Locker wraps Base: it wraps every lock Base hands out, of every kind,
// and keeps what Base has. A kind Base lacks is declined (its method
// returns nil), an ability it lacks says errors.ErrUnsupported, as the
// backend contract allows a wrapper to.
type Locker struct {
	Base  backend.Locker
	Hooks Hooks
}

// Ref names a lock of the wrapped backend: its kind ("mutex",
// "semaphore", "read", "write", "keys") and its key (a multi-key lock's
// keys, joined with spaces).
type Ref struct {
	Kind string
	Key  string
	Keys []string // a multi-key lock's keys; nil otherwise
}

// Hooks replace calls to the locks of a wrapped backend. Each gets the
// lock it was made on and the base lock to pass the call to; a nil hook
// passes the call through.
type Hooks struct {
	Acquire func(ctx context.Context, ref Ref, base backend.Lock, r backend.Request) (int64, error)
	Release func(ctx context.Context, ref Ref, base backend.Lock, token int64) (bool, error)
	Refresh func(ctx context.Context, ref Ref, base backend.Refresher, token int64, ttl time.Duration) (bool, error)
	Watch   func(ctx context.Context, ref Ref, base backend.Watcher, waiter string, keep time.Duration) (<-chan struct{}, func(), error)

	WatchGrant func(ctx context.Context, ref Ref, base backend.Granter, waiter string, keep time.Duration) (<-chan struct{}, func() (int64, int64), func(), error)
	Confirm    func(ctx context.Context, ref Ref, base backend.Granter, token int64, r backend.Request) (bool, error)
}

var (
	_ backend.Mutexer     = (*Locker)(nil)
	_ backend.Semaphorer  = (*Locker)(nil)
	_ backend.RWLocker    = (*Locker)(nil)
	_ backend.MultiLocker = (*Locker)(nil)
	_ backend.Electioner  = (*Locker)(nil)
	_ backend.Pinger      = (*Locker)(nil)
	_ backend.Lister      = (*Locker)(nil)
	_ backend.Validity    = (*Locker)(nil)
)

func (w *Locker) Acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	return w.Mutex(key).Acquire(ctx, backend.Request{TTL: ttl})
}

func (w *Locker) Release(ctx context.Context, key string, token int64) (bool, error) {
	return w.Mutex(key).Release(ctx, token)
}

func (w *Locker) Mutex(key string) backend.Lock {
	return &wrappedLock{w, Ref{Kind: "mutex", Key: key}, Mutex(w.Base, key)}
}

func (w *Locker) Semaphore(key string, limit int) backend.Lock {
	s, ok := w.Base.(backend.Semaphorer)
	if !ok {
		return nil
	}
	return &wrappedLock{w, Ref{Kind: "semaphore", Key: key}, s.Semaphore(key, limit)}
}

func (w *Locker) RWLock(key string) (read, write backend.Lock) {
	rw, ok := w.Base.(backend.RWLocker)
	if !ok {
		return nil, nil
	}
	r, wr := rw.RWLock(key)
	return &wrappedLock{w, Ref{Kind: "read", Key: key}, r}, &wrappedLock{w, Ref{Kind: "write", Key: key}, wr}
}

func (w *Locker) Election(name string) backend.Lock {
	e, ok := w.Base.(backend.Electioner)
	if !ok {
		return nil
	}
	return &wrappedLock{w, Ref{Kind: "election", Key: name}, e.Election(name)}
}

func (w *Locker) Multi(keys []string) backend.Lock {
	m, ok := w.Base.(backend.MultiLocker)
	if !ok {
		return nil
	}
	return &wrappedLock{w, Ref{Kind: "keys", Key: joinKeys(keys), Keys: keys}, m.Multi(keys)}
}

func (w *Locker) Ping(ctx context.Context) error {
	if p, ok := w.Base.(backend.Pinger); ok {
		return p.Ping(ctx)
	}
	return errors.ErrUnsupported
}

func (w *Locker) List(ctx context.Context, prefix, cursor string, limit int) ([]backend.Listed, string, error) {
	if li, ok := w.Base.(backend.Lister); ok {
		return li.List(ctx, prefix, cursor, limit)
	}
	return nil, "", errors.ErrUnsupported
}

func (w *Locker) Validity(ttl time.Duration) time.Duration {
	if v, ok := w.Base.(backend.Validity); ok {
		return v.Validity(ttl)
	}
	return ttl
}

// Mutex is the mutex of key on l: its own lock value, or one made of its
// two methods, without abilities.
func Mutex(l backend.Locker, key string) backend.Lock {
	if m, ok := l.(backend.Mutexer); ok {
		if lk := m.Mutex(key); lk != nil {
			return lk
		}
	}
	return keyedLock{l, key}
}

// keyedLock is the mutex of a backend that hands out no lock values.
type keyedLock struct {
	l   backend.Locker
	key string
}

func (k keyedLock) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	return k.l.Acquire(ctx, k.key, r.TTL)
}

func (k keyedLock) Release(ctx context.Context, token int64) (bool, error) {
	return k.l.Release(ctx, k.key, token)
}

// wrappedLock is one lock of a wrapped backend.
type wrappedLock struct {
	w    *Locker
	ref  Ref
	base backend.Lock
}

func (l *wrappedLock) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	if h := l.w.Hooks.Acquire; h != nil {
		return h(ctx, l.ref, l.base, r)
	}
	return l.base.Acquire(ctx, r)
}

func (l *wrappedLock) Release(ctx context.Context, token int64) (bool, error) {
	if h := l.w.Hooks.Release; h != nil {
		return h(ctx, l.ref, l.base, token)
	}
	return l.base.Release(ctx, token)
}

func (l *wrappedLock) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	r, ok := l.base.(backend.Refresher)
	if !ok {
		return false, errors.ErrUnsupported
	}
	if h := l.w.Hooks.Refresh; h != nil {
		return h(ctx, l.ref, r, token, ttl)
	}
	return r.Refresh(ctx, token, ttl)
}

func (l *wrappedLock) Watch(ctx context.Context, waiter string, keep time.Duration) (<-chan struct{}, func(), error) {
	w, ok := l.base.(backend.Watcher)
	if !ok {
		return nil, nil, errors.ErrUnsupported
	}
	if h := l.w.Hooks.Watch; h != nil {
		return h(ctx, l.ref, w, waiter, keep)
	}
	return w.Watch(ctx, waiter, keep)
}

func (l *wrappedLock) WatchGrant(ctx context.Context, waiter string, keep time.Duration) (<-chan struct{}, func() (int64, int64), func(), error) {
	g, ok := l.base.(backend.Granter)
	if !ok {
		return nil, nil, nil, errors.ErrUnsupported
	}
	if h := l.w.Hooks.WatchGrant; h != nil {
		return h(ctx, l.ref, g, waiter, keep)
	}
	return g.WatchGrant(ctx, waiter, keep)
}

func (l *wrappedLock) Confirm(ctx context.Context, token int64, r backend.Request) (bool, error) {
	g, ok := l.base.(backend.Granter)
	if !ok {
		return false, errors.ErrUnsupported
	}
	if h := l.w.Hooks.Confirm; h != nil {
		return h(ctx, l.ref, g, token, r)
	}
	return g.Confirm(ctx, token, r)
}

func (l *wrappedLock) Changes(ctx context.Context) (<-chan struct{}, func(), error) {
	if n, ok := l.base.(backend.Notifier); ok {
		return n.Changes(ctx)
	}
	return nil, nil, errors.ErrUnsupported
}

func (l *wrappedLock) Inspect(ctx context.Context) (backend.Info, error) {
	if in, ok := l.base.(backend.Inspector); ok {
		return in.Inspect(ctx)
	}
	return backend.Info{}, errors.ErrUnsupported
}

func (l *wrappedLock) ForceRelease(ctx context.Context) (bool, error) {
	if f, ok := l.base.(backend.ForceReleaser); ok {
		return f.ForceRelease(ctx)
	}
	return false, errors.ErrUnsupported
}

func joinKeys(keys []string) string { return strings.Join(keys, " ") }
