package conformance_test

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// The toy's queue of waiters (backend.Watcher, backend.Granter), with its
// defects:
//   - queue-lifo: the key goes to the newest waiter, not the oldest;
//   - queue-keeps-quitters: a waiter that gives up stays queued;
//   - queue-never-drops-dead: a waiter that stops trying stays alive;
//   - queue-forgets-lost: a waiter whose place expired is not queued
//     again by its next refused attempt;
//   - grant-outlives-place: a grant lasts an hour, not as long as the
//     waiter's place would have;
//   - grant-kept-by-leaver: a waiter that leaves keeps a grant it did not
//     take;
//   - grant-unrenewed-seq: a grant tells the Seq of the waiter's latest
//     attempt, also one that did not renew its place.

type toyWaiter struct {
	id    string
	alive time.Time
	ch    chan struct{}

	grants   bool  // it takes grants
	seq      int64 // the Seq of the request that last set alive
	latest   int64 // the Seq of its latest attempt
	granted  int64 // the token of a grant it was told of and has not taken
	grantSeq int64
	took     bool // it took a grant (granted returned it)
}

func (w *toyWaiter) wake() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// queue returns key's live waiters, in the order they came (under b.mu).
func (b *toy) queue(key string, now time.Time) []*toyWaiter {
	q := b.queues[key]
	if b.defect != "queue-never-drops-dead" {
		q = slices.DeleteFunc(q, func(w *toyWaiter) bool { return !now.Before(w.alive) })
	}
	if len(q) == 0 {
		delete(b.queues, key)
		return nil
	}
	b.queues[key] = q
	return q
}

// first is the waiter whose turn it is (under b.mu).
func (b *toy) first(key string, now time.Time) *toyWaiter {
	q := b.queue(key, now)
	switch {
	case len(q) == 0:
		return nil
	case b.defect == "queue-lifo":
		return q[len(q)-1]
	}
	return q[0]
}

// freed wakes the waiter whose turn has come, if the key is free, or
// grants it the key if it takes grants (under b.mu).
func (b *toy) freed(key string, now time.Time) {
	if _, held := b.live(key, now); held {
		return
	}
	w := b.first(key, now)
	if w == nil {
		return
	}
	if w.grants {
		until := w.alive
		if b.defect == "grant-outlives-place" {
			until = now.Add(time.Hour)
		}
		tok, _ := b.grant(key, until.Sub(now), "", now)
		l := b.locks[key]
		l.grantee = w.id
		b.locks[key] = l
		b.queues[key] = slices.DeleteFunc(b.queue(key, now), func(x *toyWaiter) bool { return x == w })
		w.granted, w.grantSeq = tok, w.seq
		if b.defect == "grant-unrenewed-seq" {
			w.grantSeq = w.latest
		}
	}
	w.wake()
}

func (b *toy) WatchQueue(ctx context.Context, key, id string, keep time.Duration) (<-chan struct{}, func(), error) {
	ch, _, stop, err := b.watchQueue(ctx, key, id, keep, false)
	return ch, stop, err
}

// WatchGrant is WatchQueue for a waiter that takes grants.
func (b *toy) WatchGrant(ctx context.Context, key, id string, keep time.Duration) (<-chan struct{}, func() (int64, int64), func(), error) {
	return b.watchQueue(ctx, key, id, keep, true)
}

func (b *toy) watchQueue(_ context.Context, key, id string, keep time.Duration, grants bool) (<-chan struct{}, func() (int64, int64), func(), error) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	w := &toyWaiter{id: id, alive: now.Add(keep), ch: make(chan struct{}, 1), grants: grants}
	b.queue(key, now)
	if b.queues == nil {
		b.queues = map[string][]*toyWaiter{}
	}
	b.queues[key] = append(b.queues[key], w)
	if b.watching == nil {
		b.watching = map[string]*toyWaiter{}
	}
	b.watching[id] = w
	b.freed(key, now)
	// Wake at the holder's expiry too: the toy publishes nothing then.
	var expiry *time.Timer
	if l, held := b.live(key, now); held {
		expiry = time.AfterFunc(l.expires.Sub(now), w.wake)
	}
	granted := func() (int64, int64) {
		b.mu.Lock()
		defer b.mu.Unlock()
		tok, seq := w.granted, w.grantSeq
		if tok > 0 {
			w.granted, w.took = 0, true
		}
		return tok, seq
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if expiry != nil {
				expiry.Stop()
			}
			if b.defect == "queue-keeps-quitters" {
				return
			}
			now := time.Now()
			b.mu.Lock()
			defer b.mu.Unlock()
			delete(b.watching, w.id)
			if l, held := b.live(key, now); held && l.grantee == w.id && !w.took && b.defect != "grant-kept-by-leaver" {
				delete(b.locks, key)
				delete(b.seqs, key)
			}
			b.queues[key] = slices.DeleteFunc(b.queue(key, now), func(x *toyWaiter) bool { return x == w })
			b.freed(key, now)
		})
	}
	return w.ch, granted, stop, nil
}

// Confirm is Refresh, storing the owner too.
func (b *toy) Confirm(ctx context.Context, key string, token int64, r backend.Request) (bool, error) {
	ok, err := b.Refresh(ctx, key, token, r.TTL)
	if ok {
		b.mu.Lock()
		if l, held := b.live(key, time.Now()); held && l.token == token {
			l.owner = r.Owner
			b.locks[key] = l
		}
		b.mu.Unlock()
	}
	return ok, err
}

func (b *toy) AcquireQueued(_ context.Context, key string, ttl time.Duration, owner, id string, keep time.Duration, seq int64) (int64, error) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var me *toyWaiter
	for _, w := range b.queue(key, now) {
		if w.id == id {
			me = w
		}
	}
	// renew renews the waiter's place, once a third of its keep has passed
	// (as a backend may).
	renew := func() {
		if me == nil {
			// Its place expired: queued again, at the end.
			w := b.watching[id]
			if w == nil || b.defect == "queue-forgets-lost" {
				return
			}
			w.alive, w.seq, w.latest = now.Add(keep), seq, seq
			b.queues[key] = append(b.queues[key], w)
			return
		}
		me.latest = seq
		if me.alive.Sub(now) < keep*2/3 {
			me.alive, me.seq = now.Add(keep), seq
		}
	}
	if l, held := b.live(key, now); held {
		if l.grantee == id {
			// Its grant: the attempt takes it.
			l.expires, l.ttl, l.owner = now.Add(ttl), ttl, owner
			b.locks[key] = l
			return l.token, nil
		}
		renew()
		return 0, nil
	}
	if f := b.first(key, now); f != nil && f != me {
		renew()
		f.wake()
		return 0, nil
	}
	tok, err := b.grant(key, ttl, owner, now)
	b.queues[key] = slices.DeleteFunc(b.queue(key, now), func(x *toyWaiter) bool { return x == me })
	return tok, err
}
