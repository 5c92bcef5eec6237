package conformance_test

import (
	"context"
	"slices"
	"sync"
	"time"
)

// The toy's queue of waiters (backend.Queuer), with its defects:
//   - queue-lifo: the key goes to the newest waiter, not the oldest;
//   - queue-keeps-quitters: a waiter that gives up stays queued;
//   - queue-never-drops-dead: a waiter that stops trying stays alive.

type toyWaiter struct {
	id    string
	alive time.Time
	ch    chan struct{}
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

// freed wakes the waiter whose turn has come, if the key is free (under
// b.mu).
func (b *toy) freed(key string, now time.Time) {
	if _, held := b.live(key, now); held {
		return
	}
	if w := b.first(key, now); w != nil {
		w.wake()
	}
}

func (b *toy) WatchQueue(_ context.Context, key, id string, keep time.Duration) (<-chan struct{}, func(), error) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	w := &toyWaiter{id: id, alive: now.Add(keep), ch: make(chan struct{}, 1)}
	b.queue(key, now)
	if b.queues == nil {
		b.queues = map[string][]*toyWaiter{}
	}
	b.queues[key] = append(b.queues[key], w)
	b.freed(key, now)
	// Wake at the holder's expiry too: the toy publishes nothing then.
	var expiry *time.Timer
	if l, held := b.live(key, now); held {
		expiry = time.AfterFunc(l.expires.Sub(now), w.wake)
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
			b.queues[key] = slices.DeleteFunc(b.queue(key, now), func(x *toyWaiter) bool { return x == w })
			b.freed(key, now)
		})
	}
	return w.ch, stop, nil
}

func (b *toy) AcquireQueued(_ context.Context, key string, ttl time.Duration, owner, id string, keep time.Duration) (int64, error) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var me *toyWaiter
	for _, w := range b.queue(key, now) {
		if w.id == id {
			me = w
		}
	}
	if _, held := b.live(key, now); held {
		if me != nil {
			me.alive = now.Add(keep)
		}
		return 0, nil
	}
	if f := b.first(key, now); f != nil && f != me {
		if me != nil {
			me.alive = now.Add(keep)
		}
		f.wake()
		return 0, nil
	}
	tok, err := b.grant(key, ttl, owner, now)
	b.queues[key] = slices.DeleteFunc(b.queue(key, now), func(x *toyWaiter) bool { return x == me })
	return tok, err
}
