package etcd

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xsync-go/xsync/backend"
)

// Mutex implements [backend.Mutexer]: the mutex of key, the etcd key
// {prefix}m/{key}, with every ability; its waiters queue (FIFO).
func (l *Locker) Mutex(key string) backend.Lock { return mutex{l, key} }

type mutex struct {
	l   *Locker
	key string
}

var (
	_ backend.Refresher     = mutex{}
	_ backend.Watcher       = mutex{}
	_ backend.Inspector     = mutex{}
	_ backend.ForceReleaser = mutex{}
)

// Acquire is a lease with a full TTL, then a transaction that creates the
// key with it, with the owner as its value, if the key does not exist and
// no waiter is queued ahead (with r.Waiter: that waiter's entry is the
// queue's oldest, and goes with the grant).
//
// The lease is one this Locker used before, renewed with one keep-alive
// (not a Raft write: a third of a Put here), or a new grant (a write).
func (m mutex) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	if r.Waiter != "" {
		return m.l.acquireQueued(ctx, m.key, r.TTL, r.Owner, r.Waiter, r.Keep)
	}
	return m.l.acquireOwner(ctx, m.key, r.TTL, r.Owner)
}

// Release is one transaction that deletes the key if token (its create
// revision) still holds it. The lock's lease is kept for the next lock.
func (m mutex) Release(ctx context.Context, token int64) (bool, error) {
	return m.l.releaseKey(ctx, "release", m.l.mutexKey(m.key), token)
}

// Refresh is one keep-alive of the lock's lease, then a read that the key
// still has token as its create revision. If the lease was granted for
// another TTL than ttl (a lease's TTL is fixed in etcd), the key moves to
// a new lease of ttl instead: a grant and a transaction guarded on the
// token, which keeps the key's create revision and so the token. In that
// order the answer is sound: a key that exists after its lease was
// extended lives on with it. (A lease can outlive its key: a release
// through another Locker deletes the key but knows nothing of the lease.)
func (m mutex) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	return m.l.refreshKey(ctx, m.l.mutexKey(m.key), token, ttl)
}

// Watch queues waiter (see watchQueue).
func (m mutex) Watch(ctx context.Context, waiter string, keep time.Duration) (<-chan struct{}, func(), error) {
	return m.l.watchQueue(ctx, m.key, waiter, keep)
}

// Inspect reads the key (its create revision is the token, its value the
// owner) and counts the queue in one read-only transaction, then reads
// the time to live of its lease, in whole seconds as etcd reports it. Two
// requests: the lock can change between them (then TTL is 0).
func (m mutex) Inspect(ctx context.Context) (backend.Info, error) {
	l := m.l
	resp, err := l.client.Txn(ctx).Then(
		clientv3.OpGet(l.mutexKey(m.key)),
		clientv3.OpGet(l.queuePrefix(m.key), clientv3.WithPrefix(), clientv3.WithCountOnly())).Commit()
	if err != nil {
		return backend.Info{}, fmt.Errorf("etcd: inspect: %w", l.classify(err))
	}
	info := backend.Info{Waiting: int(resp.Responses[1].GetResponseRange().Count)}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return info, nil
	}
	h, err := l.holder(ctx, kvs[0].CreateRevision, kvs[0].Lease)
	if err != nil {
		return backend.Info{}, err
	}
	h.Owner = string(kvs[0].Value)
	info.Holders = []backend.Holder{h}
	return info, nil
}

// holder is the hold of token on lease: its time left, as etcd reports it.
func (l *Locker) holder(ctx context.Context, token, lease int64) (backend.Holder, error) {
	h := backend.Holder{Token: token}
	ttl, err := l.client.TimeToLive(ctx, clientv3.LeaseID(lease))
	if err != nil {
		return h, fmt.Errorf("etcd: inspect: %w", l.classify(err))
	}
	if ttl.TTL > 0 {
		h.TTL = time.Duration(ttl.TTL) * time.Second
	}
	return h, nil
}

// ForceRelease is one delete of the key, whoever holds it. Waiters
// watching it wake; tokens (revisions) keep growing. The holder's lease is
// left to expire.
func (m mutex) ForceRelease(ctx context.Context) (bool, error) {
	resp, err := m.l.client.Delete(ctx, m.l.mutexKey(m.key))
	if err != nil {
		return false, fmt.Errorf("etcd: force release: %w", m.l.classify(err))
	}
	return resp.Deleted > 0, nil
}

// acquireOwner is the mutex's attempt by a caller that is not queued:
// the key goes to it only if no waiter is queued for it (the same
// transaction checks that the queue is empty). On a key where this
// Locker's attempts were refused lately (see contended), it reads first.
func (l *Locker) acquireOwner(ctx context.Context, key string, ttl time.Duration, owner string) (_ int64, err error) {
	ctx, done := l.bounded(ctx, ttl)
	defer func() { err = done(err) }()
	k := l.mutexKey(key)
	readFirst := l.contended(k)
	tok, err := l.acquire(ctx, key, ttl, owner,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(l.queuePrefix(key)).WithPrefix(), "=", 0)}, nil, readFirst)
	switch {
	case err == nil && tok == 0:
		l.markContended(k)
	case tok > 0 && readFirst:
		l.unmarkContended(k)
	}
	return tok, err
}
