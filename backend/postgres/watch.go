package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Idle is how long the listening connection stays open after its last
// waiter left, so that a Locker that waits again and again (every
// contended acquisition) does not connect and LISTEN each time.
const Idle = 10 * time.Second

// IdleGoroutines names the goroutine of an idle listening connection,
// which outlives the last waiter by up to Idle: for a goroutine leak check.
var IdleGoroutines = []string{"github.com/xsync-go/xsync/backend/postgres.(*hub).run"}

// hub is the Locker's one listening connection, opened by the first
// waiter and shared by all: LISTEN on the table's channel, whose payloads
// name the lock released (its kind and the MD5 of its key).
type hub struct {
	l *Locker

	mu      sync.Mutex
	subs    map[string]map[*func()]struct{} // by payload
	running bool
	cancel  context.CancelFunc
	up      chan struct{} // closed while LISTEN is in effect
	failed  chan struct{} // closed when a connection attempt failed (err says why)
	err     error
	idle    *time.Timer
	closed  bool
}

func newHub(l *Locker) *hub {
	return &hub{l: l, subs: map[string]map[*func()]struct{}{}, up: make(chan struct{}), failed: make(chan struct{})}
}

// listen calls fn on every notification of one of payloads, and whenever
// the connection was lost (a notification may have been lost with it),
// until stop. It returns once LISTEN is in effect.
func (h *hub) listen(ctx context.Context, payloads []string, fn func()) (stop func(), err error) {
	f := &fn
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errors.New("postgres: watch: the Locker is closed")
	}
	if h.idle != nil {
		h.idle.Stop()
		h.idle = nil
	}
	for _, p := range payloads {
		if h.subs[p] == nil {
			h.subs[p] = map[*func()]struct{}{}
		}
		h.subs[p][f] = struct{}{}
	}
	if !h.running {
		h.running = true
		rctx, cancel := context.WithCancel(context.Background())
		h.cancel = cancel
		go h.run(rctx)
	}
	up, failed := h.up, h.failed
	h.mu.Unlock()

	stop = func() { h.leave(payloads, f) }
	select {
	case <-up:
		return stop, nil
	case <-failed:
		h.mu.Lock()
		err := h.err
		h.mu.Unlock()
		stop()
		return nil, fmt.Errorf("postgres: listen: %w", classify(err))
	case <-ctx.Done():
		stop()
		return nil, fmt.Errorf("postgres: listen: %w", ctx.Err())
	}
}

func (h *hub) leave(payloads []string, f *func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range payloads {
		delete(h.subs[p], f)
		if len(h.subs[p]) == 0 {
			delete(h.subs, p)
		}
	}
	if len(h.subs) == 0 && h.running && h.idle == nil && !h.closed {
		cancel := h.cancel
		h.idle = time.AfterFunc(Idle, func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if len(h.subs) == 0 {
				cancel()
			}
			h.idle = nil
		})
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.idle != nil {
		h.idle.Stop()
	}
	if h.cancel != nil {
		h.cancel()
	}
}

// to returns the functions of the subscribers a notification is for
// (under h.mu). A payload names a lock ("kind:md5"); a mutex row's
// release adds the waiter whose turn it is (":w", ":" if no waiter is
// queued), and its grant adds ":-". A subscriber of the lock itself hears
// every one; a queued waiter's subscription ("kind:md5:w") hears its own
// name, a release that names none, and any payload of that lock without
// a name part (multi-key releases, undone attempts).
func (h *hub) to(p string) []func() {
	var fns []func()
	add := func(m map[*func()]struct{}) {
		for f := range m {
			fns = append(fns, *f)
		}
	}
	lock, head := p, ""
	if i := strings.LastIndexByte(p, ':'); i > strings.IndexByte(p, ':') {
		lock, head = p[:i], p[i+1:]
	}
	add(h.subs[lock])
	switch {
	case head == "-":
	case head != "":
		add(h.subs[lock+":"+head])
	default: // every waiter of the lock
		for sub, m := range h.subs {
			if len(sub) > len(lock) && strings.HasPrefix(sub, lock+":") {
				add(m)
			}
		}
	}
	return fns
}

// all returns every subscriber's function.
func (h *hub) all() []func() {
	var fns []func()
	for _, m := range h.subs {
		for f := range m {
			fns = append(fns, *f)
		}
	}
	return fns
}

// run keeps a listening connection while ctx lives: it connects (a
// connection of its own, with the pool's configuration, outside the
// pool), LISTENs, dispatches notifications, and after a break wakes every
// subscriber and connects again.
func (h *hub) run(ctx context.Context) {
	defer func() {
		h.mu.Lock()
		h.running = false
		h.up = make(chan struct{})
		h.mu.Unlock()
	}()
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		conn, err := h.connect(ctx)
		if err != nil {
			h.mu.Lock()
			h.err = err
			close(h.failed)
			h.failed = make(chan struct{})
			h.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		h.mu.Lock()
		close(h.up)
		h.mu.Unlock()
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				break
			}
			h.mu.Lock()
			fns := h.to(n.Payload)
			h.mu.Unlock()
			for _, fn := range fns {
				fn()
			}
		}
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(cctx)
		cancel()
		h.mu.Lock()
		h.up = make(chan struct{})
		fns := h.all()
		h.mu.Unlock()
		for _, fn := range fns {
			fn()
		}
	}
}

func (h *hub) connect(ctx context.Context) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cfg := h.l.cfg.listenCfg
	if cfg == nil {
		cfg = h.l.pool.Config().ConnConfig
	}
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(cctx, "LISTEN "+pgx.Identifier{h.l.cfg.channel()}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// check reads a lock's state for a waiter: whether an attempt may succeed
// now, and how long until the earliest holder's TTL is due (0 if none).
type check func(ctx context.Context) (free bool, next time.Duration, err error)

func (l *Locker) watch(ctx context.Context, kind string, key []byte, c check) (<-chan struct{}, func(), error) {
	return l.watchAs(ctx, kind, [][]byte{key}, "", c)
}

// watchMany wakes the waiter when one of the locks of kind and keys is
// released (NOTIFY), at once if c says the lock may be taken, and when
// the earliest holder's TTL is due (then c is read again, for the next).
func (l *Locker) watchMany(ctx context.Context, kind string, keys [][]byte, c check) (<-chan struct{}, func(), error) {
	return l.watchAs(ctx, kind, keys, "", c)
}

// watchAs is watchMany for the queued waiter (or, with "", for a waiter
// that hears every release): a release that names another waiter's turn
// does not wake it.
func (l *Locker) watchAs(ctx context.Context, kind string, keys [][]byte, waiter string, c check) (<-chan struct{}, func(), error) {
	ch := make(chan struct{}, 1)
	wake := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	stopListen := func() {}
	if l.hub != nil {
		payloads := make([]string, len(keys))
		for i, k := range keys {
			payloads[i] = payload(kind, k)
			if waiter != "" {
				payloads[i] += ":" + waiter
			}
		}
		var err error
		if stopListen, err = l.hub.listen(ctx, payloads, wake); err != nil {
			return nil, nil, err
		}
	}
	free, next, err := c(ctx)
	if err != nil {
		stopListen()
		return nil, nil, l.fail(ctx, "watch", err)
	}
	if free {
		wake()
	}
	var (
		mu      sync.Mutex
		timer   *time.Timer
		stopped bool
	)
	tctx, tcancel := context.WithCancel(context.Background())
	var arm func(d time.Duration)
	arm = func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if stopped || d <= 0 {
			return
		}
		timer = time.AfterFunc(d, func() {
			// Read first: a place ahead that was due has mostly been
			// renewed, and waking the waiter would cost an attempt.
			rctx, cancel := context.WithTimeout(tctx, undoTimeout)
			free, next, err := c(rctx)
			cancel()
			if err != nil || free {
				wake()
			}
			if err == nil {
				arm(next)
			}
		})
	}
	arm(next)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			mu.Lock()
			stopped = true
			if timer != nil {
				timer.Stop()
			}
			mu.Unlock()
			tcancel()
			stopListen()
		})
	}
	return ch, stop, nil
}

// changes tells an observer of every notification about the lock, and
// once at once.
func (l *Locker) changes(ctx context.Context, kind string, key []byte) (<-chan struct{}, func(), error) {
	ch := make(chan struct{}, 1)
	ch <- struct{}{}
	if l.hub == nil {
		return ch, func() {}, nil
	}
	stop, err := l.hub.listen(ctx, []string{payload(kind, key)}, func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, nil, err
	}
	var once sync.Once
	return ch, func() { once.Do(stop) }, nil
}
