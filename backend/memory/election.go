package memory

import (
	"context"
	"sync"

	"github.com/xsync-go/xsync/backend"
)

// Election implements [backend.Electioner]: name's election is a mutex
// in a space of the Locker's own, apart from its mutexes, whose waiters
// are also woken by every grant, so that observers hear of new leaders.
// Its epochs come from that space's counter: they grow with every term.
func (l *Locker) Election(name string) backend.Lock {
	return election{mutex{l.elections(), name}}
}

// elections returns the Locker's election space, made on first use.
func (l *Locker) elections() *Locker {
	l.electOnce.Do(func() {
		e := New()
		e.now, e.base, e.notifyGrants = l.now, l.base, true
		l.elect.Store(e)
	})
	return l.elect.Load()
}

type election struct{ mutex }

var _ backend.Notifier = election{}

// Changes fires at once, then on every grant, release and expiry of the
// election (the expiry on the real clock, as a mutex's waiters are woken).
func (e election) Changes(context.Context) (<-chan struct{}, func(), error) {
	l, key := e.l, e.key
	ch := make(chan struct{}, 1)
	ch <- struct{}{}
	now := l.clock()
	l.mu.Lock()
	l.sweepLocked(now)
	l.watchers[key] = append(l.watchers[key], ch)
	if h, ok := l.locks[key]; ok && h.timer == nil {
		l.armLocked(key, &h, now)
		l.locks[key] = h
	}
	l.mu.Unlock()
	var once sync.Once
	return ch, func() { once.Do(func() { l.unwatch(key, ch) }) }, nil
}
