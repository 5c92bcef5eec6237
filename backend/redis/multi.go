package redis

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// Multi implements [backend.MultiLocker]: the mutexes' own keys, taken
// in one script with one token for all (larger than each key's earlier
// tokens). In a Cluster the keys must share a hash slot (a hash tag);
// otherwise the error matches [ErrCrossSlot] and nothing is taken.
func (l *Locker) Multi(keys []string) backend.Lock {
	ks := make([]string, len(keys))
	for i, k := range keys {
		ks[i] = l.prefix + mutexSpace + k
	}
	return multi{l, ks}
}

type multi struct {
	l  *Locker
	ks []string // the keys
}

var (
	_ backend.Refresher     = multi{}
	_ backend.Watcher       = multi{}
	_ backend.Inspector     = multi{}
	_ backend.ForceReleaser = multi{}
)

// Acquire takes every key in one round trip, cleaned up as a mutex's
// attempt is (each key is marked void, or freed if the attempt took it).
func (m multi) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	nonce := strconv.FormatUint(rand.Uint64(), 36)
	return m.l.attempt(ctx, "acquire keys", func(rctx context.Context) (int64, error) {
		return multiAcquireScript.Run(rctx, m.l.client, m.ks, ms(r.TTL), m.l.idleArg, nonce).Int64()
	}, func(cctx context.Context, took int64) {
		if took > 0 {
			_, _ = m.Release(cctx, took)
			return
		}
		for _, k := range m.ks {
			_ = abandonScript.Eval(cctx, m.l.client, []string{k}, nonce, m.l.idleArg, ms(r.TTL)).Err()
		}
	})
}

// Release frees every key the token still holds, in one round trip; true
// if it held them all.
func (m multi) Release(ctx context.Context, token int64) (bool, error) {
	return m.l.call(ctx, "release keys", multiReleaseScript, m.ks, token, m.l.idleArg)
}

// Refresh extends every key if the token holds them all, in one round
// trip.
func (m multi) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	return m.l.call(ctx, "refresh keys", multiRefreshScript, m.ks, token, ms(ttl), m.l.idleArg)
}

// Watch hears every release of each key, and wakes at each holder's
// expiry; a multi-key waiter takes no place in the keys' queues.
func (m multi) Watch(ctx context.Context, _ string, _ time.Duration) (<-chan struct{}, func(), error) {
	ready := make(chan struct{}, 1)
	var watchers []*watcher
	stop := func() {
		for _, w := range watchers {
			w.stop()
		}
	}
	for _, k := range m.ks {
		w, err := m.l.watch(ctx, k, "", ready, func(ctx context.Context) (int64, error) {
			return heldScript.Run(ctx, m.l.client, []string{k}).Int64()
		})
		if err != nil {
			stop()
			return nil, nil, err
		}
		watchers = append(watchers, w)
	}
	return ready, sync.OnceFunc(stop), nil
}

// Inspect reads each key (one round trip per key): the set is held if
// one token holds every key, for as long as the first of them has left.
func (m multi) Inspect(ctx context.Context) (backend.Info, error) {
	var out backend.Holder
	for i, k := range m.ks {
		info, err := mutex{m.l, k}.Inspect(ctx)
		if err != nil || len(info.Holders) == 0 {
			return backend.Info{}, err
		}
		h := info.Holders[0]
		if i > 0 && h.Token != out.Token {
			return backend.Info{}, nil
		}
		if i == 0 || h.TTL < out.TTL {
			out = h
		}
	}
	return backend.Info{Holders: []backend.Holder{out}}, nil
}

// ForceRelease frees every key, whoever holds it (one round trip per
// key).
func (m multi) ForceRelease(ctx context.Context) (bool, error) {
	freed := false
	for _, k := range m.ks {
		ok, err := mutex{m.l, k}.ForceRelease(ctx)
		if err != nil {
			return freed, err
		}
		freed = freed || ok
	}
	return freed, nil
}
