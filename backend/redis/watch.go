package redis

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// watcher is one waiter's watch of a lock: its ready channel, fed by the
// Locker's pub/sub hub and by a timer at the holder's expiry (Redis
// publishes nothing then).
type watcher struct {
	ready  chan struct{}
	listen func() // ends the hub's listening
	mu     sync.Mutex
	timer  *time.Timer
}

func (w *watcher) notify() {
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

// watch listens on the channel of the lock k for the waiter name ("": a
// waiter that hears every release), feeding ready (nil: a channel of its
// own), then runs state, a script that reads
// (and may join) the lock: it answers 0 if the waiter may take the lock
// now, the holder's time left in milliseconds, or -1 if another waiter's
// turn has come (the script woke it). Watch returns after the server
// confirmed the subscription and state answered, so no release after it
// is missed, short of a reconnect.
func (l *Locker) watch(ctx context.Context, k, name string, ready chan struct{}, state func(context.Context) (int64, error)) (*watcher, error) {
	if ready == nil {
		ready = make(chan struct{}, 1)
	}
	return l.watchFor(ctx, k, name, ready, nil, state)
}

// watchFor is watch, with deliver (if not nil) hearing the messages for
// name instead of a plain wake-up: it must feed ready itself.
func (l *Locker) watchFor(ctx context.Context, k, name string, ready chan struct{}, deliver func(msg string), state func(context.Context) (int64, error)) (*watcher, error) {
	w := &watcher{ready: ready}
	if deliver == nil {
		deliver = func(string) { w.notify() }
	}
	listen, err := l.hub.ListenFor(ctx, k, name, deliver)
	if err != nil {
		return nil, fmt.Errorf("redis: watch: %w", l.classify(err))
	}
	w.listen = listen
	left, err := state(ctx)
	if err != nil {
		listen()
		return nil, fmt.Errorf("redis: watch: %w", l.classify(err))
	}
	switch {
	case left == 0:
		w.notify()
	case left > 0:
		w.mu.Lock()
		w.timer = time.AfterFunc(time.Duration(left)*time.Millisecond, w.notify)
		w.mu.Unlock()
	}
	return w, nil
}

// stop ends the watch.
func (w *watcher) stop() {
	w.mu.Lock()
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
	w.listen()
}

// plainWatch is the watch of a waiter that keeps no place: it hears
// every release of k, and wakes at the holder's expiry as held says.
func (l *Locker) plainWatch(ctx context.Context, k string, held func(context.Context, string) (int64, error)) (<-chan struct{}, func(), error) {
	w, err := l.watch(ctx, k, "", nil, func(ctx context.Context) (int64, error) { return held(ctx, k) })
	if err != nil {
		return nil, nil, err
	}
	return w.ready, sync.OnceFunc(w.stop), nil
}
