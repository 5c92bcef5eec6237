package memory

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xsync-go/xsync/backend"
)

var (
	_ backend.Locker      = (*Locker)(nil)
	_ backend.Mutexer     = (*Locker)(nil)
	_ backend.Semaphorer  = (*Locker)(nil)
	_ backend.RWLocker    = (*Locker)(nil)
	_ backend.MultiLocker = (*Locker)(nil)
	_ backend.Electioner  = (*Locker)(nil)
	_ backend.Lister      = (*Locker)(nil)
	_ backend.Pinger      = (*Locker)(nil)
)

// Option configures a Locker.
type Option func(*Locker)

// WithClock makes the Locker read the time from now instead of time.Now.
// now must be safe for concurrent use and should not go backwards.
//
// It panics if now is nil.
func WithClock(now func() time.Time) Option {
	if now == nil {
		panic("memory: WithClock(nil)")
	}
	return func(l *Locker) { l.now = now }
}

// Locker is an in-process lock backend. The zero value is not usable; call
// [New]. A Locker is safe for concurrent use.
type Locker struct {
	now  func() time.Time // nil: the real clock, read as monotonic time only
	base time.Time        // times below are nanoseconds since base

	mu       sync.Mutex
	seq      int64                      // last token handed out
	locks    map[string]held            // mutex keys held now (or expired, not yet swept)
	owners   map[string]string          // the owner metadata of the mutex keys in locks that have any
	due      expiryHeap                 // one entry per mutex grant or refresh not yet due
	watchers map[string][]chan struct{} // per mutex key, the waiters' channels
	sems     groups                     // semaphores
	rws      groups                     // read-write locks

	// notifyGrants wakes a key's waiters on grants too: an election
	// space's, for its observers.
	notifyGrants bool
	electOnce    sync.Once
	elect        atomic.Pointer[Locker] // the election space; nil until used
}

type held struct {
	token   int64
	expires int64       // nanoseconds since Locker.base
	timer   *time.Timer // wakes waiters at expiry; nil while nobody waits
}

// New returns an empty Locker that uses time.Now unless an option says
// otherwise.
func New(opts ...Option) *Locker {
	l := &Locker{
		locks:    make(map[string]held),
		owners:   make(map[string]string),
		watchers: make(map[string][]chan struct{}),
	}
	for _, o := range opts {
		o(l)
	}
	if l.now != nil {
		l.base = l.now()
	} else {
		l.base = time.Now()
	}
	return l
}

// clock returns the time in nanoseconds since l.base. With the real clock
// it reads only the monotonic clock, which is about twice as fast as
// time.Now and immune to wall-clock jumps.
func (l *Locker) clock() int64 {
	if l.now == nil {
		return int64(time.Since(l.base))
	}
	return int64(l.now().Sub(l.base))
}

// Acquire takes key's mutex for ttl if it is free. It implements
// [backend.Locker].
func (l *Locker) Acquire(_ context.Context, key string, ttl time.Duration) (int64, error) {
	return l.acquire(key, ttl, ""), nil
}

// Release frees key's mutex if token holds it. It implements
// [backend.Locker].
func (l *Locker) Release(_ context.Context, key string, token int64) (bool, error) {
	return l.release(key, token), nil
}

// Ping implements [backend.Pinger]: an in-process Locker can always serve.
func (l *Locker) Ping(context.Context) error { return nil }

// len reports how many locks the Locker keeps now: mutex keys, and the
// semaphores and read-write locks that somebody holds or waits for.
// Released and expired locks are not counted: they are forgotten.
func (l *Locker) len() int {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	l.sems.sweepAll(now)
	l.rws.sweepAll(now)
	n := len(l.locks) + len(l.sems.m) + len(l.rws.m)
	if e := l.elect.Load(); e != nil {
		n += e.len()
	}
	return n
}

// wake sends on every channel of chs, without blocking.
func wake(chs []chan struct{}) {
	for _, ch := range chs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// remove deletes ch from chs.
func remove(chs []chan struct{}, ch chan struct{}) []chan struct{} {
	if i := slices.Index(chs, ch); i >= 0 {
		chs[i] = chs[len(chs)-1]
		chs[len(chs)-1] = nil
		chs = chs[:len(chs)-1]
	}
	return chs
}

// sweepLocked forgets every mutex whose TTL has passed at now.
func (l *Locker) sweepLocked(now int64) {
	for len(l.due) > 0 && now >= l.due[0].expires {
		e := l.due.pop()
		if h, ok := l.locks[e.key]; ok && h.token == e.token && now >= h.expires {
			l.forgetLocked(e.key, h)
		}
	}
}

// pushLocked records h's expiry. Entries made stale by Release or Refresh
// stay until they are due; when they outnumber live locks the heap is
// rebuilt, so its size stays proportional to the number of locks held.
func (l *Locker) pushLocked(key string, h held) {
	if len(l.due) >= 64 && len(l.due) > 4*len(l.locks) {
		l.due = l.due[:0]
		for k, v := range l.locks {
			l.due = append(l.due, expiry{expires: v.expires, key: k, token: v.token})
		}
		for i := len(l.due)/2 - 1; i >= 0; i-- {
			l.due.down(i)
		}
	}
	l.due.push(expiry{expires: h.expires, key: key, token: h.token})
}

type expiry struct {
	expires int64
	key     string
	token   int64
}

// expiryHeap is a min-heap on expires. It is typed rather than built on
// container/heap, which would box every entry (one allocation per Acquire).
type expiryHeap []expiry

func (h *expiryHeap) push(e expiry) {
	*h = append(*h, e)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if s[i].expires >= s[p].expires {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *expiryHeap) pop() expiry {
	s := *h
	e := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s[n] = expiry{}
	*h = s[:n]
	h.down(0)
	return e
}

func (h expiryHeap) down(i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if r := c + 1; r < len(h) && h[r].expires < h[c].expires {
			c = r
		}
		if h[c].expires >= h[i].expires {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}
