package memory

import (
	"context"
	"sync"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// Mutex implements [backend.Mutexer]: key's mutex, with every ability.
func (l *Locker) Mutex(key string) backend.Lock { return mutex{l, key} }

type mutex struct {
	l   *Locker
	key string
}

var (
	_ backend.Refresher     = mutex{}
	_ backend.Watcher       = mutex{}
	_ backend.Inspector     = mutex{}
	_ backend.ForceReleaser = mutex{}
)

func (m mutex) Acquire(_ context.Context, r backend.Request) (int64, error) {
	return m.l.acquire(m.key, r.TTL, r.Owner), nil
}

func (m mutex) Release(_ context.Context, token int64) (bool, error) {
	return m.l.release(m.key, token), nil
}

func (m mutex) Refresh(_ context.Context, token int64, ttl time.Duration) (bool, error) {
	l := m.l
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	h, ok := l.locks[m.key]
	if !ok || h.token != token {
		return false, nil
	}
	h.expires = now + int64(ttl)
	l.pushLocked(m.key, h)
	if h.timer != nil {
		h.timer.Reset(ttl)
	}
	l.locks[m.key] = h
	return true, nil
}

// Watch reports through ready when the key may have become free: at once
// if it is free now, on every release, and when the holder's TTL is due
// on the real clock. Waiters do not queue: waiter and keep are not used.
func (m mutex) Watch(context.Context, string, time.Duration) (<-chan struct{}, func(), error) {
	l, key := m.l, m.key
	ch := make(chan struct{}, 1)
	now := l.clock()
	l.mu.Lock()
	l.sweepLocked(now)
	l.watchers[key] = append(l.watchers[key], ch)
	if h, ok := l.locks[key]; !ok {
		ch <- struct{}{}
	} else if h.timer == nil {
		l.armLocked(key, &h, now)
		l.locks[key] = h
	}
	l.mu.Unlock()

	var once sync.Once
	stop := func() { once.Do(func() { l.unwatch(key, ch) }) }
	return ch, stop, nil
}

func (m mutex) Inspect(context.Context) (backend.Info, error) {
	l := m.l
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	h, ok := l.locks[m.key]
	if !ok {
		return backend.Info{}, nil
	}
	return backend.Info{Holders: []backend.Holder{{Token: h.token, TTL: time.Duration(h.expires - now), Owner: l.owners[m.key]}}}, nil
}

// ForceRelease frees the key whoever holds it and wakes its waiters;
// tokens keep growing (one counter per Locker).
func (m mutex) ForceRelease(context.Context) (bool, error) {
	l := m.l
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	h, ok := l.locks[m.key]
	if ok {
		l.forgetLocked(m.key, h)
	}
	return ok, nil
}

func (l *Locker) acquire(key string, ttl time.Duration, owner string) int64 {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	if _, ok := l.locks[key]; ok {
		return 0
	}
	l.seq++
	l.grantLocked(key, held{token: l.seq, expires: now + int64(ttl)}, owner, now)
	return l.seq
}

// grantLocked makes h key's holder, with its owner metadata.
func (l *Locker) grantLocked(key string, h held, owner string, now int64) {
	if owner != "" {
		l.owners[key] = owner
	}
	l.pushLocked(key, h)
	if len(l.watchers[key]) > 0 {
		l.armLocked(key, &h, now)
		if l.notifyGrants {
			wake(l.watchers[key])
		}
	}
	l.locks[key] = h
}

func (l *Locker) release(key string, token int64) bool {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	h, ok := l.locks[key]
	if !ok || h.token != token {
		return false
	}
	l.forgetLocked(key, h)
	return true
}

func (l *Locker) unwatch(key string, ch chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ws := remove(l.watchers[key], ch)
	if len(ws) > 0 {
		l.watchers[key] = ws
		return
	}
	delete(l.watchers, key)
	if h, ok := l.locks[key]; ok && h.timer != nil {
		h.timer.Stop()
		h.timer = nil
		l.locks[key] = h
	}
}

// armLocked starts the timer that wakes key's waiters when h expires.
func (l *Locker) armLocked(key string, h *held, now int64) {
	h.timer = time.AfterFunc(time.Duration(h.expires-now), func() {
		now := l.clock()
		l.mu.Lock()
		l.sweepLocked(now)
		l.mu.Unlock()
	})
}

// forgetLocked deletes key's lock and wakes its waiters.
func (l *Locker) forgetLocked(key string, h held) {
	if h.timer != nil {
		h.timer.Stop()
	}
	delete(l.locks, key)
	if len(l.owners) > 0 {
		delete(l.owners, key)
	}
	wake(l.watchers[key])
}
