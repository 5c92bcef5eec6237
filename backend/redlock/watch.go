package redlock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Watch implements [backend.Watcher]: release and force release publish
// on every node where they freed the key, on a channel named like the
// key, and a waiter hears the first of those messages. Each node has one
// pub/sub connection per Locker, shared by all the Locker's waiters (a
// channel per watched key, subscribed by the first waiter of the key and
// unsubscribed by the last); it is opened by the first waiter and closed
// when no key is watched.
//
// Watch returns once a majority of the nodes confirmed the subscription
// (a release frees the key on a majority, and any two majorities share a
// node, so one of its messages reaches the waiter) and it has read, as
// Inspect does, how long the key stays held: the waiter is also woken at
// the holder's expiry, which publishes nothing. A message lost (a node's
// connection breaking, a node that did not confirm in time) costs the
// waiter no more than its retry interval.
func (l *Locker) Watch(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	k := l.prefix + key
	w := &watcher{ch: make(chan struct{}, 1)}
	confirmed := make(chan error, l.n)
	for i := range l.subs {
		go func() { confirmed <- l.subs[i].join(ctx, l.clients[i], k, w) }()
	}
	stop := func() {
		w.stopTimer()
		for i := range l.subs {
			l.subs[i].leave(k, w)
		}
	}
	var errs []error
	for ok := 0; ok < l.quorum; {
		select {
		case err := <-confirmed:
			if err == nil {
				ok++
				continue
			}
			errs = append(errs, err)
			if len(errs) > l.n-l.quorum {
				stop()
				return nil, nil, fmt.Errorf("redlock: watch: too few nodes subscribed: %w", errors.Join(errs...))
			}
		case <-ctx.Done():
			stop()
			return nil, nil, fmt.Errorf("redlock: watch: %w", ctx.Err())
		}
	}
	info, err := l.Inspect(ctx, key)
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("redlock: watch: %w", err)
	}
	if !info.Held {
		w.notify()
	} else {
		w.setTimer(info.TTL)
	}
	var once sync.Once
	return w.ch, func() { once.Do(stop) }, nil
}

type watcher struct {
	ch    chan struct{}
	mu    sync.Mutex
	timer *time.Timer
}

func (w *watcher) notify() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

func (w *watcher) setTimer(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = time.AfterFunc(d, w.notify)
}

func (w *watcher) stopTimer() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
}

// IdleGoroutines names the goroutine of a node's idle pub/sub
// connection, which outlives a Locker's last waiter by up to 10s: for a
// goroutine leak check (conformance.Limits.IgnoreGoroutines).
var IdleGoroutines = []string{"github.com/xsync-go/xsync/backend/redlock.(*nodeSub).read"}

// subIdle is how long a node's pub/sub connection stays open after its
// last waiter left, so that a Locker that waits again and again (every
// contended acquisition) does not dial each time.
const subIdle = 10 * time.Second

// nodeSub is one node's pub/sub connection of a Locker: the channels it
// is subscribed to, their waiters, and a reader that dispatches messages
// and subscription confirmations.
type nodeSub struct {
	mu    sync.Mutex
	ps    *goredis.PubSub
	idle  *time.Timer // closes ps once no channel is left for subIdle
	chans map[string]*channelWaiters
}

type channelWaiters struct {
	watchers  map[*watcher]struct{}
	confirmed chan struct{} // closed when the node confirmed the subscription
}

// join adds w to the waiters of channel on this node, subscribing first
// if w is the channel's first waiter, and returns once the node has
// confirmed the subscription.
func (s *nodeSub) join(ctx context.Context, c goredis.UniversalClient, channel string, w *watcher) error {
	s.mu.Lock()
	if s.idle != nil {
		s.idle.Stop()
		s.idle = nil
	}
	if s.ps == nil {
		s.ps = c.Subscribe(context.WithoutCancel(ctx))
		s.chans = make(map[string]*channelWaiters)
		go s.read(s.ps)
	}
	cw, ok := s.chans[channel]
	if !ok {
		cw = &channelWaiters{watchers: make(map[*watcher]struct{}), confirmed: make(chan struct{})}
		s.chans[channel] = cw
	}
	cw.watchers[w] = struct{}{}
	ps := s.ps
	s.mu.Unlock()
	if !ok {
		// go-redis keeps the channel in its list even if this write
		// fails, and subscribes again on reconnect: a later waiter of the
		// channel is then confirmed by the reconnect.
		if err := ps.Subscribe(ctx, channel); err != nil {
			return err
		}
	}
	select {
	case <-cw.confirmed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leave removes w from channel's waiters and unsubscribes if it was the
// last; once no channel is left for subIdle, the connection is closed.
func (s *nodeSub) leave(channel string, w *watcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cw, ok := s.chans[channel]
	if !ok {
		return
	}
	delete(cw.watchers, w)
	if len(cw.watchers) > 0 {
		return
	}
	delete(s.chans, channel)
	ps := s.ps
	// UNSUBSCRIBE is written, not awaited; a message that arrives before
	// it takes effect wakes nobody.
	_ = ps.Unsubscribe(context.Background(), channel)
	if len(s.chans) == 0 {
		s.idle = time.AfterFunc(subIdle, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.ps == ps && len(s.chans) == 0 {
				s.ps, s.idle = nil, nil
				ps.Close()
			}
		})
	}
}

// read dispatches ps's messages until ps is closed. A confirmation marks
// the channel subscribed; a message wakes the channel's waiters. After a
// reconnect go-redis subscribes again and the node confirms again.
func (s *nodeSub) read(ps *goredis.PubSub) {
	for {
		m, err := ps.Receive(context.Background())
		if errors.Is(err, goredis.ErrClosed) {
			return
		}
		if err != nil {
			// The connection broke; the next Receive reconnects and
			// subscribes again. Pace the attempts while the node is down.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.ps != ps { // closed while this message was on its way
			s.mu.Unlock()
			return
		}
		switch m := m.(type) {
		case *goredis.Subscription:
			if cw, ok := s.chans[m.Channel]; ok && m.Kind == "subscribe" {
				select {
				case <-cw.confirmed:
				default:
					close(cw.confirmed)
				}
			}
		case *goredis.Message:
			if cw, ok := s.chans[m.Channel]; ok {
				for w := range cw.watchers {
					w.notify()
				}
			}
		}
		s.mu.Unlock()
	}
}
