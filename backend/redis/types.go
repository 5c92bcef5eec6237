package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The other lock types. A semaphore of key lives in the sorted set
// prefix+key+"\x00sem", a read-write lock in prefix+key+"\x00rw" (see
// zset.lua): a hash tag in key keeps them in key's hash slot. A mutex key
// that ends like one of them collides with it, and each fails with Redis's
// WRONGTYPE error rather than share state. A multi-key lock takes the
// mutexes' own hashes.

const (
	semSuffix = "\x00sem"
	rwSuffix  = "\x00rw"
)

// ErrCrossSlot is what AcquireMulti's error matches when the keys are in
// several hash slots of a Redis Cluster, which cannot take them in one
// step. Give them one hash tag ("{order:42}:payment", "{order:42}:stock").
var ErrCrossSlot = errors.New("redis: the keys are in several hash slots of the cluster: give them one hash tag, such as {order:42}")

// AcquirePermit implements [backend.Semaphorer] in one round trip: a
// script that drops the expired permits, counts the rest and adds this
// one. The permit's token is drawn by the client (random, 63 bits), so an
// attempt whose reply never came is cleaned up as Acquire's is: the
// permit is given back, or the token marked void if the request is still
// on its way.
func (l *Locker) AcquirePermit(ctx context.Context, key string, limit int, ttl time.Duration) (int64, error) {
	k := l.prefix + key + semSuffix
	tok := rand.Int64N(1<<63-1) + 1
	ok, err := l.attempt(ctx, "acquire permit", func(rctx context.Context) (int64, error) {
		return semAcquireScript.Run(rctx, l.client, []string{k}, limit, ms(ttl), tok).Int64()
	}, func(cctx context.Context) {
		_ = semAbandonScript.Eval(cctx, l.client, []string{k}, tok, ms(ttl)).Err()
	}, func(cctx context.Context) {
		_, _ = l.ReleasePermit(cctx, key, tok)
	})
	if ok <= 0 {
		return 0, err
	}
	return tok, nil
}

// attempt runs one acquire script as Acquire does: if ctx ends first, it
// still waits up to 250ms for the reply; if that took the lock, giveBack
// gives it back; if no reply came, abandon cleans up.
func (l *Locker) attempt(ctx context.Context, op string, run func(context.Context) (int64, error), abandon, giveBack func(context.Context)) (int64, error) {
	rctx := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		rctx, cancel = context.WithDeadline(context.WithoutCancel(ctx), d.Add(cleanupTimeout))
		defer cancel()
	}
	tok, err := run(rctx)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	switch {
	case err != nil:
		if !isReply(err) {
			abandon(cctx)
			l.reloadState()
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("redis: %s: %w (then: %w)", op, ctx.Err(), err)
		}
		return 0, fmt.Errorf("redis: %s: %w", op, l.classify(err))
	case ctx.Err() != nil:
		if tok > 0 {
			giveBack(cctx)
		}
		return 0, fmt.Errorf("redis: %s: %w", op, ctx.Err())
	}
	return tok, nil
}

// ReleasePermit implements [backend.Semaphorer] in one round trip.
func (l *Locker) ReleasePermit(ctx context.Context, key string, token int64) (bool, error) {
	return l.zsetCall(ctx, "release permit", semReleaseScript, key+semSuffix, token)
}

// RefreshPermit implements [backend.Semaphorer] in one round trip.
func (l *Locker) RefreshPermit(ctx context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	return l.zsetCall(ctx, "refresh permit", semRefreshScript, key+semSuffix, ms(ttl), token)
}

// WatchPermits implements [backend.Semaphorer]: as [Locker.Watch], on the
// semaphore's channel; a waiter is also woken when the earliest permit
// expires.
func (l *Locker) WatchPermits(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	return l.watch(ctx, l.prefix+key+semSuffix, "", 0, zsetHeldScript)
}

// AcquireRead implements [backend.RWLocker] in one round trip. Tokens
// come from the lock's fencing counter, as a mutex's do. An attempt whose
// reply never came is cleaned up as Acquire's is: each grant records the
// attempt's nonce with its token, so the clean-up gives the lock back, or
// marks the attempt void if it is still on its way.
func (l *Locker) AcquireRead(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	return l.rwAcquire(ctx, key, "r", ttl, "", 0)
}

// AcquireWrite implements [backend.RWLocker] in one round trip: the
// writer's token is a fencing token, larger than every earlier token of
// the lock; a refused waiting writer sets (or renews) its mark, which
// keeps new readers out for keep. Cleaned up as AcquireRead.
func (l *Locker) AcquireWrite(ctx context.Context, key string, ttl time.Duration, w string, keep time.Duration) (int64, error) {
	if err := checkWaiter(w, true); err != nil {
		return 0, err
	}
	return l.rwAcquire(ctx, key, "w", ttl, w, keep)
}

// WithdrawWrite implements [backend.RWLocker] in one round trip: w's mark
// goes, and the lock's waiters are told.
func (l *Locker) WithdrawWrite(ctx context.Context, key, w string) error {
	if err := checkWaiter(w, false); err != nil {
		return err
	}
	if err := rwWithdrawScript.Run(ctx, l.client, []string{l.prefix + key + rwSuffix}, w).Err(); err != nil {
		return fmt.Errorf("redis: withdraw write: %w", l.classify(err))
	}
	return nil
}

func (l *Locker) rwAcquire(ctx context.Context, key, kind string, ttl time.Duration, w string, keep time.Duration) (int64, error) {
	k := l.prefix + key + rwSuffix
	nonce := strconv.FormatUint(rand.Uint64(), 36)
	var tok int64
	return l.attempt(ctx, "acquire "+kind, func(rctx context.Context) (int64, error) {
		var err error
		tok, err = rwAcquireScript.Run(rctx, l.client, []string{k}, kind, ms(ttl), ms(keep), l.idleArg, nonce, w).Int64()
		return tok, err
	}, func(cctx context.Context) {
		_ = rwAbandonScript.Eval(cctx, l.client, []string{k}, nonce, ms(ttl)).Err()
	}, func(cctx context.Context) {
		_, _ = l.ReleaseRW(cctx, key, tok)
	})
}

// ReleaseRW implements [backend.RWLocker] in one round trip (a script
// that finds the token among the holders).
func (l *Locker) ReleaseRW(ctx context.Context, key string, token int64) (bool, error) {
	return l.zsetCall(ctx, "release", rwReleaseScript, key+rwSuffix, token)
}

// RefreshRW implements [backend.RWLocker] in one round trip.
func (l *Locker) RefreshRW(ctx context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	return l.zsetCall(ctx, "refresh", rwRefreshScript, key+rwSuffix, ms(ttl), l.idleArg, token)
}

// WatchRW implements [backend.RWLocker], as WatchPermits; once the
// watch is in effect it fires at once if a reader or a writer could take
// the lock (nobody holds it, or no writer holds it and no writer waits).
func (l *Locker) WatchRW(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	return l.watch(ctx, l.prefix+key+rwSuffix, "", 0, rwHeldScript)
}

// zsetCall runs a release or refresh script on the sorted set of key.
func (l *Locker) zsetCall(ctx context.Context, op string, script *goredis.Script, key string, args ...any) (bool, error) {
	n, err := script.Run(ctx, l.client, []string{l.prefix + key}, args...).Int64()
	if err != nil {
		return false, fmt.Errorf("redis: %s: %w", op, l.classify(err))
	}
	return n == 1, nil
}

// AcquireMulti implements [backend.MultiLocker] in one round trip: one
// script over the keys' hashes, cleaned up as Acquire is (each key is
// marked void, or freed if the attempt took it). In a Redis Cluster the
// keys must share a hash slot; otherwise the error matches
// [ErrCrossSlot] and nothing is taken.
func (l *Locker) AcquireMulti(ctx context.Context, keys []string, ttl time.Duration) (int64, error) {
	ks := l.keys(keys)
	nonce := strconv.FormatUint(rand.Uint64(), 36)
	var tok int64
	tok, err := l.attempt(ctx, "acquire keys", func(rctx context.Context) (int64, error) {
		var err error
		tok, err = multiAcquireScript.Run(rctx, l.client, ks, ms(ttl), l.idleArg, nonce).Int64()
		return tok, err
	}, func(cctx context.Context) {
		for _, k := range ks {
			_ = abandonScript.Eval(cctx, l.client, []string{k}, nonce, l.idleArg, ms(ttl)).Err()
		}
	}, func(cctx context.Context) {
		_, _ = l.ReleaseMulti(cctx, keys, tok)
	})
	return tok, crossSlot(err)
}

// ReleaseMulti implements [backend.MultiLocker] in one round trip.
func (l *Locker) ReleaseMulti(ctx context.Context, keys []string, token int64) (bool, error) {
	n, err := multiReleaseScript.Run(ctx, l.client, l.keys(keys), token, l.idleArg).Int64()
	if err != nil {
		return false, crossSlot(fmt.Errorf("redis: release keys: %w", l.classify(err)))
	}
	return n == 1, nil
}

// RefreshMulti implements [backend.MultiLocker] in one round trip.
func (l *Locker) RefreshMulti(ctx context.Context, keys []string, token int64, ttl time.Duration) (bool, error) {
	n, err := multiRefreshScript.Run(ctx, l.client, l.keys(keys), token, ms(ttl), l.idleArg).Int64()
	if err != nil {
		return false, crossSlot(fmt.Errorf("redis: refresh keys: %w", l.classify(err)))
	}
	return n == 1, nil
}

func (l *Locker) keys(keys []string) []string {
	ks := make([]string, len(keys))
	for i, k := range keys {
		ks[i] = l.prefix + k
	}
	return ks
}

// crossSlot adds ErrCrossSlot to a CROSSSLOT reply.
func crossSlot(err error) error {
	if err != nil && strings.Contains(err.Error(), "CROSSSLOT") {
		return fmt.Errorf("%w: %w", ErrCrossSlot, err)
	}
	return err
}
