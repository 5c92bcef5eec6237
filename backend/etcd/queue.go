package etcd

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The waiters' queue of a mutex is a set of keys, one per waiter, under
// {prefix}q/{hex of the key}/: each on a lease of the waiter's keep time,
// which the waiter renews while it waits, ordered by create revision. The
// head is the entry with the smallest one.

// queuePrefix is the range of key's queue entries.
func (l *Locker) queuePrefix(key string) string {
	return l.prefix + queueSpace + hex.EncodeToString([]byte(key)) + "/"
}

// waiter is one queued waiter of this Locker.
type waiter struct {
	entry string // its queue key
	rev   int64  // the entry's create revision: its place in the queue
	le    lease  // the entry's lease
	renew time.Time
	left  atomic.Bool // it got the lock, which deleted its entry
	keep  time.Duration
}

// watchQueue is a mutex waiter's watch: w's entry (a put on a lease of
// keep, rounded up to whole seconds and to etcd's minimum) joins the
// key's queue, and two watches start, on the lock's key and on the queue,
// before w reads both. w is woken when the lock key is gone and no entry
// is ahead of it: one watch notification after the release, or the
// holder's expiry, or the entry ahead of it leaving (given up, or expired
// with its lease: a waiter that died). stop deletes w's entry unless w got
// the lock (one request, up to 250ms) and keeps its lease for reuse.
func (l *Locker) watchQueue(ctx context.Context, key, w string, keep time.Duration) (<-chan struct{}, func(), error) {
	k, qp := l.mutexKey(key), l.queuePrefix(key)
	le, err := l.lease(ctx, seconds(max(keep, MinTTL)))
	if err != nil {
		return nil, nil, fmt.Errorf("etcd: watch: lease: %w", l.classify(err))
	}
	entry := qp + w
	put, err := l.client.Put(ctx, entry, "", clientv3.WithLease(le.id))
	if err != nil {
		l.revoke(ctx, le)
		return nil, nil, fmt.Errorf("etcd: watch: queue: %w", l.classify(err))
	}
	wt := &waiter{entry: entry, rev: put.Header.Revision, le: le, renew: time.Now(), keep: keep}

	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	lockEvents := l.client.Watch(clientv3.WithRequireLeader(wctx), k, clientv3.WithCreatedNotify())
	queueEvents := l.client.Watch(clientv3.WithRequireLeader(wctx), qp, clientv3.WithPrefix(),
		clientv3.WithCreatedNotify(), clientv3.WithFilterPut())
	drain := func() {
		cancel()
		for range lockEvents {
		}
		for range queueEvents {
		}
	}
	cleanUp := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if _, err := l.client.Delete(ctx, entry); err == nil {
			l.putIdle(wt.le)
		}
	}
	fail := func(err error) (<-chan struct{}, func(), error) {
		drain()
		cleanUp()
		return nil, nil, fmt.Errorf("etcd: watch: %w", err)
	}
	for _, events := range []clientv3.WatchChan{lockEvents, queueEvents} {
		if err := watchCreated(ctx, events); err != nil {
			return fail(err)
		}
	}
	// The state the watches' events apply to: who is ahead, and whether
	// the lock is held. Entries only join behind w, so the set ahead only
	// shrinks.
	// Both reads in one round trip (a read-only transaction).
	read, err := l.client.Txn(ctx).Then(
		clientv3.OpGet(qp, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithMaxCreateRev(wt.rev-1)),
		clientv3.OpGet(k, clientv3.WithCountOnly())).Commit()
	if err != nil {
		return fail(err)
	}
	ahead := map[string]bool{}
	for _, kv := range read.Responses[0].GetResponseRange().Kvs {
		ahead[string(kv.Key)] = true
	}

	ready, notify := signal()
	var mu sync.Mutex
	held := read.Responses[1].GetResponseRange().Count > 0
	check := func() { // under mu
		if !held && len(ahead) == 0 {
			notify()
		}
	}
	mu.Lock()
	check()
	mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() {
		for resp := range lockEvents {
			mu.Lock()
			for _, ev := range resp.Events {
				held = ev.Type == clientv3.EventTypePut
			}
			if resp.Err() != nil || resp.Canceled {
				notify() // the watch ended (cancelled, or no leader): try again
			}
			check()
			mu.Unlock()
		}
	})
	wg.Go(func() {
		for resp := range queueEvents {
			mu.Lock()
			for _, ev := range resp.Events {
				delete(ahead, string(ev.Kv.Key))
			}
			if resp.Err() != nil || resp.Canceled {
				notify()
			}
			check()
			mu.Unlock()
		}
	})
	l.queued.Store(w, wt)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			l.queued.Delete(w)
			cancel()
			wg.Wait()
			if !wt.left.Load() {
				cleanUp()
			}
		})
	}
	return ready, stop, nil
}

// acquireQueued is an attempt by the queued waiter
// w, in one transaction that also checks that no entry of the key's queue
// is older than w's and deletes w's entry. A refused waiter's entry lease
// is renewed (one keep-alive) once half its keep time has passed.
func (l *Locker) acquireQueued(ctx context.Context, key string, ttl time.Duration, owner, w string, keep time.Duration) (_ int64, err error) {
	ctx, done := l.bounded(ctx, ttl)
	defer func() { err = done(err) }()
	v, ok := l.queued.Load(w)
	if !ok { // not queued here: as Acquire
		return l.acquireOwner(ctx, key, ttl, owner)
	}
	wt := v.(*waiter)
	tok, err := l.acquire(ctx, key, ttl, owner,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(l.queuePrefix(key)).WithPrefix(), ">", wt.rev-1)},
		[]clientv3.Op{clientv3.OpDelete(wt.entry)})
	switch {
	case tok > 0:
		wt.left.Store(true)
		l.putIdle(wt.le)
	case err == nil && time.Since(wt.renew) > wt.keep/2:
		sent := time.Now()
		resp, kerr := l.client.KeepAliveOnce(ctx, wt.le.id)
		switch {
		case kerr == nil:
			wt.renew = sent
			wt.le.expires = sent.Add(time.Duration(resp.TTL) * time.Second)
		case errors.Is(kerr, rpctypes.ErrLeaseNotFound):
			// The entry expired with its lease (this waiter did not
			// attempt for its keep time): queue again, at the end, on
			// another lease.
			if le, gerr := l.lease(ctx, wt.le.ttl); gerr == nil {
				if put, perr := l.client.Put(ctx, wt.entry, "", clientv3.WithLease(le.id)); perr == nil {
					wt.le, wt.rev, wt.renew = le, put.Header.Revision, sent
				}
			}
		}
	}
	return tok, err
}
