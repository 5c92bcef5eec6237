package etcd

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xsync-go/xsync/backend"
)

// RWLock implements [backend.RWLocker]: readers, the writer and the
// marks of writers that wait are entries under {prefix}r/{hex of key}/:
// readers in r/, the writer in w/, each waiting writer's mark in
// m/<writer> (on a lease of its keep time). An entry's create revision is
// its token (for writers, a fencing token). Waiters watch the entries'
// deletes.
func (l *Locker) RWLock(key string) (read, write backend.Lock) {
	return reader{l, key}, writer{l, key}
}

type (
	reader struct {
		l   *Locker
		key string
	}
	writer reader
)

var (
	_ backend.Refresher     = reader{}
	_ backend.Watcher       = reader{}
	_ backend.Inspector     = reader{}
	_ backend.ForceReleaser = reader{}
	_ backend.Refresher     = writer{}
	_ backend.Watcher       = writer{}
	_ backend.Inspector     = writer{}
	_ backend.ForceReleaser = writer{}
)

func (r reader) Acquire(ctx context.Context, req backend.Request) (int64, error) {
	return r.l.acquireRead(ctx, r.key, req.TTL)
}

func (w writer) Acquire(ctx context.Context, req backend.Request) (int64, error) {
	return w.l.acquireWrite(ctx, w.key, req.TTL, req.Waiter, req.Keep)
}

// Release is one transaction (plus a read to find the entry when another
// Locker took it).
func (r reader) Release(ctx context.Context, token int64) (bool, error) {
	return r.l.releaseEntry(ctx, "release", r.l.rwDir(r.key), token)
}

func (w writer) Release(ctx context.Context, token int64) (bool, error) {
	return reader(w).Release(ctx, token)
}

// Refresh is as a mutex's.
func (r reader) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	return r.l.refreshEntry(ctx, r.l.rwDir(r.key), token, ttl)
}

func (w writer) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	return reader(w).Refresh(ctx, token, ttl)
}

// Watch watches the deletes of the lock's entries (a release, an expiry,
// a writer that got the lock or left), and fires at once if no writer
// holds the lock and none waits, or nobody holds it (one read-only
// transaction). A reader woken while it cannot take the lock yet tries,
// is refused and waits on (spurious wake-ups are allowed).
func (r reader) Watch(ctx context.Context, _ string, _ time.Duration) (<-chan struct{}, func(), error) {
	return r.l.watchRW(ctx, r.key, func(readers, writers, marks int64) bool { return writers == 0 && (readers == 0 || marks == 0) })
}

// Watch puts the writer's mark m/<waiter>, which keeps new readers out,
// on a lease of keep (a lease and a put; its refused attempts renew it),
// and watches as a reader does, firing at once if nobody holds the lock.
// stop deletes the mark (one request, up to 250ms), which wakes the
// readers it kept out.
func (w writer) Watch(ctx context.Context, waiter string, keep time.Duration) (<-chan struct{}, func(), error) {
	l := w.l
	if err := l.setMark(ctx, l.rwDir(w.key)+"m/"+waiter, keep); err != nil {
		return nil, nil, fmt.Errorf("etcd: watch: mark: %w", l.classify(err))
	}
	leave := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = l.withdrawWrite(ctx, w.key, waiter)
	}
	ready, stop, err := l.watchRW(ctx, w.key, func(readers, writers, _ int64) bool { return readers == 0 && writers == 0 })
	if err != nil {
		leave()
		return nil, nil, err
	}
	return ready, sync.OnceFunc(func() { stop(); leave() }), nil
}

// Inspect reads the readers or the writer and counts the waiting writers
// in one request, then reads each holder's time to live.
func (r reader) Inspect(ctx context.Context) (backend.Info, error) {
	return r.l.inspectDir(ctx, r.l.rwDir(r.key), "rwm")
}

func (w writer) Inspect(ctx context.Context) (backend.Info, error) { return reader(w).Inspect(ctx) }

// ForceRelease deletes the readers' and the writer's entries in one
// request; the waiting writers' marks stay.
func (r reader) ForceRelease(ctx context.Context) (bool, error) {
	dir := r.l.rwDir(r.key)
	return r.l.deleteDir(ctx, dir+"r/", dir+"w/")
}

func (w writer) ForceRelease(ctx context.Context) (bool, error) { return reader(w).ForceRelease(ctx) }

// watchRW watches key's read-write lock, firing at once if free says so
// of the numbers of readers, writers and marks.
func (l *Locker) watchRW(ctx context.Context, key string, free func(readers, writers, marks int64) bool) (<-chan struct{}, func(), error) {
	dir := l.rwDir(key)
	return l.watchKey(ctx, dir, func(ctx context.Context) (bool, error) {
		count := func(p string) clientv3.Op { return clientv3.OpGet(p, clientv3.WithPrefix(), clientv3.WithCountOnly()) }
		resp, err := l.client.Txn(ctx).Then(count(dir+"r/"), count(dir+"w/"), count(dir+"m/")).Commit()
		if err != nil {
			return false, err
		}
		n := func(i int) int64 { return resp.Responses[i].GetResponseRange().Count }
		return free(n(0), n(1), n(2)), nil
	}, clientv3.WithPrefix())
}

func (l *Locker) rwDir(key string) string {
	return l.prefix + rwSpace + hex.EncodeToString([]byte(key)) + "/"
}

// acquireRead is a lease and one transaction
// that puts a reader's entry if there is no writer and no waiting
// writer's mark.
func (l *Locker) acquireRead(ctx context.Context, key string, ttl time.Duration) (_ int64, err error) {
	ctx, done := l.bounded(ctx, ttl)
	defer func() { err = done(err) }()
	dir := l.rwDir(key)
	return l.acquireEntry(ctx, "acquire read", dir+"r/"+entryName(), ttl, []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(dir+"w/").WithPrefix(), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(dir+"m/").WithPrefix(), "=", 0),
	}, nil)
}

// acquireWrite is a lease and one transaction
// that puts the writer's entry, and deletes its own mark, if nobody holds
// the lock. A refused waiting writer puts its mark m/<w> on a lease of
// keep (rounded up to whole seconds and to MinTTL): a lease and a put the
// first time, then one keep-alive once a third of it has passed, nothing in
// between.
func (l *Locker) acquireWrite(ctx context.Context, key string, ttl time.Duration, w string, keep time.Duration) (_ int64, err error) {
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
// Locker put before once a third of keep (as granted) has passed.
func (l *Locker) setMark(ctx context.Context, k string, keep time.Duration) error {
	keep = l.granted(keep)
	l.mu.Lock()
	m, ok := l.marks[k]
	l.mu.Unlock()
	if ok && time.Since(m.renewed) < keep/3 {
		return nil
	}
	sent := time.Now()
	if ok {
		_, err := l.keeper.keepAlive(ctx, m.le.id)
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

// withdrawWrite is one delete of w's mark,
// which wakes the lock's watchers; the mark's lease is kept for reuse.
func (l *Locker) withdrawWrite(ctx context.Context, key, w string) error {
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
