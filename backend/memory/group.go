package memory

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// A semaphore or a read-write lock is a group: its holders and their
// expiries, and for a read-write lock the marks of its waiting writers.
// It is forgotten once nobody holds it, waits for it or keeps a mark.
type group struct {
	holders map[int64]hold
	writer  int64            // read-write lock: the writer's token; 0 if none
	marks   map[string]int64 // read-write lock: waiting writer → until when its mark keeps new readers out
	waiters []chan struct{}
}

type hold struct {
	expires int64 // ns since Locker.base
	owner   string
}

// groups is one kind's key space.
type groups struct {
	m     map[string]*group
	swept int // len(m) after the last sweep
}

// get returns key's group with the holders and marks whose time passed
// at now dropped, creating it if create is set; nil if there is none.
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
		g = &group{holders: make(map[int64]hold)}
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
		gs.tidy(k, g, false)
	}
	gs.swept = len(gs.m)
}

// expire drops the holders and marks whose time passed at now.
func (g *group) expire(now int64) {
	for tok, h := range g.holders {
		if now >= h.expires {
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

// tidy wakes key's waiters if woke is set, and forgets the group if
// nothing in it is alive.
func (gs *groups) tidy(key string, g *group, woke bool) {
	if woke {
		wake(g.waiters)
	}
	if len(g.holders) == 0 && len(g.marks) == 0 && len(g.waiters) == 0 {
		delete(gs.m, key)
	}
}

// grant adds a holder to g under a new token.
func (l *Locker) grant(g *group, r backend.Request, now int64) int64 {
	l.seq++
	g.holders[l.seq] = hold{expires: now + int64(r.TTL), owner: r.Owner}
	return l.seq
}

// groupLock is what the kinds of group share: release, refresh, watch,
// inspect and force release on key's group in gs.
type groupLock struct {
	l   *Locker
	gs  *groups
	key string
}

func (gl groupLock) Release(_ context.Context, token int64) (bool, error) {
	l := gl.l
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	g := gl.gs.get(gl.key, now, false)
	if g == nil {
		return false, nil
	}
	_, ok := g.holders[token]
	if ok {
		delete(g.holders, token)
		if token == g.writer {
			g.writer = 0
		}
	}
	gl.gs.tidy(gl.key, g, ok)
	return ok, nil
}

func (gl groupLock) Refresh(_ context.Context, token int64, ttl time.Duration) (bool, error) {
	l := gl.l
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	g := gl.gs.get(gl.key, now, false)
	if g == nil {
		return false, nil
	}
	h, ok := g.holders[token]
	if ok {
		h.expires = now + int64(ttl)
		g.holders[token] = h
	}
	gl.gs.tidy(gl.key, g, false)
	return ok, nil
}

func (gl groupLock) Inspect(context.Context) (backend.Info, error) {
	l := gl.l
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	g := gl.gs.get(gl.key, now, false)
	if g == nil {
		return backend.Info{}, nil
	}
	info := g.info(now)
	gl.gs.tidy(gl.key, g, false)
	return info, nil
}

// info is what Inspect reads of g: its holders in token order, and the
// waiting writers' marks.
func (g *group) info(now int64) backend.Info {
	info := backend.Info{Waiting: len(g.marks)}
	for _, tok := range slices.Sorted(maps.Keys(g.holders)) {
		h := g.holders[tok]
		info.Holders = append(info.Holders, backend.Holder{Token: tok, TTL: time.Duration(h.expires - now), Owner: h.owner, Write: tok == g.writer})
	}
	return info
}

func (gl groupLock) ForceRelease(context.Context) (bool, error) {
	l := gl.l
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	g := gl.gs.get(gl.key, now, false)
	if g == nil {
		return false, nil
	}
	freed := len(g.holders) > 0
	clear(g.holders)
	g.writer = 0
	gl.gs.tidy(gl.key, g, freed)
	return freed, nil
}

// watch adds a waiter to key's group. It is woken at once if free says
// the group can be taken, on every release, and at each holder's expiry
// (a timer that follows the earliest one). join runs under l.mu when the
// watch starts, and leave when it stops: a waiting writer's mark.
func (gl groupLock) watch(free func(g *group) bool, join, leave func(g *group, now int64)) (<-chan struct{}, func(), error) {
	l := gl.l
	ch := make(chan struct{}, 1)
	now := l.clock()
	l.mu.Lock()
	g := gl.gs.get(gl.key, now, true)
	g.waiters = append(g.waiters, ch)
	if join != nil {
		join(g, now)
	}
	if free(g) {
		ch <- struct{}{}
	}
	l.mu.Unlock()

	var (
		tmu     sync.Mutex
		timer   *time.Timer
		stopped bool
	)
	// arm sets the timer to the earliest expiry of the group's holders.
	var arm func()
	arm = func() {
		now := l.clock()
		l.mu.Lock()
		next := int64(-1)
		if g := gl.gs.get(gl.key, now, false); g != nil {
			for _, h := range g.holders {
				if next < 0 || h.expires < next {
					next = h.expires
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
			wake([]chan struct{}{ch})
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
			g := gl.gs.get(gl.key, now, false)
			if g == nil {
				return
			}
			g.waiters = remove(g.waiters, ch)
			if leave != nil {
				leave(g, now)
			}
			gl.gs.tidy(gl.key, g, false)
		})
	}
	return ch, stop, nil
}

// Semaphore implements [backend.Semaphorer]. Permit tokens come from the
// Locker's one counter, like every token.
func (l *Locker) Semaphore(key string, limit int) backend.Lock {
	return semaphore{groupLock{l, &l.sems, key}, limit}
}

type semaphore struct {
	groupLock
	limit int
}

var (
	_ backend.Refresher     = semaphore{}
	_ backend.Watcher       = semaphore{}
	_ backend.Inspector     = semaphore{}
	_ backend.ForceReleaser = semaphore{}
)

func (s semaphore) Acquire(_ context.Context, r backend.Request) (int64, error) {
	l := s.l
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	g := s.gs.get(s.key, now, true)
	if len(g.holders) >= s.limit {
		return 0, nil
	}
	return l.grant(g, r, now), nil
}

// Watch wakes the waiter at once if a permit is free, on every release,
// and at each holder's expiry. Permits are not queued.
func (s semaphore) Watch(context.Context, string, time.Duration) (<-chan struct{}, func(), error) {
	return s.watch(func(g *group) bool { return len(g.holders) < s.limit }, nil, nil)
}

// RWLock implements [backend.RWLocker]: readers and writers share the
// group; a waiting writer's mark (set by its Watch, renewed by its
// refused attempts, removed by its grant or its leaving) keeps new readers
// out.
func (l *Locker) RWLock(key string) (read, write backend.Lock) {
	gl := groupLock{l, &l.rws, key}
	return reader{gl}, writer{gl}
}

type (
	reader struct{ groupLock }
	writer struct{ groupLock }
)

var (
	_ backend.Watcher = reader{}
	_ backend.Watcher = writer{}
)

func (r reader) Acquire(_ context.Context, req backend.Request) (int64, error) {
	l := r.l
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	g := r.gs.get(r.key, now, true)
	if g.writer != 0 || len(g.marks) > 0 {
		r.gs.tidy(r.key, g, false)
		return 0, nil
	}
	return l.grant(g, req, now), nil
}

// Watch wakes a reader at once if no writer holds or waits, and on every
// release and expiry, and when a waiting writer leaves.
func (r reader) Watch(context.Context, string, time.Duration) (<-chan struct{}, func(), error) {
	return r.watch(func(g *group) bool { return g.writer == 0 && len(g.marks) == 0 }, nil, nil)
}

func (w writer) Acquire(_ context.Context, req backend.Request) (int64, error) {
	l := w.l
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	g := w.gs.get(w.key, now, true)
	if len(g.holders) > 0 {
		if _, ok := g.marks[req.Waiter]; ok {
			g.marks[req.Waiter] = now + int64(req.Keep)
		}
		w.gs.tidy(w.key, g, false)
		return 0, nil
	}
	tok := l.grant(g, req, now)
	g.writer = tok
	delete(g.marks, req.Waiter)
	return tok, nil
}

// Watch sets waiter's mark, which keeps new readers out for keep (or
// until the waiter's next refused attempt renews it), and wakes the
// writer at once if nobody holds the lock, and on every release and
// expiry. stop removes the mark and wakes the readers it kept out.
func (w writer) Watch(_ context.Context, waiter string, keep time.Duration) (<-chan struct{}, func(), error) {
	return w.watch(func(g *group) bool { return len(g.holders) == 0 },
		func(g *group, now int64) {
			if g.marks == nil {
				g.marks = make(map[string]int64)
			}
			g.marks[waiter] = now + int64(keep)
		},
		func(g *group, _ int64) {
			if _, ok := g.marks[waiter]; ok {
				delete(g.marks, waiter)
				wake(g.waiters)
			}
		})
}
