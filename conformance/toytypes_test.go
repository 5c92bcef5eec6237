package conformance_test

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// The toy's other lock types (backend.Semaphorer, RWLocker, MultiLocker),
// with notification of releases and of the first holder's expiry for
// permits and read-write locks, and none for several keys (the toy has no Watcher),
// with their defects:
//   - sem-over-limit: one permit more than the limit;
//   - sem-never-expires: permits outlive their TTL;
//   - rw-readers-ignore-writer: readers are let in while a writer holds;
//   - rw-starves-writer: a refused writer leaves no mark, so readers that
//     keep coming keep it out;
//   - rw-oneshot-marks: a writer that will not wait leaves a mark too;
//   - rw-quitter-keeps-mark: a writer that gives up leaves its mark;
//   - multi-partial: a refused AcquireAll keeps the free keys it took;
//   - multi-key-outlives: releasing one key of a multi-key lock keeps the
//     others held for ever (as a lease reused while keys hang on it would);
//   - types-orphans: a permit whose reply was lost stays held;
//   - types-no-wake: releases wake no waiter;
//   - types-no-expiry-wake: a holder's expiry wakes no waiter;
//   - inspect-misses-permits: Inspect of a semaphore or a read-write lock
//     shows its first holder only;
//   - force-keeps-readers: ForceRelease of a read-write lock frees its
//     writer only;
//   - list-skips-rw: List shows no read-write lock;
//   - kinds-share-keys: semaphores and read-write locks of one key share
//     their state.

type toyGroup struct {
	holders map[int64]time.Time // token → expiry
	writer  int64
	marks   map[string]time.Time // waiting writer → new readers refused until then
}

// marked reports whether a waiting writer's mark is alive at now.
func (g *toyGroup) marked(now time.Time) bool {
	for w, until := range g.marks {
		if !now.Before(until) {
			delete(g.marks, w)
		}
	}
	return len(g.marks) > 0
}

// group returns key's live group in space (under b.mu).
func (b *toy) group(space map[string]*toyGroup, key string, now time.Time) *toyGroup {
	g := space[key]
	if g == nil {
		g = &toyGroup{holders: map[int64]time.Time{}}
		space[key] = g
	}
	for tok, exp := range g.holders {
		if b.defect == "sem-never-expires" && g.writer == 0 {
			continue
		}
		if !now.Before(exp) {
			delete(g.holders, tok)
			if tok == g.writer {
				g.writer = 0
			}
		}
	}
	return g
}

func (b *toy) spaces() (sems, rws map[string]*toyGroup) {
	if b.sems == nil {
		b.sems, b.rws = map[string]*toyGroup{}, map[string]*toyGroup{}
		if b.defect == "kinds-share-keys" {
			b.rws = b.sems
		}
	}
	return b.sems, b.rws
}

// inspectGroup reads key's group in space.
func (b *toy) inspectGroup(space func() map[string]*toyGroup, key string) backend.Info {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.groupInfo(b.group(space(), key, now), now)
}

func (b *toy) groupInfo(g *toyGroup, now time.Time) backend.Info {
	var in backend.Info
	for _, tok := range slices.Sorted(maps.Keys(g.holders)) {
		in.Holders = append(in.Holders, backend.Holder{Token: tok, TTL: g.holders[tok].Sub(now), Write: tok == g.writer})
	}
	if b.defect == "inspect-misses-permits" && len(in.Holders) > 1 {
		in.Holders = in.Holders[:1]
	}
	if g.marked(now) {
		in.Waiting = len(g.marks)
	}
	return in
}

// forceGroup frees key's group in space, whoever holds it, and wakes its
// waiters (named name+key).
func (b *toy) forceGroup(space func() map[string]*toyGroup, name, key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.group(space(), key, time.Now())
	freed := len(g.holders) > 0
	for tok := range g.holders {
		if name == "r:" && b.defect == "force-keeps-readers" && tok != g.writer {
			continue
		}
		delete(g.holders, tok)
	}
	g.writer = 0
	b.wakeGroup(name + key)
	return freed
}

// List implements backend.Lister: the held mutexes, and the held (or
// waited for) semaphores and read-write locks, by kind and key.
func (b *toy) List(_ context.Context, prefix, cursor string, limit int) ([]backend.Listed, string, error) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var all []backend.Listed
	for k := range b.locks {
		if l, ok := b.live(k, now); ok && strings.HasPrefix(k, prefix) {
			all = append(all, backend.Listed{Kind: "mutex", Key: k, Info: backend.Info{Holders: []backend.Holder{{Token: l.token, TTL: l.expires.Sub(now), Owner: l.owner}}}})
		}
	}
	sems, rws := b.spaces()
	for _, sp := range []struct {
		kind  string
		space map[string]*toyGroup
	}{{"semaphore", sems}, {"rwlock", rws}} {
		if sp.kind == "rwlock" && b.defect == "list-skips-rw" {
			continue
		}
		for k := range sp.space {
			if in := b.groupInfo(b.group(sp.space, k, now), now); strings.HasPrefix(k, prefix) && (len(in.Holders) > 0 || in.Waiting > 0) {
				all = append(all, backend.Listed{Kind: sp.kind, Key: k, Info: in})
			}
		}
	}
	slices.SortFunc(all, func(a, b backend.Listed) int { return strings.Compare(a.Kind+"\x00"+a.Key, b.Kind+"\x00"+b.Key) })
	start := 0
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil {
			return nil, "", err
		}
		start = min(n, len(all))
	}
	end := min(start+limit, len(all))
	next := ""
	if end < len(all) {
		next = strconv.Itoa(end)
	}
	return all[start:end], next, nil
}

func (b *toy) AcquirePermit(_ context.Context, key string, limit int, ttl time.Duration) (int64, error) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	sems, _ := b.spaces()
	g := b.group(sems, key, now)
	if b.defect == "sem-over-limit" {
		limit++
	}
	if len(g.holders) >= limit {
		return 0, nil
	}
	b.seq++
	g.holders[b.seq] = now.Add(ttl)
	return b.seq, nil
}

func (b *toy) ReleasePermit(_ context.Context, key string, token int64) (bool, error) {
	sems, _ := b.locked()
	defer b.mu.Unlock()
	return b.leave(sems, "s:", key, token), nil
}

func (b *toy) RefreshPermit(_ context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	sems, _ := b.locked()
	defer b.mu.Unlock()
	return b.extend(sems, key, token, ttl), nil
}

func (b *toy) WatchPermits(_ context.Context, key string) (<-chan struct{}, func(), error) {
	sems, _ := b.locked()
	defer b.mu.Unlock()
	return b.watchGroup(sems, "s:", key)
}

// watchGroup adds a waiter of key's group in space (under b.mu), woken at
// once if nobody holds the group.
func (b *toy) watchGroup(space map[string]*toyGroup, name, key string) (<-chan struct{}, func(), error) {
	id := name + key
	ch := make(chan struct{}, 1)
	now := time.Now()
	g := b.group(space, key, now)
	if len(g.holders) == 0 || name == "r:" && g.writer == 0 && !g.marked(now) {
		ch <- struct{}{}
	}
	// Wake at the first holder's expiry too: the toy publishes nothing then.
	var first time.Time
	for _, exp := range g.holders {
		if first.IsZero() || exp.Before(first) {
			first = exp
		}
	}
	timer := time.AfterFunc(first.Sub(now), func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	if first.IsZero() || b.defect == "types-no-expiry-wake" {
		timer.Stop()
	}
	if b.groupWaiters == nil {
		b.groupWaiters = map[string][]chan struct{}{}
	}
	b.groupWaiters[id] = append(b.groupWaiters[id], ch)
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			timer.Stop()
			b.mu.Lock()
			defer b.mu.Unlock()
			b.groupWaiters[id] = slices.DeleteFunc(b.groupWaiters[id], func(c chan struct{}) bool { return c == ch })
			if len(b.groupWaiters[id]) == 0 {
				delete(b.groupWaiters, id)
			}
		})
	}, nil
}

// wakeGroup wakes the waiters of the group named id (under b.mu).
func (b *toy) wakeGroup(id string) {
	if b.defect == "types-no-wake" {
		return
	}
	for _, ch := range b.groupWaiters[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (b *toy) AcquireRead(_ context.Context, key string, ttl time.Duration) (int64, error) {
	now := time.Now()
	_, rws := b.locked()
	defer b.mu.Unlock()
	g := b.group(rws, key, now)
	if (g.writer != 0 && b.defect != "rw-readers-ignore-writer") || g.marked(now) {
		return 0, nil
	}
	b.seq++
	g.holders[b.seq] = now.Add(ttl)
	return b.seq, nil
}

func (b *toy) AcquireWrite(_ context.Context, key string, ttl time.Duration, w string, keep time.Duration) (int64, error) {
	now := time.Now()
	_, rws := b.locked()
	defer b.mu.Unlock()
	g := b.group(rws, key, now)
	if w == "" && b.defect == "rw-oneshot-marks" {
		w, keep = "oneshot", time.Second
	}
	if len(g.holders) > 0 {
		if w != "" && b.defect != "rw-starves-writer" {
			if g.marks == nil {
				g.marks = map[string]time.Time{}
			}
			g.marks[w] = now.Add(keep)
		}
		return 0, nil
	}
	b.seq++
	g.holders[b.seq] = now.Add(ttl)
	g.writer = b.seq
	delete(g.marks, w)
	return b.seq, nil
}

// joinWrite sets the waiting writer w's mark, which keeps new readers out
// for keep.
func (b *toy) joinWrite(key, w string, keep time.Duration) {
	now := time.Now()
	_, rws := b.locked()
	defer b.mu.Unlock()
	if b.defect == "rw-starves-writer" {
		return
	}
	g := b.group(rws, key, now)
	if g.marks == nil {
		g.marks = map[string]time.Time{}
	}
	g.marks[w] = now.Add(keep)
}

func (b *toy) WithdrawWrite(_ context.Context, key, w string) error {
	_, rws := b.locked()
	defer b.mu.Unlock()
	if b.defect == "rw-quitter-keeps-mark" {
		return nil
	}
	if g := rws[key]; g != nil {
		delete(g.marks, w)
		b.wakeGroup("r:" + key)
	}
	return nil
}

func (b *toy) ReleaseRW(_ context.Context, key string, token int64) (bool, error) {
	_, rws := b.locked()
	defer b.mu.Unlock()
	return b.leave(rws, "r:", key, token), nil
}

func (b *toy) RefreshRW(_ context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	_, rws := b.locked()
	defer b.mu.Unlock()
	return b.extend(rws, key, token, ttl), nil
}

func (b *toy) WatchRW(_ context.Context, key string) (<-chan struct{}, func(), error) {
	_, rws := b.locked()
	defer b.mu.Unlock()
	return b.watchGroup(rws, "r:", key)
}

// locked takes b.mu and returns the spaces.
func (b *toy) locked() (sems, rws map[string]*toyGroup) {
	b.mu.Lock()
	return b.spaces()
}

func (b *toy) leave(space map[string]*toyGroup, name, key string, token int64) bool {
	g := b.group(space, key, time.Now())
	_, ok := g.holders[token]
	if ok {
		b.wakeGroup(name + key)
	}
	delete(g.holders, token)
	if token == g.writer {
		g.writer = 0
	}
	if len(g.holders) == 0 && !g.marked(time.Now()) {
		delete(space, key)
	}
	return ok
}

func (b *toy) extend(space map[string]*toyGroup, key string, token int64, ttl time.Duration) bool {
	now := time.Now()
	g := b.group(space, key, now)
	if _, ok := g.holders[token]; !ok {
		return false
	}
	g.holders[token] = now.Add(ttl)
	return true
}

func (b *toy) AcquireMulti(_ context.Context, keys []string, ttl time.Duration) (int64, error) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	tok := b.seq
	free := true
	for _, k := range keys {
		if _, held := b.live(k, now); held {
			free = false
			continue
		}
		if b.defect == "multi-partial" {
			b.locks[k] = toyHeld{token: tok, expires: now.Add(ttl), ttl: ttl}
		}
	}
	if !free {
		return 0, nil
	}
	for _, k := range keys {
		b.locks[k] = toyHeld{token: tok, expires: now.Add(ttl), ttl: ttl}
	}
	return tok, nil
}

func (b *toy) ReleaseMulti(_ context.Context, keys []string, token int64) (bool, error) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, k := range keys {
		if l, ok := b.live(k, now); ok && l.token == token {
			delete(b.locks, k)
			b.freed(k, now)
			n++
		}
	}
	return n == len(keys), nil
}

func (b *toy) RefreshMulti(_ context.Context, keys []string, token int64, ttl time.Duration) (bool, error) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, k := range keys {
		if l, ok := b.live(k, now); !ok || l.token != token {
			return false, nil
		}
	}
	for _, k := range keys {
		l := b.locks[k]
		l.expires, l.ttl = now.Add(ttl), ttl
		b.locks[k] = l
	}
	return true, nil
}
