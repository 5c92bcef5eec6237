package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// RWLock implements [backend.RWLocker]: the sorted set {prefix}r:{key}
// of readers and the writer scored by expiry, the marks of writers that
// wait (each writer's own, set by its watch, renewed by its refused
// attempts, removed when it gets the lock or leaves), and the fencing
// counter; tokens are max(counter+1, server time in µs), as a mutex's.
// Attempts, releases and refreshes scan the holders: O(holders). A
// holder's name carries its attempt's nonce, so an attempt whose reply
// never came is cleaned up as a mutex's is.
func (l *Locker) RWLock(key string) (read, write backend.Lock) {
	k := l.prefix + rwSpace + key
	return rwSide{l, k, "r"}, rwSide{l, k, "w"}
}

// rwSide is the read ("r") or write ("w") side of a read-write lock.
type rwSide struct {
	l    *Locker
	k    string
	side string
}

var (
	_ backend.Refresher     = rwSide{}
	_ backend.Watcher       = rwSide{}
	_ backend.Inspector     = rwSide{}
	_ backend.ForceReleaser = rwSide{}
)

// Acquire takes the side in one round trip. A writer's token is a
// fencing token, larger than every earlier token of the lock; a refused
// waiting writer renews its mark.
func (s rwSide) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	w := ""
	if s.side == "w" {
		w = r.Waiter
	}
	nonce := strconv.FormatUint(rand.Uint64(), 36)
	return s.l.attempt(ctx, "acquire "+s.side, func(rctx context.Context) (int64, error) {
		return rwAcquireScript.Run(rctx, s.l.client, []string{s.k}, s.side, ms(r.TTL), ms(r.Keep), s.l.idleArg, nonce, w).Int64()
	}, func(cctx context.Context, took int64) {
		if took > 0 {
			_, _ = s.Release(cctx, took)
			return
		}
		_ = rwAbandonScript.Eval(cctx, s.l.client, []string{s.k}, nonce, ms(r.TTL)).Err()
	})
}

// Release gives back what token holds (a script that finds the token
// among the holders), in one round trip.
func (s rwSide) Release(ctx context.Context, token int64) (bool, error) {
	return s.l.call(ctx, "release", rwReleaseScript, []string{s.k}, token)
}

func (s rwSide) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	return s.l.call(ctx, "refresh", rwRefreshScript, []string{s.k}, ms(ttl), s.l.idleArg, token)
}

// Watch: a reader hears every release and a waiting writer's leaving,
// and is woken at once if no writer holds or waits; a writer sets its
// mark in the same script that reads the holders, and is woken at once
// if nobody holds the lock. Both wake at the earliest holder's expiry.
// A writer's stop takes its mark away (one more script, up to 250ms) and
// wakes the readers it kept out.
func (s rwSide) Watch(ctx context.Context, waiter string, keep time.Duration) (<-chan struct{}, func(), error) {
	l := s.l
	if s.side == "r" {
		return l.plainWatch(ctx, s.k, func(ctx context.Context, k string) (int64, error) {
			return rwHeldScript.Run(ctx, l.client, []string{k}).Int64()
		})
	}
	if err := checkWaiter(waiter); err != nil {
		return nil, nil, fmt.Errorf("redis: watch: %w", err)
	}
	leave := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = rwWithdrawScript.Run(ctx, l.client, []string{s.k}, waiter).Err()
	}
	w, err := l.watch(ctx, s.k, "", nil, func(ctx context.Context) (int64, error) {
		return rwJoinScript.Run(ctx, l.client, []string{s.k}, waiter, ms(keep)).Int64()
	})
	if err != nil {
		leave()
		return nil, nil, err
	}
	return w.ready, sync.OnceFunc(func() { w.stop(); leave() }), nil
}

// Inspect reads the readers or the writer, each with its time left, and
// how many writers wait, in one round trip.
func (s rwSide) Inspect(ctx context.Context) (backend.Info, error) {
	return s.l.inspectSet(ctx, s.k, func(m string) (backend.Holder, bool) {
		kind, rest := m[:1], m[1:]
		tok, _, _ := strings.Cut(rest, ":")
		n, err := strconv.ParseInt(tok, 10, 64)
		return backend.Holder{Token: n, Write: kind == "w"}, err == nil && (kind == "r" || kind == "w")
	})
}

// ForceRelease frees the readers and the writer in one round trip; the
// fencing counter and the waiting writers' marks stay.
func (s rwSide) ForceRelease(ctx context.Context) (bool, error) {
	return s.l.call(ctx, "force release", zsetForceScript, []string{s.k})
}
