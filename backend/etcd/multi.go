package etcd

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xsync-go/xsync/backend"
)

// Multi implements [backend.MultiLocker]: the mutexes' own keys, created
// in one transaction on one lease, whose revision is every key's token.
func (l *Locker) Multi(keys []string) backend.Lock { return multi{l, keys} }

type multi struct {
	l    *Locker
	keys []string
}

var (
	_ backend.Refresher     = multi{}
	_ backend.Watcher       = multi{}
	_ backend.Inspector     = multi{}
	_ backend.ForceReleaser = multi{}
)

func (m multi) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	return m.l.acquireMulti(ctx, m.keys, r.TTL)
}

func (m multi) Release(ctx context.Context, token int64) (bool, error) {
	return m.l.releaseMulti(ctx, m.keys, token)
}

func (m multi) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	return m.l.refreshMulti(ctx, m.keys, token, ttl)
}

// Watch watches the deletes of each key, and fires at once if one of them
// is free; a multi-key waiter takes no place in the keys' queues.
func (m multi) Watch(ctx context.Context, _ string, _ time.Duration) (<-chan struct{}, func(), error) {
	ready, notify := signal()
	var stops []func()
	stop := func() {
		for _, s := range stops {
			s()
		}
	}
	for _, key := range m.keys {
		k := m.l.mutexKey(key)
		ch, s, err := m.l.watchKey(ctx, k, m.l.absent(k))
		if err != nil {
			stop()
			return nil, nil, err
		}
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-ch:
					notify()
				case <-done:
					return
				}
			}
		})
		stops = append(stops, func() { close(done); wg.Wait(); s() })
	}
	return ready, sync.OnceFunc(stop), nil
}

// Inspect reads every key in one read-only transaction, then the time to
// live of their lease: the set is held if one token holds every key.
func (m multi) Inspect(ctx context.Context) (backend.Info, error) {
	ops := make([]clientv3.Op, len(m.keys))
	for i, key := range m.keys {
		ops[i] = clientv3.OpGet(m.l.mutexKey(key))
	}
	resp, err := m.l.client.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return backend.Info{}, fmt.Errorf("etcd: inspect: %w", m.l.classify(err))
	}
	var first *mvccpb.KeyValue
	for _, r := range resp.Responses {
		kvs := r.GetResponseRange().Kvs
		if len(kvs) == 0 || first != nil && kvs[0].CreateRevision != first.CreateRevision {
			return backend.Info{}, nil
		}
		first = kvs[0]
	}
	h, err := m.l.holder(ctx, first.CreateRevision, first.Lease)
	if err != nil {
		return backend.Info{}, err
	}
	return backend.Info{Holders: []backend.Holder{h}}, nil
}

// ForceRelease deletes every key in one transaction.
func (m multi) ForceRelease(ctx context.Context) (bool, error) {
	ops := make([]clientv3.Op, len(m.keys))
	for i, key := range m.keys {
		ops[i] = clientv3.OpDelete(m.l.mutexKey(key))
	}
	resp, err := m.l.client.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return false, fmt.Errorf("etcd: force release: %w", m.l.classify(err))
	}
	for _, r := range resp.Responses {
		if r.GetResponseDeleteRange().Deleted > 0 {
			return true, nil
		}
	}
	return false, nil
}

// acquireMulti is a lease and one
// transaction that creates every key on it if none exists and no waiter
// is queued for any; the token is its revision, every key's create
// revision. (etcd allows 128 comparisons in a transaction by default,
// enough for MaxKeys.)
func (l *Locker) acquireMulti(ctx context.Context, keys []string, ttl time.Duration) (_ int64, err error) {
	ctx, done := l.bounded(ctx, ttl)
	defer func() { err = done(err) }()
	cmps := make([]clientv3.Cmp, 0, 2*len(keys))
	ops := make([]clientv3.Op, 0, len(keys))
	le, err := l.lease(ctx, seconds(ttl))
	if err != nil {
		return 0, fmt.Errorf("etcd: lease: %w", l.classify(err))
	}
	for _, key := range keys {
		k := l.mutexKey(key)
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(l.queuePrefix(key)).WithPrefix(), "=", 0))
		ops = append(ops, clientv3.OpPut(k, "", clientv3.WithLease(le.id)))
	}
	resp, err := l.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		l.revoke(ctx, le)
		return 0, fmt.Errorf("etcd: acquire keys: %w", l.classify(err))
	}
	if !resp.Succeeded {
		l.putIdle(le)
		return 0, nil
	}
	l.hold(resp.Header.Revision, l.mutexKey(keys[0]), len(keys), le)
	return resp.Header.Revision, nil
}

// ownedBy is the comparisons that hold while token holds every key.
func (l *Locker) ownedBy(keys []string, token int64) []clientv3.Cmp {
	cmps := make([]clientv3.Cmp, len(keys))
	for i, key := range keys {
		cmps[i] = clientv3.Compare(clientv3.CreateRevision(l.mutexKey(key)), "=", token)
	}
	return cmps
}

// releaseMulti is one transaction that
// deletes every key if token holds them all; otherwise one more per key,
// for those it still holds.
func (l *Locker) releaseMulti(ctx context.Context, keys []string, token int64) (bool, error) {
	ops := make([]clientv3.Op, len(keys))
	for i, key := range keys {
		ops[i] = clientv3.OpDelete(l.mutexKey(key))
	}
	resp, err := l.client.Txn(ctx).If(l.ownedBy(keys, token)...).Then(ops...).Commit()
	if err != nil {
		return false, fmt.Errorf("etcd: release keys: %w", l.classify(err))
	}
	if resp.Succeeded {
		if le, ok := l.takeHeld(token); ok && le.key == l.mutexKey(keys[0]) {
			l.putIdle(le)
		}
		return true, nil
	}
	// Some key was released on its own, or lost: release the others one
	// by one (each detaches from the lease, which is reused once none is
	// left on it).
	for _, key := range keys {
		if _, err := l.Release(ctx, key, token); err != nil {
			return false, err
		}
	}
	return false, nil
}

// refreshMulti is one keep-alive of the
// keys' lease and one transaction that checks, linearizably, that token
// holds them all;
// if the lease was granted for another TTL, the keys move to a new lease
// (a grant and a transaction guarded on the token).
func (l *Locker) refreshMulti(ctx context.Context, keys []string, token int64, ttl time.Duration) (bool, error) {
	first := l.mutexKey(keys[0])
	l.mu.Lock()
	le, ok := l.held[token]
	l.mu.Unlock()
	if !ok || le.key != first {
		resp, err := l.client.Get(ctx, first)
		if err != nil {
			return false, fmt.Errorf("etcd: refresh keys: %w", l.classify(err))
		}
		if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != token {
			return false, nil
		}
		le = lease{key: first, id: clientv3.LeaseID(resp.Kvs[0].Lease)}
	}
	sent := time.Now()
	kaTTL, err := l.keeper.keepAlive(ctx, le.id)
	if err != nil {
		// A lease that is gone took the keys with it.
		resp, gerr := l.client.Get(ctx, first, clientv3.WithCountOnly())
		if gerr == nil && resp.Count == 0 {
			l.takeHeld(token)
			return false, nil
		}
		return false, fmt.Errorf("etcd: refresh keys: %w", l.classify(err))
	}
	want := seconds(ttl)
	if kaTTL < want || kaTTL > want && kaTTL > int64(MinTTL/time.Second) {
		g, err := l.client.Grant(ctx, want)
		if err != nil {
			return false, fmt.Errorf("etcd: refresh keys: %w", l.classify(err))
		}
		ops := make([]clientv3.Op, len(keys))
		for i, key := range keys {
			ops[i] = clientv3.OpPut(l.mutexKey(key), "", clientv3.WithLease(g.ID), clientv3.WithIgnoreValue())
		}
		nle := lease{key: first, keys: len(keys), id: g.ID, ttl: want, expires: sent.Add(time.Duration(g.TTL) * time.Second)}
		resp, err := l.client.Txn(ctx).If(l.ownedBy(keys, token)...).Then(ops...).Commit()
		if err != nil || !resp.Succeeded {
			l.revoke(ctx, nle)
			if err != nil {
				return false, fmt.Errorf("etcd: refresh keys: %w", l.classify(err))
			}
			l.takeHeld(token)
			return false, nil
		}
		l.mu.Lock()
		old, ours := l.held[token]
		l.held[token] = nle
		l.mu.Unlock()
		if ours && old.key == first {
			l.putIdle(old)
		}
		return true, nil
	}
	// The linearizable read in the transaction makes it one: etcd serves a
	// transaction of comparisons alone from the member's own state, which
	// may lag (a member rejoining after a partition said "not held" of
	// keys taken after its last revision, and would say "held" of keys
	// deleted since).
	resp, err := l.client.Txn(ctx).If(l.ownedBy(keys, token)...).Then(clientv3.OpGet(first, clientv3.WithCountOnly())).Commit()
	if err != nil {
		return false, fmt.Errorf("etcd: refresh keys: %w", l.classify(err))
	}
	if !resp.Succeeded {
		l.takeHeld(token)
		return false, nil
	}
	if ok {
		le.expires = sent.Add(time.Duration(kaTTL) * time.Second)
		l.mu.Lock()
		if _, still := l.held[token]; still {
			l.held[token] = le
		}
		l.mu.Unlock()
	}
	return true, nil
}
