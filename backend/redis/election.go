package redis

import (
	"context"
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/xsync-go/xsync/backend"
)

// Election implements [backend.Electioner]: name's election is a mutex in
// the key {prefix}e:{name}, apart from the mutexes, with the mutex's
// scripts, queue and fencing counter (its epochs). A grant is also
// published on the election's channel, for observers.
func (l *Locker) Election(name string) backend.Lock {
	return election{mutex{l, l.prefix + electionSpace + name}}
}

type election struct{ mutex }

var _ backend.Notifier = election{}

// WatchGrant declines: a granted term would show observers a leader
// without its identity until the candidate confirmed it. Candidates
// queue as plain waiters, and a release wakes the first, which
// campaigns.
func (e election) WatchGrant(context.Context, string, time.Duration) (<-chan struct{}, func() (int64, int64), func(), error) {
	return nil, nil, nil, errors.ErrUnsupported
}

// granted is the payload that tells observers of a new term; queued
// waiters, who listen by name, do not hear it.
const granted = "granted"

var publishScript = goredis.NewScript(`return redis.call('PUBLISH', KEYS[1], ARGV[1])`)

// Acquire takes the election as the mutex's Acquire does and, when it
// did, tells observers (one more round trip, best effort: an observer
// also reads the leader at the previous term's expiry).
func (e election) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	tok, err := e.mutex.Acquire(ctx, r)
	if tok > 0 {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		_ = publishScript.Run(pctx, e.l.client, []string{e.k}, granted).Err()
		cancel()
	}
	return tok, err
}

// Changes listens on the election's channel through the Locker's hub:
// every release, force release and grant is published there.
func (e election) Changes(ctx context.Context) (<-chan struct{}, func(), error) {
	ch := make(chan struct{}, 1)
	ch <- struct{}{}
	notify := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	stop, err := e.l.hub.Listen(ctx, e.k, "", notify)
	if err != nil {
		return nil, nil, err
	}
	return ch, stop, nil
}
