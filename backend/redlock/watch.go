package redlock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// watch hears the releases of key: release and force release publish on
// every node where they freed the key, on a channel named like the key,
// and a waiter hears the first of those messages. Each node has one
// pub/sub connection per Locker, shared by all the Locker's waiters
// (subscribed to a key's channel by the first waiter of the key,
// unsubscribed by the last), opened by the first waiter and closed 10s
// after the last left.
//
// With one, the waiter lines up behind the Locker's other waiters of key
// that watch with one, and a message, or the holder's expiry, wakes only
// the first of them: a release frees the key for one holder, so one
// attempt per Locker is enough, however many of its callers wait (each
// further one would send a round to every node, and split the votes). The
// first waiter leaves the line when its watch stops, and hands on a wake it
// had not taken. An attempt by a waiter (named waiter) that is not first
// is refused without a round: the first makes the line's rounds, where
// the others' timed retries would cost every node one request per
// waiter. Without one (an election's observers), every message wakes the
// waiter.
//
// watch returns once a majority of the nodes confirmed the subscription
// (a release frees the key on a majority, and any two majorities share a
// node, so one of its messages reaches the waiter) and it has read, as
// Inspect does, how long the key stays held: the waiter is also woken at
// the holder's expiry, which publishes nothing, once a read finds the key
// free on a majority of the nodes (see read). A message lost (a node's
// connection breaking, a node that did not confirm in time) costs the
// waiter no more than its retry interval, or with one, that of the first
// waiter in its line.
func (l *Locker) watch(ctx context.Context, key string, one bool, waiter string) (<-chan struct{}, func(), error) {
	k := l.prefix + mutexSpace + key
	w := &watcher{ch: make(chan struct{}, 1), name: waiter}
	w.ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	notify := w.notify
	if one {
		l.lines.join(k, w)
		notify = func() { l.lines.wake(k) }
	}
	type joined struct {
		stop func()
		err  error
	}
	confirmed := make(chan joined, l.n)
	for i := range l.hubs {
		go func() {
			stop, err := l.hubs[i].Listen(ctx, k, "", notify)
			confirmed <- joined{stop, err}
		}()
	}
	var (
		mu    sync.Mutex
		stops []func()
		done  bool
	)
	// Stragglers that confirm after stop still leave.
	keep := func(j joined) {
		mu.Lock()
		defer mu.Unlock()
		if j.err != nil {
			return
		}
		if done {
			j.stop()
			return
		}
		stops = append(stops, j.stop)
	}
	pending := l.n
	stop := func() {
		w.stopTimer()
		if one {
			l.lines.leave(k, w)
		}
		mu.Lock()
		done = true
		ss := stops
		stops = nil
		mu.Unlock()
		for _, s := range ss {
			s()
		}
		go func(n int) { // the rest confirm or fail by ctx's end; leave them then
			for range n {
				keep(<-confirmed)
			}
		}(pending)
	}
	var errs []error
	for ok := 0; ok < l.quorum; {
		select {
		case j := <-confirmed:
			pending--
			keep(j)
			if j.err == nil {
				ok++
				continue
			}
			errs = append(errs, j.err)
			if len(errs) > l.n-l.quorum {
				stop()
				return nil, nil, fmt.Errorf("redlock: watch: too few nodes subscribed: %w", errors.Join(errs...))
			}
		case <-ctx.Done():
			stop()
			return nil, nil, fmt.Errorf("redlock: watch: %w", ctx.Err())
		}
	}
	_, free, err := l.read(ctx, key)
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("redlock: watch: %w", err)
	}
	// The holder's expiry: a timer at the time read gave, and when it
	// fires, a new read, for the key may still be held (a node that did
	// not answer, a millisecond's rounding, a later holder, or a holder
	// that refreshed). The waiter wakes when the read finds it free, and
	// otherwise the timer is set again: an attempt made too early would
	// fail, and the waiter would sleep out its retry interval. A read
	// that fails wakes the waiter.
	var arm func(time.Duration)
	arm = func(d time.Duration) {
		w.setTimer(d, func() {
			ctx, cancel := context.WithTimeout(w.ctx, l.quorumTimeout)
			_, free, err := l.read(ctx, key)
			cancel()
			switch {
			case w.ctx.Err() != nil:
			case err == nil && free > 0:
				arm(free)
			default:
				notify()
			}
		})
	}
	switch {
	case free == 0:
		// Free now: the line's first waiter may take it (a waiter behind
		// it would be refused), even if it missed the release.
		notify()
	case free > 0:
		arm(free)
	}
	var once sync.Once
	return w.ch, func() { once.Do(stop) }, nil
}

type watcher struct {
	ch   chan struct{}
	name string // the waiter's name; "" for none
	// ctx ends when the watch stops: the expiry timer's reads use it.
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	timer *time.Timer
}

func (w *watcher) notify() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// setTimer runs f after d, unless the watch stopped.
func (w *watcher) setTimer(d time.Duration, f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ctx.Err() == nil {
		w.timer = time.AfterFunc(d, f)
	}
}

// stopTimer stops the expiry timer, and a read it is making.
func (w *watcher) stopTimer() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cancel()
	if w.timer != nil {
		w.timer.Stop()
	}
}

// lines are the waiters of each key on one Locker that wake one at a
// time, in arrival order (see watch).
type lines struct {
	mu   sync.Mutex
	keys map[string][]*watcher
}

// join puts w at the end of k's line.
func (q *lines) join(k string, w *watcher) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.keys == nil {
		q.keys = make(map[string][]*watcher)
	}
	q.keys[k] = append(q.keys[k], w)
}

// behind reports whether a waiter named waiter is in k's line behind
// another.
func (q *lines) behind(k, waiter string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	ws := q.keys[k]
	return len(ws) > 1 && slices.ContainsFunc(ws[1:], func(w *watcher) bool { return w.name == waiter })
}

// wake wakes the first waiter of k's line.
func (q *lines) wake(k string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if ws := q.keys[k]; len(ws) > 0 {
		ws[0].notify()
	}
}

// leave takes w out of k's line. A wake that w had not taken goes to the
// waiter that is first now.
func (q *lines) leave(k string, w *watcher) {
	q.mu.Lock()
	defer q.mu.Unlock()
	ws := q.keys[k]
	i := slices.Index(ws, w)
	if i < 0 {
		return
	}
	ws = slices.Delete(ws, i, i+1)
	if len(ws) == 0 {
		delete(q.keys, k)
		return
	}
	q.keys[k] = ws
	if i == 0 {
		select {
		case <-w.ch:
			ws[0].notify()
		default:
		}
	}
}
