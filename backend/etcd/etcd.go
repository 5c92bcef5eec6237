// Package etcd is an xsync lock backend on etcd: leases for expiry,
// transactions for atomicity, and the key's create revision as the
// fencing token.
//
//	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"etcd:2379"}})
//	...
//	xsync.Register("default", etcd.New(cli))
//
// # What is guaranteed
//
// etcd replicates every write through Raft to a majority before it answers,
// so these hold as long as a majority of the cluster is up and reachable,
// through the loss of any minority of members and through leader changes:
//
//   - Mutual exclusion: a lock is a key created by a transaction guarded on
//     "the key does not exist", attached to a lease of the lock's TTL.
//   - Fencing tokens: the token is the key's create revision, which grows
//     across the whole cluster with every write. Every later acquisition of
//     any key gets a larger token. A protected resource in etcd itself can
//     compare it in its own transaction; elsewhere, store it with the data
//     and refuse smaller ones (UPDATE ... WHERE fence < $token).
//   - Owner-only release: release revokes the holder's own lease, which
//     deletes only the keys attached to it; an expired holder's lease is
//     gone, so its release returns false.
//   - Expiry: the lease expires after its TTL on the leader's clock and
//     etcd deletes the key. etcd grants at least its minimum lease TTL:
//     2s with the default election timeout, so the seed's default of 1s
//     becomes 2s on the server (the caller's callback context still ends
//     after the 1s asked for). TTLs are whole seconds, rounded up; expiry
//     happens within about 0.5s after the TTL.
//   - Bounded state: one key and one lease per held lock, both gone when it
//     is released or expires.
//   - Release notification: a waiter watches the key from the revision at
//     which it saw it held, so it learns of the release or the expiry at
//     once.
//
// # What is not guaranteed
//
//   - Without a reachable majority, every call fails with the client's
//     error (not xsync.ErrMissingLock); a holder cut off from the majority
//     cannot refresh, and its lock expires on the majority's side while it
//     may still run. Auto-extension then cancels its callback's context
//     when its TTL runs out; fence writes with the token to be safe.
//   - After a leader change etcd extends every lease by an election timeout,
//     so a lock can outlive its TTL by that much.
//   - A write whose call timed out may still be applied later: an Acquire
//     that returned an error may have taken the lock, which then expires.
//
// # Round trips
//
// Acquire is two (grant a lease, then the transaction; three when the key
// is held, counting the revoke of the unused lease), Release one (revoke),
// Refresh one (keep-alive). A token this Locker did not hand out (released
// by another process) costs one more round trip to find its lease.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xsync-go/xsync/backend"
)

var (
	_ backend.Locker    = (*Locker)(nil)
	_ backend.Refresher = (*Locker)(nil)
	_ backend.Watcher   = (*Locker)(nil)
)

// DefaultPrefix is where locks live unless [WithPrefix] says otherwise.
const DefaultPrefix = "xsync/"

// MinTTL is etcd's minimum lease TTL with the default election timeout
// (1s): shorter TTLs are granted as this.
const MinTTL = 2 * time.Second

// Option configures a Locker.
type Option func(*Locker)

// WithPrefix puts every key under prefix (default "xsync/").
func WithPrefix(prefix string) Option {
	return func(l *Locker) { l.prefix = prefix }
}

// Locker is the etcd backend. It never closes its client. It is safe for
// concurrent use.
type Locker struct {
	client *clientv3.Client
	prefix string

	mu     sync.Mutex
	leases map[int64]lease // by token: leases this Locker granted for held locks
	swept  int             // len(leases) after the last sweep
}

type lease struct {
	key     string // the lock's key, with the prefix
	id      clientv3.LeaseID
	expires time.Time // local estimate; only used to forget abandoned entries
}

// New returns a backend that keeps its locks in the etcd cluster behind
// client.
func New(client *clientv3.Client, opts ...Option) *Locker {
	l := &Locker{client: client, prefix: DefaultPrefix, leases: make(map[int64]lease)}
	for _, o := range opts {
		o(l)
	}
	return l
}

// seconds rounds ttl up to whole seconds, the unit of an etcd lease.
func seconds(ttl time.Duration) int64 {
	return int64((ttl + time.Second - 1) / time.Second)
}

// Acquire implements [backend.Locker]: a lease, then a transaction that
// creates the key with it if the key does not exist.
func (l *Locker) Acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	g, err := l.client.Grant(ctx, seconds(ttl))
	if err != nil {
		return 0, fmt.Errorf("etcd: grant lease: %w", err)
	}
	k := l.prefix + key
	resp, err := l.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, "", clientv3.WithLease(g.ID))).
		Commit()
	if err != nil {
		// The put may still be applied; the lease bounds it either way.
		l.revoke(ctx, g.ID)
		return 0, fmt.Errorf("etcd: acquire: %w", err)
	}
	if !resp.Succeeded {
		l.revoke(ctx, g.ID)
		return 0, nil
	}
	token := resp.Header.Revision
	l.remember(token, k, g.ID, time.Duration(g.TTL)*time.Second)
	return token, nil
}

// revoke gives back a lease that holds no lock, best effort: if it fails,
// the lease expires by itself.
func (l *Locker) revoke(ctx context.Context, id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_, _ = l.client.Revoke(ctx, id)
}

func (l *Locker) remember(token int64, key string, id clientv3.LeaseID, ttl time.Duration) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leases[token] = lease{key: key, id: id, expires: now.Add(ttl)}
	// Forget entries of locks that expired without a release, now and then
	// (amortized O(1)), so the map follows the number of locks held.
	if len(l.leases) > 2*l.swept+64 {
		for tok, e := range l.leases {
			if now.After(e.expires) {
				delete(l.leases, tok)
			}
		}
		l.swept = len(l.leases)
	}
}

func (l *Locker) forget(token int64) {
	l.mu.Lock()
	delete(l.leases, token)
	l.mu.Unlock()
}

// leaseOf finds the lease of the lock held by token on key: from memory if
// this Locker granted it, otherwise from the key (one round trip). ok is
// false if token does not hold key.
func (l *Locker) leaseOf(ctx context.Context, key string, token int64) (id clientv3.LeaseID, ok bool, err error) {
	k := l.prefix + key
	l.mu.Lock()
	e, found := l.leases[token]
	l.mu.Unlock()
	if found {
		// A token is a revision, unique in the cluster: on another key it
		// holds nothing.
		return e.id, e.key == k, nil
	}
	resp, err := l.client.Get(ctx, k)
	if err != nil {
		return 0, false, err
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != token {
		return 0, false, nil
	}
	return clientv3.LeaseID(resp.Kvs[0].Lease), true, nil
}

// Release implements [backend.Locker] by revoking the lock's lease, which
// deletes the key attached to it and nothing else.
func (l *Locker) Release(ctx context.Context, key string, token int64) (bool, error) {
	id, ok, err := l.leaseOf(ctx, key, token)
	if err != nil {
		return false, fmt.Errorf("etcd: release: %w", err)
	}
	if !ok {
		return false, nil
	}
	_, err = l.client.Revoke(ctx, id)
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		l.forget(token)
		return false, nil // expired: the key went with it
	case err != nil:
		return false, fmt.Errorf("etcd: release: %w", err)
	}
	l.forget(token)
	return true, nil
}

// Refresh implements [backend.Refresher] with one keep-alive of the lock's
// lease. etcd renews a lease to the TTL it was granted with; the core
// always asks for that same TTL.
func (l *Locker) Refresh(ctx context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	id, ok, err := l.leaseOf(ctx, key, token)
	if err != nil {
		return false, fmt.Errorf("etcd: refresh: %w", err)
	}
	if !ok {
		return false, nil
	}
	resp, err := l.client.KeepAliveOnce(ctx, id)
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		l.forget(token)
		return false, nil
	case err != nil:
		return false, fmt.Errorf("etcd: refresh: %w", err)
	}
	l.remember(token, l.prefix+key, id, time.Duration(resp.TTL)*time.Second)
	return true, nil
}

// Watch implements [backend.Watcher]. It starts a watch at the current
// revision and waits until etcd has created it, then reads the key: a
// release before the read shows in the read, one after it in the watch.
// (A watch from a past revision would wait for etcd's 100ms catch-up.)
func (l *Locker) Watch(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	k := l.prefix + key
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	events := l.client.Watch(clientv3.WithRequireLeader(wctx), k,
		clientv3.WithCreatedNotify(), clientv3.WithFilterPut())
	fail := func(err error) (<-chan struct{}, func(), error) {
		cancel()
		for range events { // let the watch's goroutines finish
		}
		return nil, nil, fmt.Errorf("etcd: watch: %w", err)
	}
	select {
	case resp, ok := <-events:
		if !ok {
			return fail(errors.New("watch closed before it was created"))
		}
		if err := resp.Err(); err != nil {
			return fail(err)
		}
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	resp, err := l.client.Get(ctx, k, clientv3.WithCountOnly())
	if err != nil {
		return fail(err)
	}

	ready := make(chan struct{}, 1)
	notify := func() {
		select {
		case ready <- struct{}{}:
		default:
		}
	}
	if resp.Count == 0 {
		notify()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range events {
			// A delete, or the end of the watch (cancelled, or the
			// cluster lost its leader): either way, try again.
			notify()
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	return ready, stop, nil
}
