package history

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/wrap"
)

// holdKey finds a hold by what its later calls know of it.
type holdKey struct {
	client int
	lock   string // the lock's group key (see group)
	token  int64
}

// historian keeps the history as the wrapped backends and the workers
// report it.
type historian struct {
	start   time.Time
	fencing bool          // the backend's tokens fence
	fifo    bool          // the backend queues a mutex's waiters
	ttl     time.Duration // the TTL every waiting acquisition asks for

	mu     sync.Mutex
	holds  []*hold
	index  map[holdKey]*hold
	atts   []attempt
	writes []write
	strays []stray
	queued []queued
	faults []fault
	errors map[string]int
	top    map[string]int64 // the model resource: per group, the largest token accepted
}

func newHistorian(fencing, fifo bool) *historian {
	return &historian{start: time.Now(), fencing: fencing, fifo: fifo, index: map[holdKey]*hold{}, errors: map[string]int{}, top: map[string]int64{}}
}

func (r *historian) now() int64 { return int64(time.Since(r.start)) }

// group is the key under which the checker groups a lock's holds: the
// mutexes and multi-key locks share their keys' groups, semaphores and
// read-write locks have groups of their own.
func group(ref wrap.Ref) []string {
	switch ref.Kind {
	case "semaphore":
		return []string{"s/" + ref.Key}
	case "read", "write":
		return []string{"rw/" + ref.Key}
	case "election":
		return []string{"e/" + ref.Key}
	case "keys":
		out := make([]string, len(ref.Keys))
		for i, k := range ref.Keys {
			out[i] = "m/" + k
		}
		return out
	}
	return []string{"m/" + ref.Key}
}

// wrap records every call client c makes to l.
func (r *historian) wrap(c int, l backend.Locker) *wrap.Locker {
	validity := func(ttl time.Duration) int64 {
		if v, ok := l.(backend.Validity); ok {
			return int64(min(max(v.Validity(ttl), 0), ttl))
		}
		return int64(ttl)
	}
	w := &wrap.Locker{Base: l}
	// When a waiter that takes grants sent each request, by waiter and
	// Seq: a grant is timed from the request it follows.
	var sentMu sync.Mutex
	sent := map[string]map[int64]int64{}
	w.Hooks.Acquire = func(ctx context.Context, ref wrap.Ref, base backend.Lock, req backend.Request) (int64, error) {
		call := r.now()
		if req.Seq > 0 {
			sentMu.Lock()
			if m := sent[req.Waiter]; m != nil {
				m[req.Seq] = call
			}
			sentMu.Unlock()
		}
		tok, err := base.Acquire(ctx, req)
		ret := r.now()
		r.acquired(c, ref, req, attemptTimes{call, ret, validity(req.TTL)}, tok, err)
		if tok <= 0 && req.Waiter != "" && r.keepsPlaces(ref) {
			// A waiter's refused attempt may put or renew its place (etcd
			// renews a waiting writer's mark so), which then lives for its
			// keep time even if the waiter stops before its next Watch.
			r.place(ref, req.Waiter, call, ret, req.Keep)
		}
		return tok, err
	}
	w.Hooks.Release = func(ctx context.Context, ref wrap.Ref, base backend.Lock, token int64) (bool, error) {
		call := r.now()
		ok, err := base.Release(ctx, token)
		r.outcome(c, ref, token, outcome{call: call, ret: r.now(), ok: ok, failed: err != nil}, true)
		return ok, err
	}
	w.Hooks.Refresh = func(ctx context.Context, ref wrap.Ref, base backend.Refresher, token int64, ttl time.Duration) (bool, error) {
		call := r.now()
		ok, err := base.Refresh(ctx, token, ttl)
		r.outcome(c, ref, token, outcome{call: call, ret: r.now(), ok: ok, failed: err != nil}, false)
		return ok, err
	}
	// A waiter's place explains contention: while a queued mutex (or
	// election) waiter or a waiting writer keeps one, the backend may refuse the lock to
	// others (those behind it; new readers).
	w.Hooks.Watch = func(ctx context.Context, ref wrap.Ref, base backend.Watcher, waiter string, keep time.Duration) (<-chan struct{}, func(), error) {
		from := r.now()
		ch, stop, err := base.Watch(ctx, waiter, keep)
		if !r.keepsPlaces(ref) {
			return ch, stop, err
		}
		left := func() { r.place(ref, waiter, from, r.now(), keep) }
		if err != nil {
			left() // the place may have been taken before the call failed
			return ch, stop, err
		}
		return ch, func() {
			stop()
			left()
		}, nil
	}
	w.Hooks.WatchGrant = func(ctx context.Context, ref wrap.Ref, base backend.Granter, waiter string, keep time.Duration) (<-chan struct{}, func() (int64, int64), func(), error) {
		from := r.now()
		sentMu.Lock()
		sent[waiter] = map[int64]int64{0: from}
		sentMu.Unlock()
		ch, granted, stop, err := base.WatchGrant(ctx, waiter, keep)
		left := func() {
			if r.keepsPlaces(ref) {
				r.place(ref, waiter, from, r.now(), keep)
			}
			sentMu.Lock()
			delete(sent, waiter)
			sentMu.Unlock()
		}
		if err != nil {
			left()
			return ch, granted, stop, err
		}
		claim := func() (int64, int64) {
			tok, seq := granted()
			if tok <= 0 {
				return tok, seq
			}
			sentMu.Lock()
			call, ok := sent[waiter][seq]
			sentMu.Unlock()
			if !ok {
				call = from // not a Seq this waiter sent: the checker will say so
			}
			// The grant lasts keep from the request (the core may trust
			// less: the TTL from when it learnt of the grant); a renewal,
			// the TTL from its own request.
			r.grantedTo(c, ref, call, r.now(), keep, validity, tok)
			return tok, seq
		}
		return ch, claim, func() {
			stop()
			left()
		}, nil
	}
	w.Hooks.Confirm = func(ctx context.Context, ref wrap.Ref, base backend.Granter, token int64, req backend.Request) (bool, error) {
		call := r.now()
		ok, err := base.Confirm(ctx, token, req)
		r.outcome(c, ref, token, outcome{call: call, ret: r.now(), ok: ok, failed: err != nil}, false)
		return ok, err
	}
	return w
}

// keepsPlaces says whether a waiter on ref has a place on the store that
// may refuse the lock to others: a queued mutex or election waiter (on a
// FIFO backend), a waiting writer.
func (r *historian) keepsPlaces(ref wrap.Ref) bool {
	return (ref.Kind == "mutex" || ref.Kind == "election") && r.fifo || ref.Kind == "write"
}

// place records that waiter may have kept a place on ref's groups from
// from to stop, which the store keeps for keep after it.
func (r *historian) place(ref wrap.Ref, waiter string, from, stop int64, keep time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range group(ref) {
		r.queued = append(r.queued, queued{waiter: waiter, key: g, from: from, stop: stop, keep: int64(keep)})
	}
}

// attemptTimes are an attempt's invocation and return, and the validity
// of what it may have taken.
type attemptTimes struct{ call, ret, validity int64 }

// acquired records one attempt of client c on the lock ref.
func (r *historian) acquired(c int, ref wrap.Ref, req backend.Request, at attemptTimes, tok int64, err error) {
	groups := group(ref)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil || tok < 0:
		r.atts = append(r.atts, attempt{client: c, key: groups[0], also: groups[1:], kind: ref.Kind, call: at.call, ret: at.ret,
			failed: true, err: fmt.Sprint(err), waiter: req.Waiter})
	case tok == 0:
		r.atts = append(r.atts, attempt{client: c, key: groups[0], also: groups[1:], kind: ref.Kind, call: at.call, ret: at.ret, waiter: req.Waiter})
	case r.index[holdKey{c, groups[0], tok}] != nil:
		// A grant the core learnt of but did not trust (too little of it
		// was sure to be left), which this attempt took (see
		// backend.Granter): for the store, a renewal.
		h := r.index[holdKey{c, groups[0], tok}]
		h.renewals = append(h.renewals, outcome{call: at.call, ret: at.ret, ok: true})
	default:
		h := &hold{id: len(r.holds), client: c, key: groups[0], also: groups[1:], kind: ref.Kind, token: tok,
			call: at.call, ret: at.ret, ttl: int64(req.TTL), validity: at.validity}
		if ref.Kind == "semaphore" {
			h.limit = Permits
		}
		r.holds = append(r.holds, h)
		r.index[holdKey{c, groups[0], tok}] = h
	}
}

// grantedTo records a lock the backend granted to a waiter of client c,
// which learnt of it at ret: the grant follows the waiter's request sent
// at call and lasts keep from it, and the core trusts it for the TTL
// from ret at most. A confirmation or renewal then counts the TTL.
func (r *historian) grantedTo(c int, ref wrap.Ref, call, ret int64, keep time.Duration, validity func(time.Duration) int64, tok int64) {
	groups := group(ref)
	r.mu.Lock()
	defer r.mu.Unlock()
	h := &hold{id: len(r.holds), client: c, key: groups[0], also: groups[1:], kind: ref.Kind, token: tok,
		call: call, ret: ret, ttl: int64(max(keep, r.ttl)), validity: validity(r.ttl),
		until: min(call+validity(keep), ret+validity(r.ttl))}
	r.holds = append(r.holds, h)
	r.index[holdKey{c, groups[0], tok}] = h
}

func (r *historian) outcome(c int, ref wrap.Ref, token int64, o outcome, release bool) {
	g := group(ref)[0]
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.index[holdKey{c, g, token}]
	switch {
	case h == nil:
		r.strays = append(r.strays, stray{key: g, token: token, call: o.call, ret: o.ret, ok: o.ok && !o.failed})
	case release:
		h.release = &o
	default:
		h.renewals = append(h.renewals, o)
	}
}

// find returns the hold the wrapper recorded for a token a caller got on
// the lock whose first group is g.
func (r *historian) find(c int, g string, token int64) *hold {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.index[holdKey{c, g, token}]
}

// write is a fenced write of h's token on the model resource of each of
// h's groups. Without fencing tokens the resource cannot tell old from
// new and accepts all. Holds of kinds that do not fence (permits, reads)
// do not write.
func (r *historian) write(h *hold) {
	if !h.fences() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range h.groups() {
		ok := !r.fencing || h.token >= r.top[g]
		if ok {
			r.top[g] = max(r.top[g], h.token)
		}
		r.writes = append(r.writes, write{key: g, hold: h.id, token: h.token, at: r.now(), accepted: ok})
	}
}

// fail counts an error a caller saw, by class.
func (r *historian) fail(err error) {
	class := "other"
	var timeout interface{ Timeout() bool }
	switch {
	case errors.Is(err, xsync.ErrLockLost):
		class = "lock lost"
	case errors.Is(err, backend.ErrUnavailable):
		class = "unavailable"
	case errors.Is(err, context.DeadlineExceeded):
		class = "deadline"
	case errors.As(err, &timeout) && timeout.Timeout():
		class = "timeout"
	case errors.Is(err, xsync.ErrMissingLock):
		return // contention: an outcome, not an error
	}
	r.mu.Lock()
	r.errors[class]++
	r.mu.Unlock()
}

func (r *historian) history() *history {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &history{holds: r.holds, attempts: r.atts, writes: r.writes, strays: r.strays, queued: r.queued, faults: r.faults, errors: r.errors, end: r.now()}
}

// worker is one goroutine of one client.
type worker struct {
	rec        *historian
	name       string        // the client's registered name (the seed API's)
	c          *xsync.Client // the same client
	client     int
	keys       []string
	kinds      []Kind
	ttl        time.Duration
	exp        int32
	work       time.Duration
	stallEvery int
	stop       chan struct{}
	rng        *rand.Rand
}

func (w *worker) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// pause waits for d, or less if the history is stopping. It paces the
// workload; nothing is synchronised by it.
func (w *worker) pause(d time.Duration) {
	select {
	case <-time.After(d):
	case <-w.stop:
	}
}

// op is one operation a worker makes on a lock of some kind.
type op struct {
	group string // the lock's first group, to find its holds
	stall bool
	work  time.Duration
}

func (w *worker) loop() {
	for !w.stopped() {
		o := op{stall: w.stallEvery > 0 && w.rng.IntN(w.stallEvery) == 0, work: time.Duration(w.rng.Int64N(int64(w.work)))}
		key := w.keys[w.rng.IntN(len(w.keys))]
		kind := w.kinds[w.rng.IntN(len(w.kinds))]
		mode := w.rng.IntN(3) // 0: hold and let go, no signal; 1: Run; 2: Run with auto-extension
		if kind == KindMutex && mode == 0 {
			o.group = "m/" + key
			w.lockUnlock(key, o)
			continue
		}
		var a acquirer
		o.group, a = w.lockOf(kind, key)
		switch mode {
		case 0:
			w.hold(o, a)
		default:
			w.run(o, a, mode == 2)
		}
	}
}

// acquirer takes a lock of one kind: a lease of its TTL, or a Run that
// waits for it (with auto-extension if extend is set).
type acquirer struct {
	acquire func(ctx context.Context) (*xsync.Lease, error)
	run     func(ctx context.Context, cb func(context.Context) error, extend bool) error
}

// clientAcquirer is how a Client takes a lock of a kind, with the
// history's options.
func (w *worker) clientAcquirer(acquire func(context.Context, ...xsync.AcquireOption) (*xsync.Lease, error),
	run func(context.Context, func(context.Context) error, ...xsync.AcquireOption) error) acquirer {
	return acquirer{
		func(ctx context.Context) (*xsync.Lease, error) { return acquire(ctx, xsync.WithTTL(w.ttl)) },
		func(ctx context.Context, cb func(context.Context) error, extend bool) error {
			opts := []xsync.AcquireOption{xsync.WithTTL(w.ttl), xsync.WithWait(w.ttl), xsync.WithRetryInterval(w.ttl / 10)}
			if extend {
				opts = append(opts, xsync.WithAutoExtend(3*w.ttl))
			}
			return run(ctx, cb, opts...)
		}}
}

// lockOf returns the group of a lock of kind on key (KindKeys: key and
// the next key) and how to take it.
func (w *worker) lockOf(kind Kind, key string) (string, acquirer) {
	switch kind {
	case KindSemaphore:
		s := w.c.Semaphore(key, Permits)
		return "s/" + key, w.clientAcquirer(s.Acquire, s.Run)
	case KindRW:
		rw := w.c.RWLock(key)
		if w.rng.IntN(2) == 0 {
			return "rw/" + key, w.clientAcquirer(rw.AcquireRead, rw.RunRead)
		}
		return "rw/" + key, w.clientAcquirer(rw.AcquireWrite, rw.RunWrite)
	case KindElection:
		e := w.c.Election(key)
		return "e/" + key, w.clientAcquirer(
			func(ctx context.Context, opts ...xsync.AcquireOption) (*xsync.Lease, error) {
				t, err := e.Campaign(ctx, append([]xsync.AcquireOption{xsync.WithWait(0)}, opts...)...)
				if err != nil {
					return nil, err
				}
				return t.Lease, nil
			},
			func(ctx context.Context, cb func(context.Context) error, opts ...xsync.AcquireOption) error {
				return leadOnce(ctx, e, w.ttl, cb, opts)
			})
	case KindKeys:
		i := w.rng.IntN(len(w.keys))
		keys := []string{w.keys[i], w.keys[(i+1)%len(w.keys)]}
		if len(w.keys) == 1 {
			keys = keys[:1]
		}
		return "m/" + keys[0], w.clientAcquirer(
			func(ctx context.Context, opts ...xsync.AcquireOption) (*xsync.Lease, error) {
				return w.c.AcquireAll(ctx, keys, opts...)
			},
			func(ctx context.Context, cb func(context.Context) error, opts ...xsync.AcquireOption) error {
				return w.c.RunAll(ctx, keys, cb, opts...)
			})
	}
	// The mutex: a lease through the Client; Run through the seed API
	// (Async.Run, with its retries).
	return "m/" + key, acquirer{
		func(ctx context.Context) (*xsync.Lease, error) { return w.c.Acquire(ctx, key, xsync.WithTTL(w.ttl)) },
		func(ctx context.Context, cb func(context.Context) error, extend bool) error {
			a := xsync.New(w.name, key)
			if err := errors.Join(a.SetExp(w.ttl), a.SetRetry(10, w.ttl/10), a.SetAutoExtend(extend, 3*w.ttl)); err != nil {
				panic(err) // the options are valid by construction
			}
			return a.Run(ctx, cb)
		}}
}

// stallFor is how long a stalled holder sleeps: well past its validity.
func (w *worker) stallFor(h *hold) time.Duration {
	return time.Duration(h.validity)*13/10 + 50*time.Millisecond
}

// lockUnlock is the seed's way: Lock, work, Unlock; no signal, so a
// holder that stalls writes after its lock has expired.
func (w *worker) lockUnlock(key string, o op) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*w.ttl)
	item, err := xsync.Lock(ctx, w.name, key, w.exp)
	cancel()
	if err != nil {
		w.rec.fail(err)
		w.pause(w.ttl / 10)
		return
	}
	if !item.HasLock() {
		w.pause(time.Duration(w.rng.Int64N(int64(w.ttl / 20))))
		return
	}
	w.holding(w.rec.find(w.client, o.group, int64(item)), o)
	ctx, cancel = context.WithTimeout(context.Background(), 2*w.ttl)
	defer cancel()
	if _, err := item.Unlock(ctx, w.name, key); err != nil {
		w.rec.fail(err)
	}
}

// hold takes a lease of a lock of another kind, works, and releases it,
// with no signal: a holder that stalls writes after its lock has expired.
func (w *worker) hold(o op, a acquirer) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*w.ttl)
	l, err := a.acquire(ctx)
	cancel()
	switch {
	case errors.Is(err, xsync.ErrMissingLock):
		w.pause(time.Duration(w.rng.Int64N(int64(w.ttl / 20))))
		return
	case err != nil:
		w.rec.fail(err)
		w.pause(w.ttl / 10)
		return
	}
	w.holding(w.rec.find(w.client, o.group, int64(l.Token())), o)
	ctx, cancel = context.WithTimeout(context.Background(), 2*w.ttl)
	defer cancel()
	if _, err := l.Release(ctx); err != nil {
		w.rec.fail(err)
	}
}

// holding writes, works (stalling past the validity if o says so), and
// writes again.
func (w *worker) holding(h *hold, o op) {
	w.rec.write(h)
	time.Sleep(o.work) // the work
	if o.stall {
		w.rec.mu.Lock()
		h.stall = true
		w.rec.mu.Unlock()
		time.Sleep(w.stallFor(h)) // a GC pause: time must pass
	}
	w.rec.write(h)
}

// run takes the lock under Run, waiting for it, and works in the
// callback; a careful callback stops when its context ends, a stalled one
// does not.
func (w *worker) run(o op, a acquirer, extend bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*w.ttl)
	defer cancel()
	var info *runInfo
	err := a.run(ctx, func(cctx context.Context) error {
		h := w.rec.find(w.client, o.group, int64(xsync.ItemFromContext(cctx)))
		info = &runInfo{start: w.rec.now()}
		w.rec.mu.Lock()
		h.run = info
		h.stall = o.stall
		w.rec.mu.Unlock()
		signal := func() {
			lost := errors.Is(context.Cause(cctx), xsync.ErrLockLost) || ctx.Err() != nil
			w.rec.mu.Lock()
			if info.end == 0 && info.signal == 0 {
				info.signal, info.lostCause = w.rec.now(), lost
			}
			w.rec.mu.Unlock()
		}
		if cctx.Err() != nil {
			signal() // granted after its validity had passed: lost on arrival
		}
		defer context.AfterFunc(cctx, signal)()
		w.rec.write(h)
		if o.stall {
			time.Sleep(w.stallFor(h)) // a GC pause, deaf to cctx
		} else {
			select {
			case <-time.After(o.work):
			case <-cctx.Done():
			}
		}
		if o.stall || cctx.Err() == nil {
			w.rec.write(h)
		}
		if cctx.Err() != nil {
			signal() // ended while the callback ran; AfterFunc's goroutine may not have run yet
		}
		w.rec.mu.Lock()
		info.end = w.rec.now()
		w.rec.mu.Unlock()
		return nil
	}, extend)
	if info != nil {
		w.rec.mu.Lock()
		info.reported = errors.Is(err, xsync.ErrLockLost) || ctx.Err() != nil
		w.rec.mu.Unlock()
	}
	switch {
	case errors.Is(err, xsync.ErrMissingLock):
		w.pause(time.Duration(w.rng.Int64N(int64(w.ttl / 20))))
	case err != nil:
		w.rec.fail(err)
		if info == nil {
			w.pause(w.ttl / 10) // the store failed: do not spin
		}
	}
}

// leadOnce leads e once under Election.Lead: it campaigns for up to a
// TTL (as the other kinds' Run waits), runs cb for the term, and returns
// cb's error, with the loss if the term was lost (as Run reports it), or
// ErrMissingLock if it never led.
func leadOnce(ctx context.Context, e *xsync.Election, ttl time.Duration, cb func(context.Context) error, opts []xsync.AcquireOption) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var led atomic.Bool
	giveUp := time.AfterFunc(ttl, func() {
		if !led.Load() {
			cancel()
		}
	})
	defer giveUp.Stop()
	var out error
	err := e.Lead(lctx, func(fctx context.Context) error {
		if !led.CompareAndSwap(false, true) {
			return nil // a campaign after cancel: nothing to do
		}
		out = cb(fctx)
		if c := context.Cause(fctx); errors.Is(c, xsync.ErrLockLost) {
			out = errors.Join(out, c)
		}
		cancel() // once: Lead resigns and returns
		return nil
	}, opts...)
	switch {
	case led.Load():
		return out
	case ctx.Err() != nil:
		return err
	}
	return fmt.Errorf("%w: the election was led for the whole wait", xsync.ErrMissingLock)
}
