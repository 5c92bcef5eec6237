package etcd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xsync-go/xsync/backend"
)

var (
	_ backend.Semaphorer  = (*Locker)(nil)
	_ backend.RWLocker    = (*Locker)(nil)
	_ backend.MultiLocker = (*Locker)(nil)
)

// The other lock types. A semaphore of key is a set of entries under
// {prefix}\x00s/{hex of key}/, one per permit, each on its permit's lease;
// a read-write lock's are under {prefix}\x00r/{hex of key}/: readers in
// r/, the writer in w/, and each waiting writer's mark in m/<writer> (on
// a lease of its keep time). As for the mutex, an entry's create revision is its
// token. Lock keys beginning with "\x00s/" or "\x00r/" would share that
// space: such names are reserved, as "\x00q/" is. A multi-key lock takes
// the mutex keys themselves.

func (l *Locker) semDir(key string) string {
	return l.prefix + "\x00s/" + hex.EncodeToString([]byte(key)) + "/"
}

func (l *Locker) rwDir(key string) string {
	return l.prefix + "\x00r/" + hex.EncodeToString([]byte(key)) + "/"
}

// entryName is a new random name for an entry.
func entryName() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// AcquirePermit implements [backend.Semaphorer]: a lease, then one
// transaction that puts this permit's entry and reads the first limit
// entries by create revision. The permit is held if its entry is among
// them; otherwise the entry is deleted (one more request). Holders thus
// never exceed the limit: an entry's place only moves forward as others
// leave, and a newcomer comes last. A failed call revokes the lease, as
// Acquire does.
func (l *Locker) AcquirePermit(ctx context.Context, key string, limit int, ttl time.Duration) (_ int64, err error) {
	ctx, done := l.bounded(ctx, ttl)
	defer func() { err = done(err) }()
	dir := l.semDir(key)
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
			return token, nil
		}
	}
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

// ReleasePermit implements [backend.Semaphorer]: one transaction (plus a
// read to find the entry when another Locker took the permit).
func (l *Locker) ReleasePermit(ctx context.Context, key string, token int64) (bool, error) {
	return l.releaseEntry(ctx, "release permit", l.semDir(key), token)
}

// RefreshPermit implements [backend.Semaphorer], as Refresh does for a
// lock.
func (l *Locker) RefreshPermit(ctx context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	return l.refreshEntry(ctx, l.semDir(key), token, ttl)
}

// WatchPermits implements [backend.Semaphorer]: a watch of the deletes
// of the semaphore's entries (a release, an expiry), as [Locker.Watch].
func (l *Locker) WatchPermits(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	return l.watchKey(ctx, l.semDir(key), l.absent(l.semDir(key), clientv3.WithPrefix()), clientv3.WithPrefix())
}

// AcquireRead implements [backend.RWLocker]: a lease and one transaction
// that puts a reader's entry if there is no writer and no waiting
// writer's mark.
func (l *Locker) AcquireRead(ctx context.Context, key string, ttl time.Duration) (_ int64, err error) {
	ctx, done := l.bounded(ctx, ttl)
	defer func() { err = done(err) }()
	dir := l.rwDir(key)
	return l.acquireEntry(ctx, "acquire read", dir+"r/"+entryName(), ttl, []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(dir+"w/").WithPrefix(), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(dir+"m/").WithPrefix(), "=", 0),
	}, nil)
}

// AcquireWrite implements [backend.RWLocker]: a lease and one transaction
// that puts the writer's entry, and deletes its own mark, if nobody holds
// the lock. A refused waiting writer puts its mark m/<w> on a lease of
// keep (rounded up to whole seconds and to MinTTL): a lease and a put the
// first time, then one keep-alive once half of it has passed, nothing in
// between.
func (l *Locker) AcquireWrite(ctx context.Context, key string, ttl time.Duration, w string, keep time.Duration) (_ int64, err error) {
	ctx, done := l.bounded(ctx, ttl)
	defer func() { err = done(err) }()
	dir := l.rwDir(key)
	var ops []clientv3.Op
	if w != "" {
		ops = []clientv3.Op{clientv3.OpDelete(dir + "m/" + w)}
	}
	tok, err := l.acquireEntry(ctx, "acquire write", dir+"w/"+entryName(), ttl, []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(dir+"r/").WithPrefix(), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(dir+"w/").WithPrefix(), "=", 0),
	}, ops)
	switch {
	case w == "" || err != nil:
		return tok, err
	case tok != 0:
		if m, ok := l.takeMark(dir + "m/" + w); ok {
			l.putIdle(m.le) // the transaction deleted the mark
		}
		return tok, nil
	}
	if err := l.setMark(ctx, dir+"m/"+w, keep); err != nil {
		return 0, fmt.Errorf("etcd: acquire write: mark: %w", l.classify(err))
	}
	return 0, nil
}

// mark is a waiting writer's mark that this Locker put: the lease it
// lives on, and when that was last renewed.
type mark struct {
	le      lease
	renewed time.Time
}

// setMark puts the mark k on a lease of keep, or renews the one this
// Locker put before once half of keep has passed.
func (l *Locker) setMark(ctx context.Context, k string, keep time.Duration) error {
	keep = l.granted(keep)
	l.mu.Lock()
	m, ok := l.marks[k]
	l.mu.Unlock()
	if ok && time.Since(m.renewed) < keep/2 {
		return nil
	}
	sent := time.Now()
	if ok {
		_, err := l.client.KeepAliveOnce(ctx, m.le.id)
		if err == nil {
			m.renewed = sent
			l.keepMark(k, m)
			return nil
		}
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return err
		}
		// The mark expired with its lease: put it again.
	}
	le, err := l.lease(ctx, seconds(keep))
	if err != nil {
		return err
	}
	if _, err := l.client.Put(ctx, k, "", clientv3.WithLease(le.id)); err != nil {
		l.revoke(ctx, le)
		return err
	}
	l.keepMark(k, mark{le: le, renewed: sent})
	return nil
}

// keepMark records m as the mark k, and forgets, now and then, marks
// whose leases have surely expired (their writers stopped renewing them).
func (l *Locker) keepMark(k string, m mark) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.marks[k] = m
	if len(l.marks) <= 2*l.marksSwept+64 {
		return
	}
	now := time.Now()
	for k, m := range l.marks {
		if now.After(m.le.expires) && now.Sub(m.renewed) > time.Duration(m.le.ttl)*time.Second {
			delete(l.marks, k)
		}
	}
	l.marksSwept = len(l.marks)
}

func (l *Locker) takeMark(k string) (mark, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.marks[k]
	delete(l.marks, k)
	return m, ok
}

// WithdrawWrite implements [backend.RWLocker]: one delete of w's mark,
// which wakes the lock's watchers; the mark's lease is kept for reuse.
func (l *Locker) WithdrawWrite(ctx context.Context, key, w string) error {
	k := l.rwDir(key) + "m/" + w
	m, ok := l.takeMark(k)
	if !ok {
		return nil // never refused, or its mark was deleted already
	}
	if _, err := l.client.Delete(ctx, k); err != nil {
		return fmt.Errorf("etcd: withdraw write: %w", l.classify(err))
	}
	l.putIdle(m.le)
	return nil
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

// ReleaseRW implements [backend.RWLocker], as ReleasePermit.
func (l *Locker) ReleaseRW(ctx context.Context, key string, token int64) (bool, error) {
	return l.releaseEntry(ctx, "release", l.rwDir(key), token)
}

// RefreshRW implements [backend.RWLocker], as RefreshPermit.
func (l *Locker) RefreshRW(ctx context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	return l.refreshEntry(ctx, l.rwDir(key), token, ttl)
}

// WatchRW implements [backend.RWLocker]: a watch of the deletes of the
// lock's entries and marks (a release, an expiry, a writer that got the
// lock or gave up). Once it is in effect, it fires at once if a reader
// or a writer could take the lock: nobody holds it, or no writer holds
// it and no writer waits (one read-only transaction). A waiter woken
// when it cannot take the lock yet tries, is refused and waits on
// (spurious wake-ups are allowed).
func (l *Locker) WatchRW(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	dir := l.rwDir(key)
	return l.watchKey(ctx, dir, func(ctx context.Context) (bool, error) {
		count := func(p string) clientv3.Op { return clientv3.OpGet(p, clientv3.WithPrefix(), clientv3.WithCountOnly()) }
		resp, err := l.client.Txn(ctx).Then(count(dir+"r/"), count(dir+"w/"), count(dir+"m/")).Commit()
		if err != nil {
			return false, err
		}
		n := func(i int) int64 { return resp.Responses[i].GetResponseRange().Count }
		readers, writers, marks := n(0), n(1), n(2)
		return writers == 0 && (readers == 0 || marks == 0), nil
	}, clientv3.WithPrefix())
}

// AcquireMulti implements [backend.MultiLocker]: a lease and one
// transaction that creates every key on it if none exists and no waiter
// is queued for any; the token is its revision, every key's create
// revision. (etcd allows 128 comparisons in a transaction by default,
// enough for MaxKeys.)
func (l *Locker) AcquireMulti(ctx context.Context, keys []string, ttl time.Duration) (_ int64, err error) {
	ctx, done := l.bounded(ctx, ttl)
	defer func() { err = done(err) }()
	cmps := make([]clientv3.Cmp, 0, 2*len(keys))
	ops := make([]clientv3.Op, 0, len(keys))
	le, err := l.lease(ctx, seconds(ttl))
	if err != nil {
		return 0, fmt.Errorf("etcd: lease: %w", l.classify(err))
	}
	for _, key := range keys {
		k := l.prefix + key
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
	l.hold(resp.Header.Revision, l.prefix+keys[0], len(keys), le)
	return resp.Header.Revision, nil
}

// ownedBy is the comparisons that hold while token holds every key.
func (l *Locker) ownedBy(keys []string, token int64) []clientv3.Cmp {
	cmps := make([]clientv3.Cmp, len(keys))
	for i, key := range keys {
		cmps[i] = clientv3.Compare(clientv3.CreateRevision(l.prefix+key), "=", token)
	}
	return cmps
}

// ReleaseMulti implements [backend.MultiLocker]: one transaction that
// deletes every key if token holds them all; otherwise one more per key,
// for those it still holds.
func (l *Locker) ReleaseMulti(ctx context.Context, keys []string, token int64) (bool, error) {
	ops := make([]clientv3.Op, len(keys))
	for i, key := range keys {
		ops[i] = clientv3.OpDelete(l.prefix + key)
	}
	resp, err := l.client.Txn(ctx).If(l.ownedBy(keys, token)...).Then(ops...).Commit()
	if err != nil {
		return false, fmt.Errorf("etcd: release keys: %w", l.classify(err))
	}
	if resp.Succeeded {
		if le, ok := l.takeHeld(token); ok && le.key == l.prefix+keys[0] {
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

// RefreshMulti implements [backend.MultiLocker]: one keep-alive of the
// keys' lease and one transaction that checks that token holds them all;
// if the lease was granted for another TTL, the keys move to a new lease
// (a grant and a transaction guarded on the token).
func (l *Locker) RefreshMulti(ctx context.Context, keys []string, token int64, ttl time.Duration) (bool, error) {
	first := l.prefix + keys[0]
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
	ka, err := l.client.KeepAliveOnce(ctx, le.id)
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
	if ka.TTL < want || ka.TTL > want && ka.TTL > int64(MinTTL/time.Second) {
		g, err := l.client.Grant(ctx, want)
		if err != nil {
			return false, fmt.Errorf("etcd: refresh keys: %w", l.classify(err))
		}
		ops := make([]clientv3.Op, len(keys))
		for i, key := range keys {
			ops[i] = clientv3.OpPut(l.prefix+key, "", clientv3.WithLease(g.ID), clientv3.WithIgnoreValue())
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
	resp, err := l.client.Txn(ctx).If(l.ownedBy(keys, token)...).Commit()
	if err != nil {
		return false, fmt.Errorf("etcd: refresh keys: %w", l.classify(err))
	}
	if !resp.Succeeded {
		l.takeHeld(token)
		return false, nil
	}
	if ok {
		le.expires = sent.Add(time.Duration(ka.TTL) * time.Second)
		l.mu.Lock()
		if _, still := l.held[token]; still {
			l.held[token] = le
		}
		l.mu.Unlock()
	}
	return true, nil
}
