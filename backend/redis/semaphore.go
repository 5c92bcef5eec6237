package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// Semaphore implements [backend.Semaphorer]: the sorted set
// {prefix}s:{key} of permit tokens (random, drawn by the client) scored by
// their expiry on the server's clock. An attempt drops the expired ones
// and counts the rest, so it costs O(permits held). Waiters hear of
// releases on pub/sub (no queue: the first to try wins).
func (l *Locker) Semaphore(key string, limit int) backend.Lock {
	return semaphore{l, l.prefix + semaphoreSpace + key, limit}
}

type semaphore struct {
	l     *Locker
	k     string
	limit int
}

var (
	_ backend.Refresher     = semaphore{}
	_ backend.Watcher       = semaphore{}
	_ backend.Inspector     = semaphore{}
	_ backend.ForceReleaser = semaphore{}
)

// Acquire takes a permit in one round trip: a script that drops the
// expired permits, counts the rest and adds this one. An attempt whose
// reply never came is cleaned up as a mutex's is: the permit is given
// back, or its token marked void if the request is still on its way.
func (s semaphore) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	tok := rand.Int64N(1<<63-1) + 1
	ok, err := s.l.attempt(ctx, "acquire permit", func(rctx context.Context) (int64, error) {
		return semAcquireScript.Run(rctx, s.l.client, []string{s.k}, s.limit, ms(r.TTL), tok).Int64()
	}, func(cctx context.Context, took int64) {
		if took > 0 {
			_, _ = s.Release(cctx, tok)
			return
		}
		_ = semAbandonScript.Eval(cctx, s.l.client, []string{s.k}, tok, ms(r.TTL)).Err()
	})
	if ok <= 0 {
		return 0, err
	}
	return tok, nil
}

func (s semaphore) Release(ctx context.Context, token int64) (bool, error) {
	return s.l.call(ctx, "release permit", semReleaseScript, []string{s.k}, token)
}

func (s semaphore) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	return s.l.call(ctx, "refresh permit", semRefreshScript, []string{s.k}, ms(ttl), token)
}

// Watch hears every release of a permit, and wakes at the earliest
// permit's expiry; permits are not queued.
func (s semaphore) Watch(ctx context.Context, _ string, _ time.Duration) (<-chan struct{}, func(), error) {
	return s.l.plainWatch(ctx, s.k, func(ctx context.Context, k string) (int64, error) {
		return zsetHeldScript.Run(ctx, s.l.client, []string{k}, s.limit).Int64()
	})
}

// Inspect reads the permits held, each with its time left, in one round
// trip.
func (s semaphore) Inspect(ctx context.Context) (backend.Info, error) {
	return s.l.inspectSet(ctx, s.k, func(m string) (backend.Holder, bool) {
		tok, err := strconv.ParseInt(m, 10, 64)
		return backend.Holder{Token: tok}, err == nil
	})
}

// ForceRelease frees every permit in one round trip.
func (s semaphore) ForceRelease(ctx context.Context) (bool, error) {
	return s.l.call(ctx, "force release", zsetForceScript, []string{s.k})
}

// inspectSet reads the holders of the sorted set k; holder parses a
// member's name.
func (l *Locker) inspectSet(ctx context.Context, k string, holder func(member string) (backend.Holder, bool)) (backend.Info, error) {
	v, err := zsetInspectScript.Run(ctx, l.client, []string{k}).Slice()
	if err != nil || len(v)%2 != 1 {
		return backend.Info{}, fmt.Errorf("redis: inspect: %w", l.classify(orUnexpected(err, v)))
	}
	var info backend.Info
	for i := 0; i+1 < len(v); i += 2 {
		m, _ := v[i].(string)
		left, _ := v[i+1].(int64)
		if h, ok := holder(m); ok {
			h.TTL = time.Duration(left) * time.Millisecond
			info.Holders = append(info.Holders, h)
		}
	}
	waiting, _ := v[len(v)-1].(int64)
	info.Waiting = int(waiting)
	return info, nil
}

// orUnexpected is err, or an error that says reply was not expected.
func orUnexpected(err error, reply []any) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("unexpected reply %v", reply)
}

// attempt runs one acquire script as a mutex's attempt runs: if ctx ends
// first, it still waits up to 250ms for the reply; then undo cleans up,
// with what the reply said if it came (took > 0: the lock was taken), or
// 0 if no reply came.
func (l *Locker) attempt(ctx context.Context, op string, run func(context.Context) (int64, error), undo func(ctx context.Context, took int64)) (int64, error) {
	rctx := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		rctx, cancel = context.WithDeadline(context.WithoutCancel(ctx), d.Add(cleanupTimeout))
		defer cancel()
	}
	tok, err := run(rctx)
	switch {
	case err != nil:
		if !isReply(err) {
			l.abandon(ctx, func(ctx context.Context) { undo(ctx, 0) })
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("redis: %s: %w (then: %w)", op, ctx.Err(), err)
		}
		return 0, crossSlot(fmt.Errorf("redis: %s: %w", op, l.classify(err)))
	case ctx.Err() != nil:
		if tok > 0 {
			l.abandon(ctx, func(ctx context.Context) { undo(ctx, tok) })
		}
		return 0, fmt.Errorf("redis: %s: %w", op, ctx.Err())
	}
	return tok, nil
}
