package etcd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xsync-go/xsync/backend"
)

// Semaphore implements [backend.Semaphorer]: a set of entries under
// {prefix}s/{hex of key}/, one per permit, each on its permit's lease; an
// entry's create revision is its token. Waiters watch the entries'
// deletes.
func (l *Locker) Semaphore(key string, limit int) backend.Lock { return semaphore{l, key, limit} }

type semaphore struct {
	l     *Locker
	key   string
	limit int
}

var (
	_ backend.Refresher     = semaphore{}
	_ backend.Watcher       = semaphore{}
	_ backend.Inspector     = semaphore{}
	_ backend.ForceReleaser = semaphore{}
)

func (s semaphore) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	return s.l.acquirePermit(ctx, s.key, s.limit, r.TTL)
}

// Release is one transaction (plus a read to find the entry when another
// Locker took the permit).
func (s semaphore) Release(ctx context.Context, token int64) (bool, error) {
	return s.l.releaseEntry(ctx, "release permit", s.l.semDir(s.key), token)
}

// Refresh is as a mutex's.
func (s semaphore) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	return s.l.refreshEntry(ctx, s.l.semDir(s.key), token, ttl)
}

// Watch watches the deletes of the permits' entries (a release, an
// expiry), and fires at once if fewer than the limit are held.
func (s semaphore) Watch(ctx context.Context, _ string, _ time.Duration) (<-chan struct{}, func(), error) {
	dir := s.l.semDir(s.key)
	return s.l.watchKey(ctx, dir, s.l.fewer(dir, s.limit), clientv3.WithPrefix())
}

// Inspect reads the permits' entries, then each one's time to live: one
// request and one per permit.
func (s semaphore) Inspect(ctx context.Context) (backend.Info, error) {
	return s.l.inspectDir(ctx, s.l.semDir(s.key), "")
}

// ForceRelease deletes every permit's entry in one request.
func (s semaphore) ForceRelease(ctx context.Context) (bool, error) {
	return s.l.deleteDir(ctx, s.l.semDir(s.key))
}

// inspectDir reads the holders' entries under dir (with their kind's
// letter after dir, if kinds is not "": read-write locks), in the order
// they were granted, each with its time to live.
func (l *Locker) inspectDir(ctx context.Context, dir, kinds string) (backend.Info, error) {
	resp, err := l.client.Get(ctx, dir, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return backend.Info{}, fmt.Errorf("etcd: inspect: %w", l.classify(err))
	}
	var info backend.Info
	for _, kv := range resp.Kvs {
		kind := ""
		if kinds != "" {
			kind = string(kv.Key[len(dir) : len(dir)+1])
			if kind == "m" {
				info.Waiting++
				continue
			}
		}
		h, err := l.holder(ctx, kv.CreateRevision, kv.Lease)
		if err != nil {
			return backend.Info{}, err
		}
		h.Write = kind == "w"
		info.Holders = append(info.Holders, h)
	}
	return info, nil
}

// deleteDir deletes the holders' entries under dir (of a read-write lock:
// its readers and writer, not its marks) in one request.
func (l *Locker) deleteDir(ctx context.Context, dirs ...string) (bool, error) {
	ops := make([]clientv3.Op, len(dirs))
	for i, d := range dirs {
		ops[i] = clientv3.OpDelete(d, clientv3.WithPrefix())
	}
	resp, err := l.client.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return false, fmt.Errorf("etcd: force release: %w", l.classify(err))
	}
	for _, r := range resp.Responses {
		if r.GetResponseDeleteRange().Deleted > 0 {
			return true, nil
		}
	}
	return false, nil
}

// fewer returns a check that fewer than n keys are under dir.
func (l *Locker) fewer(dir string, n int) func(ctx context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		resp, err := l.client.Get(ctx, dir, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return false, err
		}
		return resp.Count < int64(n), nil
	}
}

func (l *Locker) semDir(key string) string {
	return l.prefix + semaphoreSpace + hex.EncodeToString([]byte(key)) + "/"
}

// entryName is a new random name for an entry.
func entryName() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// acquirePermit is a lease, then one
// transaction that puts this permit's entry and reads the first limit
// entries by create revision. The permit is held if its entry is among
// them; otherwise the entry is deleted (one more request). Holders thus
// never exceed the limit: an entry's place only moves forward as others
// leave, and a newcomer comes last. A failed call revokes the lease, as
// Acquire does.
//
// A refused attempt so costs two Raft writes (the put and the delete)
// and leaves a deleted name in the range until a compaction. So where
// this Locker was refused lately (see contended), the attempt first
// counts the entries (a linearizable read, not a Raft write) and is
// refused there while the limit is reached; every waiter wakes at each
// release, and each then reads instead of writing twice.
func (l *Locker) acquirePermit(ctx context.Context, key string, limit int, ttl time.Duration) (_ int64, err error) {
	ctx, done := l.bounded(ctx, ttl)
	defer func() { err = done(err) }()
	dir := l.semDir(key)
	readFirst := l.contended(dir)
	if readFirst {
		if err := l.connected(ctx); err != nil {
			return 0, fmt.Errorf("etcd: acquire permit: %w", err)
		}
		resp, err := l.client.Get(ctx, dir, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return 0, fmt.Errorf("etcd: acquire permit: %w", l.classify(err))
		}
		if resp.Count >= int64(limit) {
			l.markContended(dir)
			return 0, nil
		}
	}
	entry := dir + entryName()
	le, err := l.lease(ctx, seconds(ttl))
	if err != nil {
		return 0, fmt.Errorf("etcd: lease: %w", l.classify(err))
	}
	resp, err := l.client.Txn(ctx).Then(
		clientv3.OpPut(entry, "", clientv3.WithLease(le.id)),
		clientv3.OpGet(dir, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
			clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(int64(limit))),
	).Commit()
	if err != nil {
		l.revoke(ctx, le)
		return 0, fmt.Errorf("etcd: acquire permit: %w", l.classify(err))
	}
	token := resp.Header.Revision
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		if string(kv.Key) == entry {
			l.hold(token, entry, 1, le)
			if readFirst {
				l.unmarkContended(dir)
			}
			return token, nil
		}
	}
	l.markContended(dir)
	// Over the limit: take the entry back. If that fails, revoking the
	// lease does it.
	if _, err := l.client.Delete(ctx, entry); err != nil {
		l.revoke(ctx, le)
		return 0, fmt.Errorf("etcd: acquire permit: %w", l.classify(err))
	}
	l.putIdle(le)
	return 0, nil
}

// entry finds the entry under dir whose create revision is token: known
// to this Locker if it took it, read from etcd otherwise. "" if there is
// none.
func (l *Locker) entry(ctx context.Context, dir string, token int64) (string, error) {
	l.mu.Lock()
	le, ok := l.held[token]
	l.mu.Unlock()
	if ok && len(le.key) > len(dir) && le.key[:len(dir)] == dir {
		return le.key, nil
	}
	resp, err := l.client.Get(ctx, dir, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return "", err
	}
	for _, kv := range resp.Kvs {
		if kv.CreateRevision == token {
			return string(kv.Key), nil
		}
	}
	return "", nil
}

// releaseEntry releases what token holds under dir.
func (l *Locker) releaseEntry(ctx context.Context, op, dir string, token int64) (bool, error) {
	e, err := l.entry(ctx, dir, token)
	if err != nil {
		return false, fmt.Errorf("etcd: %s: %w", op, l.classify(err))
	}
	if e == "" {
		return false, nil
	}
	return l.releaseKey(ctx, op, e, token)
}

// refreshEntry refreshes what token holds under dir.
func (l *Locker) refreshEntry(ctx context.Context, dir string, token int64, ttl time.Duration) (bool, error) {
	e, err := l.entry(ctx, dir, token)
	if err != nil {
		return false, fmt.Errorf("etcd: refresh: %w", l.classify(err))
	}
	if e == "" {
		return false, nil
	}
	return l.refreshKey(ctx, e, token, ttl)
}

// acquireEntry takes a lease and puts the etcd key k on it, with ops, if
// cmps hold; the token is the put's revision.
func (l *Locker) acquireEntry(ctx context.Context, op, k string, ttl time.Duration, cmps []clientv3.Cmp, ops []clientv3.Op) (int64, error) {
	le, err := l.lease(ctx, seconds(ttl))
	if err != nil {
		return 0, fmt.Errorf("etcd: lease: %w", l.classify(err))
	}
	resp, err := l.client.Txn(ctx).If(cmps...).Then(append(ops, clientv3.OpPut(k, "", clientv3.WithLease(le.id)))...).Commit()
	if err != nil {
		l.revoke(ctx, le)
		return 0, fmt.Errorf("etcd: %s: %w", op, l.classify(err))
	}
	if !resp.Succeeded {
		l.putIdle(le)
		return 0, nil
	}
	l.hold(resp.Header.Revision, k, 1, le)
	return resp.Header.Revision, nil
}
