package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// Mutex implements [backend.Mutexer]: the mutex of key, the key
// {prefix}m:{key} (a string or a hash: see the package doc's key
// layouts), with every ability; its waiters queue (FIFO).
func (l *Locker) Mutex(key string) backend.Lock { return mutex{l, l.prefix + mutexSpace + key} }

type mutex struct {
	l *Locker
	k string // the key
}

var (
	_ backend.Refresher     = mutex{}
	_ backend.Watcher       = mutex{}
	_ backend.Granter       = mutex{}
	_ backend.Inspector     = mutex{}
	_ backend.ForceReleaser = mutex{}
)

// Acquire takes the mutex in one round trip: a script that grants it if
// it is free and no live waiter is queued ahead (with r.Waiter, that
// waiter's turn has come), and stores the owner with it.
//
// If ctx ends before the reply comes, Acquire still waits for it up to
// 250ms (on the same connection: a reply is the only sure news of the
// outcome) and releases a lock it turns out to have taken. If no reply
// comes even then, or the connection broke, it sends a clean-up script,
// with a budget of 250ms more, that releases what this attempt took (each
// attempt carries a random nonce, stored with the lock) or marks the
// attempt void should its request still be on the way.
func (m mutex) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	tok, err := m.l.acquireMutex(ctx, m.k, r)
	if tok > 0 && r.Waiter != "" {
		m.l.queued.left(r.Waiter) // the script took the waiter out of the queue
	}
	return tok, err
}

func (m mutex) Release(ctx context.Context, token int64) (bool, error) {
	return m.l.call(ctx, "release", releaseScript, []string{m.k}, token, m.l.idleArg)
}

func (m mutex) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	return m.l.call(ctx, "refresh", refreshScript, []string{m.k}, token, ms(ttl), m.l.idleArg)
}

// Watch queues waiter (a field of the lock's hash) in the same script
// that reads the holder's time left, and listens for releases. A release
// wakes only the queue's first live waiter (its message names it), so a
// handoff costs one acquire script, not one per waiter; the waiter also
// wakes at the holder's expiry. stop takes waiter out of the queue with
// one more script (up to 250ms), unless it got the lock, which took it
// out already.
func (m mutex) Watch(ctx context.Context, waiter string, keep time.Duration) (<-chan struct{}, func(), error) {
	ready, _, stop, err := m.queue(ctx, waiter, keep, nil)
	return ready, stop, err
}

// WatchGrant is Watch for a waiter that takes grants: its place says so
// (see common.lua), so that a release that finds it first hands it the
// lock in the same script and publishes the token with the waiter's
// name. granted returns what the last such message told; stop releases
// a grant the waiter did not take, in the script that takes it out of
// the queue.
func (m mutex) WatchGrant(ctx context.Context, waiter string, keep time.Duration) (<-chan struct{}, func() (int64, int64), func(), error) {
	return m.queue(ctx, waiter, keep, new(grantNews))
}

// queue is Watch, and with g, WatchGrant, keeping what the waiter's grant
// messages tell in g.
func (m mutex) queue(ctx context.Context, waiter string, keep time.Duration, g *grantNews) (<-chan struct{}, func() (int64, int64), func(), error) {
	if err := checkWaiter(waiter); err != nil {
		return nil, nil, nil, fmt.Errorf("redis: watch: %w", err)
	}
	l := m.l
	l.queued.add(waiter)
	ready := make(chan struct{}, 1)
	args := []any{waiter, ms(keep), l.idleArg}
	var deliver func(string)
	if g != nil {
		args = append(args, "0") // the place takes grants
		deliver = g.deliver(ready)
	}
	w, err := l.watchFor(ctx, m.k, waiter, ready, deliver, func(ctx context.Context) (int64, error) {
		return queueScript.Run(ctx, l.client, []string{m.k}, args...).Int64()
	})
	leave := func() {
		if l.queued.remove(waiter) {
			return // it got the lock, by an attempt or a grant
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = dequeueScript.Run(ctx, l.client, []string{m.k}, waiter, l.idleArg).Err()
	}
	if err != nil {
		leave()
		return nil, nil, nil, err
	}
	granted := func() (int64, int64) {
		if g == nil {
			return 0, 0
		}
		tok, seq := g.take()
		if tok > 0 {
			l.queued.left(waiter)
		}
		return tok, seq
	}
	return ready, granted, sync.OnceFunc(func() { w.stop(); leave() }), nil
}

// Confirm is Refresh, storing the owner too.
func (m mutex) Confirm(ctx context.Context, token int64, r backend.Request) (bool, error) {
	return m.l.call(ctx, "confirm", refreshScript, []string{m.k}, token, ms(r.TTL), m.l.idleArg, r.Owner)
}

// grantNews is what a waiter's grant messages told: the last token and
// seq, until taken.
type grantNews struct {
	mu       sync.Mutex
	tok, seq int64
}

// deliver returns the listener of the waiter's messages: a grant's
// ("token seq") is kept, and every message wakes the waiter.
func (g *grantNews) deliver(ready chan struct{}) func(msg string) {
	return func(msg string) {
		if t, s, ok := strings.Cut(msg, " "); ok {
			tok, err1 := strconv.ParseInt(t, 10, 64)
			seq, err2 := strconv.ParseInt(s, 10, 64)
			if err1 == nil && err2 == nil && tok > 0 && seq >= 0 {
				g.mu.Lock()
				g.tok, g.seq = tok, seq
				g.mu.Unlock()
			}
		}
		select {
		case ready <- struct{}{}:
		default:
		}
	}
}

// take returns the grant told of, once.
func (g *grantNews) take() (tok, seq int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	tok, seq, g.tok = g.tok, g.seq, 0
	return tok, seq
}

// Inspect reads the holder's token, its time left on the server's clock,
// its owner, and the queue's length, in one round trip.
func (m mutex) Inspect(ctx context.Context) (backend.Info, error) {
	v, err := inspectScript.Run(ctx, m.l.client, []string{m.k}).Slice()
	if err != nil {
		return backend.Info{}, fmt.Errorf("redis: inspect: %w", m.l.classify(err))
	}
	if len(v) != 4 {
		return backend.Info{}, fmt.Errorf("redis: inspect: unexpected reply %v", v)
	}
	tok, _ := v[0].(string)
	left, _ := v[1].(int64)
	owner, _ := v[2].(string)
	waiting, _ := v[3].(int64)
	token, err := strconv.ParseInt(tok, 10, 64)
	if err != nil {
		return backend.Info{}, fmt.Errorf("redis: inspect: token %q: %w", tok, err)
	}
	info := backend.Info{Waiting: int(waiting)}
	if token > 0 {
		info.Holders = []backend.Holder{{Token: token, TTL: time.Duration(left) * time.Millisecond, Owner: owner}}
	}
	return info, nil
}

// ForceRelease frees the key whoever holds it, keeps the fencing counter
// and publishes the release to waiters, in one round trip.
func (m mutex) ForceRelease(ctx context.Context) (bool, error) {
	return m.l.call(ctx, "force release", forceScript, []string{m.k}, m.l.idleArg)
}

// acquireMutex is one attempt on the key k.
func (l *Locker) acquireMutex(ctx context.Context, k string, r backend.Request) (int64, error) {
	nonce := strconv.FormatUint(rand.Uint64(), 36)
	rctx := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		rctx, cancel = context.WithDeadline(context.WithoutCancel(ctx), d.Add(cleanupTimeout))
		defer cancel()
	}
	var tok int64
	var err error
	switch { // literal calls: a slice built here costs every Lock 20 B more
	case r.Waiter != "" && r.Seq > 0:
		tok, err = l.acquire.Run(rctx, l.client, []string{k}, ms(r.TTL), l.idleArg, nonce, r.Owner, r.Waiter, ms(r.Keep), r.Seq).Int64()
	case r.Waiter != "":
		tok, err = l.acquire.Run(rctx, l.client, []string{k}, ms(r.TTL), l.idleArg, nonce, r.Owner, r.Waiter, ms(r.Keep)).Int64()
	case r.Owner == "":
		tok, err = l.acquire.Run(rctx, l.client, []string{k}, ms(r.TTL), l.idleArg, nonce).Int64()
	default:
		tok, err = l.acquire.Run(rctx, l.client, []string{k}, ms(r.TTL), l.idleArg, nonce, r.Owner).Int64()
	}
	switch {
	case err != nil:
		if !isReply(err) {
			l.abandon(ctx, func(ctx context.Context) {
				// EVAL with the source: one round trip even on a server
				// that has not seen the script (this path is rare; EVALSHA
				// could cost two).
				_ = abandonScript.Eval(ctx, l.client, []string{k}, nonce, l.idleArg, ms(r.TTL)).Err()
			})
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("redis: acquire: %w (then: %w)", ctx.Err(), err)
		}
		return 0, fmt.Errorf("redis: acquire: %w", l.classify(err))
	case ctx.Err() != nil:
		// The reply came after the caller gave up: nobody will use this
		// lock, so give it back.
		if tok > 0 {
			l.abandon(ctx, func(ctx context.Context) { _, _ = l.call(ctx, "release", releaseScript, []string{k}, tok, l.idleArg) })
		}
		return 0, fmt.Errorf("redis: acquire: %w", ctx.Err())
	}
	return tok, nil
}

// abandon runs undo, the clean-up of an attempt whose caller gave up or
// whose reply never came, detached from ctx and bounded.
func (l *Locker) abandon(ctx context.Context, undo func(ctx context.Context)) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	undo(ctx)
}

// checkWaiter checks a waiter's name, which the scripts keep in the
// store: letters and digits.
func checkWaiter(w string) error {
	for _, r := range w {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return fmt.Errorf("waiter %q: want letters and digits", w)
		}
	}
	if w == "" {
		return fmt.Errorf("empty waiter")
	}
	return nil
}

// queued is the set of a Locker's queued waiters: whether each is still
// in the queue, or got the lock (which took it out).
type queued struct{ m sync.Map } // waiter → *atomic.Bool (it got the lock)

func (q *queued) add(w string) { q.m.Store(w, new(atomic.Bool)) }

// left records that w got the lock.
func (q *queued) left(w string) {
	if v, ok := q.m.Load(w); ok {
		v.(*atomic.Bool).Store(true)
	}
}

// remove forgets w and reports whether it got the lock.
func (q *queued) remove(w string) bool {
	v, ok := q.m.LoadAndDelete(w)
	return ok && v.(*atomic.Bool).Load()
}
