package memory

import (
	"context"
	"sync"
	"time"

	"github.com/xsync-go/xsync/backend"
)

var (
	_ backend.Semaphorer  = (*Locker)(nil)
	_ backend.RWLocker    = (*Locker)(nil)
	_ backend.MultiLocker = (*Locker)(nil)
)

// group is the state of one semaphore or read-write lock: its holders and
// their expiries. It is forgotten once nobody holds it (and, for a
// read-write lock, no writer's mark is alive).
type group struct {
	holders map[int64]int64  // token → expiry, ns since Locker.base
	writer  int64            // read-write lock: the writer's token; 0 if none
	marks   map[string]int64 // read-write lock: waiting writer → until when its mark keeps new readers out
	waiters []chan struct{}
}

// groups is one lock type's key space.
type groups struct {
	m     map[string]*group
	swept int // len(m) after the last sweep
}

// get returns key's group with the holders whose TTL passed at now
// dropped, creating it if create is set; nil if there is none.
func (gs *groups) get(key string, now int64, create bool) *group {
	g := gs.m[key]
	if g == nil {
		if !create {
			return nil
		}
		if gs.m == nil {
			gs.m = make(map[string]*group)
		}
		gs.sweep(now)
		g = &group{holders: make(map[int64]int64)}
		gs.m[key] = g
		return g
	}
	g.expire(now)
	return g
}

// sweep forgets, now and then (amortized O(1) per new group), the groups
// in which nothing is alive: memory follows the locks held.
func (gs *groups) sweep(now int64) {
	if len(gs.m) <= 2*gs.swept+64 {
		return
	}
	gs.sweepAll(now)
}

func (gs *groups) sweepAll(now int64) {
	for k, g := range gs.m {
		g.expire(now)
		gs.tidy(k, g, now, false)
	}
	gs.swept = len(gs.m)
}

// expire drops the holders and marks whose time passed at now.
func (g *group) expire(now int64) {
	for tok, exp := range g.holders {
		if now >= exp {
			delete(g.holders, tok)
			if tok == g.writer {
				g.writer = 0
			}
		}
	}
	for w, until := range g.marks {
		if now >= until {
			delete(g.marks, w)
		}
	}
}

// tidy forgets key's group if nothing in it is alive, and wakes its
// waiters if woke is set.
func (gs *groups) tidy(key string, g *group, now int64, woke bool) {
	if woke {
		for _, ch := range g.waiters {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	if len(g.holders) == 0 && len(g.marks) == 0 && len(g.waiters) == 0 {
		delete(gs.m, key)
	}
}

// AcquirePermit implements [backend.Semaphorer]. Permit tokens come from
// the Locker's one counter, like every token.
func (l *Locker) AcquirePermit(_ context.Context, key string, limit int, ttl time.Duration) (int64, error) {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.sems.get(key, now, true)
	if len(g.holders) >= limit {
		return 0, nil
	}
	l.seq++
	g.holders[l.seq] = now + int64(ttl)
	return l.seq, nil
}

// ReleasePermit implements [backend.Semaphorer].
func (l *Locker) ReleasePermit(_ context.Context, key string, token int64) (bool, error) {
	return l.releaseIn(&l.sems, key, token), nil
}

// RefreshPermit implements [backend.Semaphorer].
func (l *Locker) RefreshPermit(_ context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	return l.refreshIn(&l.sems, key, token, ttl), nil
}

// WatchPermits implements [backend.Semaphorer]: a release wakes the
// waiters at once, and a holder's expiry when it is due on the real
// clock.
func (l *Locker) WatchPermits(_ context.Context, key string) (<-chan struct{}, func(), error) {
	return l.watchIn(&l.sems, key)
}

// AcquireRead implements [backend.RWLocker].
func (l *Locker) AcquireRead(_ context.Context, key string, ttl time.Duration) (int64, error) {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.rws.get(key, now, true)
	if g.writer != 0 || len(g.marks) > 0 {
		l.rws.tidy(key, g, now, false)
		return 0, nil
	}
	l.seq++
	g.holders[l.seq] = now + int64(ttl)
	return l.seq, nil
}

// AcquireWrite implements [backend.RWLocker]: a refused waiting writer
// marks the key for keep, so that new readers are refused meanwhile.
func (l *Locker) AcquireWrite(_ context.Context, key string, ttl time.Duration, w string, keep time.Duration) (int64, error) {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.rws.get(key, now, true)
	if len(g.holders) > 0 {
		if w != "" {
			if g.marks == nil {
				g.marks = make(map[string]int64)
			}
			g.marks[w] = now + int64(keep)
		} else {
			l.rws.tidy(key, g, now, false)
		}
		return 0, nil
	}
	l.seq++
	g.holders[l.seq] = now + int64(ttl)
	g.writer = l.seq
	delete(g.marks, w)
	return l.seq, nil
}

// WithdrawWrite implements [backend.RWLocker]: w's mark goes, and the
// key's waiters wake.
func (l *Locker) WithdrawWrite(_ context.Context, key, w string) error {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if g := l.rws.get(key, now, false); g != nil {
		_, had := g.marks[w]
		delete(g.marks, w)
		l.rws.tidy(key, g, now, had)
	}
	return nil
}

// ReleaseRW implements [backend.RWLocker].
func (l *Locker) ReleaseRW(_ context.Context, key string, token int64) (bool, error) {
	return l.releaseIn(&l.rws, key, token), nil
}

// RefreshRW implements [backend.RWLocker].
func (l *Locker) RefreshRW(_ context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	return l.refreshIn(&l.rws, key, token, ttl), nil
}

// WatchRW implements [backend.RWLocker], as WatchPermits.
func (l *Locker) WatchRW(_ context.Context, key string) (<-chan struct{}, func(), error) {
	return l.watchIn(&l.rws, key)
}

func (l *Locker) releaseIn(gs *groups, key string, token int64) bool {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	g := gs.get(key, now, false)
	if g == nil {
		return false
	}
	_, ok := g.holders[token]
	if ok {
		delete(g.holders, token)
		if token == g.writer {
			g.writer = 0
		}
	}
	gs.tidy(key, g, now, ok)
	return ok
}

func (l *Locker) refreshIn(gs *groups, key string, token int64, ttl time.Duration) bool {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	g := gs.get(key, now, false)
	if g == nil {
		return false
	}
	_, ok := g.holders[token]
	if ok {
		g.holders[token] = now + int64(ttl)
	}
	gs.tidy(key, g, now, false)
	return ok
}

// watchIn adds a waiter to key's group. It is woken at once if nobody
// holds key, on every release, and at each holder's expiry (a timer that
// follows the earliest one).
func (l *Locker) watchIn(gs *groups, key string) (<-chan struct{}, func(), error) {
	ch := make(chan struct{}, 1)
	now := l.clock()
	l.mu.Lock()
	g := gs.get(key, now, true)
	g.waiters = append(g.waiters, ch)
	if len(g.holders) == 0 || gs == &l.rws && g.writer == 0 && len(g.marks) == 0 {
		ch <- struct{}{} // a reader or a writer may take it now
	}
	l.mu.Unlock()

	var (
		tmu     sync.Mutex
		timer   *time.Timer
		stopped bool
	)
	// arm sets the timer to the earliest expiry of key's holders.
	var arm func()
	arm = func() {
		now := l.clock()
		l.mu.Lock()
		next := int64(-1)
		if g := gs.get(key, now, false); g != nil {
			for _, exp := range g.holders {
				if next < 0 || exp < next {
					next = exp
				}
			}
		}
		l.mu.Unlock()
		tmu.Lock()
		defer tmu.Unlock()
		if stopped || next < 0 {
			return
		}
		timer = time.AfterFunc(time.Duration(next-now), func() {
			select {
			case ch <- struct{}{}:
			default:
			}
			arm()
		})
	}
	arm()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			tmu.Lock()
			stopped = true
			if timer != nil {
				timer.Stop()
			}
			tmu.Unlock()
			now := l.clock()
			l.mu.Lock()
			defer l.mu.Unlock()
			g := gs.get(key, now, false)
			if g == nil {
				return
			}
			for i, c := range g.waiters {
				if c == ch {
					g.waiters = append(g.waiters[:i], g.waiters[i+1:]...)
					break
				}
			}
			gs.tidy(key, g, now, false)
		})
	}
	return ch, stop, nil
}

// AcquireMulti implements [backend.MultiLocker]: the keys are the mutex
// keys of Acquire, all taken under one token, or none.
func (l *Locker) AcquireMulti(_ context.Context, keys []string, ttl time.Duration) (int64, error) {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	for _, k := range keys {
		if _, ok := l.locks[k]; ok {
			return 0, nil
		}
	}
	l.seq++
	for _, k := range keys {
		h := held{token: l.seq, expires: now + int64(ttl)}
		l.pushLocked(k, h)
		if len(l.watchers[k]) > 0 {
			l.armLocked(k, &h, now)
		}
		l.locks[k] = h
	}
	return l.seq, nil
}

// ReleaseMulti implements [backend.MultiLocker].
func (l *Locker) ReleaseMulti(_ context.Context, keys []string, token int64) (bool, error) {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	n := 0
	for _, k := range keys {
		if h, ok := l.locks[k]; ok && h.token == token {
			l.forgetLocked(k, h)
			n++
		}
	}
	return n == len(keys), nil
}

// RefreshMulti implements [backend.MultiLocker].
func (l *Locker) RefreshMulti(_ context.Context, keys []string, token int64, ttl time.Duration) (bool, error) {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	for _, k := range keys {
		if h, ok := l.locks[k]; !ok || h.token != token {
			return false, nil
		}
	}
	for _, k := range keys {
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
