package memory

import (
	"context"
	"sync"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// Multi implements [backend.MultiLocker]: the mutexes of keys, all taken
// under one token, or none.
func (l *Locker) Multi(keys []string) backend.Lock { return multi{l, keys} }

type multi struct {
	l    *Locker
	keys []string
}

var (
	_ backend.Refresher     = multi{}
	_ backend.Watcher       = multi{}
	_ backend.Inspector     = multi{}
	_ backend.ForceReleaser = multi{}
)

func (m multi) Acquire(_ context.Context, r backend.Request) (int64, error) {
	l := m.l
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	for _, k := range m.keys {
		if _, ok := l.locks[k]; ok {
			return 0, nil
		}
	}
	l.seq++
	for _, k := range m.keys {
		l.grantLocked(k, held{token: l.seq, expires: now + int64(r.TTL)}, r.Owner, now)
	}
	return l.seq, nil
}

func (m multi) Release(_ context.Context, token int64) (bool, error) {
	l := m.l
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	n := 0
	for _, k := range m.keys {
		if h, ok := l.locks[k]; ok && h.token == token {
			l.forgetLocked(k, h)
			n++
		}
	}
	return n == len(m.keys), nil
}

func (m multi) Refresh(_ context.Context, token int64, ttl time.Duration) (bool, error) {
	l := m.l
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	for _, k := range m.keys {
		if h, ok := l.locks[k]; !ok || h.token != token {
			return false, nil
		}
	}
	for _, k := range m.keys {
		h := l.locks[k]
		h.expires = now + int64(ttl)
		l.pushLocked(k, h)
		if h.timer != nil {
			h.timer.Reset(ttl)
		}
		l.locks[k] = h
	}
	return true, nil
}

// Watch watches every key's mutex and merges their notifications.
func (m multi) Watch(ctx context.Context, waiter string, keep time.Duration) (<-chan struct{}, func(), error) {
	ready := make(chan struct{}, 1)
	done := make(chan struct{})
	var (
		stops []func()
		wg    sync.WaitGroup
	)
	for _, k := range m.keys {
		ch, stop, _ := mutex{m.l, k}.Watch(ctx, waiter, keep)
		stops = append(stops, stop)
		wg.Go(func() {
			for {
				select {
				case <-ch:
					wake([]chan struct{}{ready})
				case <-done:
					return
				}
			}
		})
	}
	var once sync.Once
	return ready, func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			for _, s := range stops {
				s()
			}
		})
	}, nil
}

// Inspect reports the holder of the set: the token that holds every key,
// for the time the first of them has left.
func (m multi) Inspect(context.Context) (backend.Info, error) {
	l := m.l
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	var first held
	for i, k := range m.keys {
		h, ok := l.locks[k]
		if !ok || i > 0 && h.token != first.token {
			return backend.Info{}, nil
		}
		if i == 0 || h.expires < first.expires {
			first = h
		}
	}
	return backend.Info{Holders: []backend.Holder{{Token: first.token, TTL: time.Duration(first.expires - now), Owner: l.owners[m.keys[0]]}}}, nil
}

// ForceRelease frees every key of the set, whoever holds it.
func (m multi) ForceRelease(context.Context) (bool, error) {
	l := m.l
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	freed := false
	for _, k := range m.keys {
		if h, ok := l.locks[k]; ok {
			l.forgetLocked(k, h)
			freed = true
		}
	}
	return freed, nil
}
