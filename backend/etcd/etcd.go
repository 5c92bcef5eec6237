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
//     any key gets a larger token. Data in etcd itself is fenced by
//     [Locker.OwnerCmp] in the transaction that writes it; elsewhere, store
//     the token with the data and refuse smaller ones (UPDATE ... WHERE
//     fence < $token).
//   - Owner-only release: release is a transaction guarded on the key's
//     create revision being the token; an expired holder's token no longer
//     matches, so its release returns false.
//   - Expiry: the lease expires after its TTL on the leader's clock and
//     etcd deletes the key. etcd grants at least its minimum lease TTL:
//     2s with the default election timeout, so the seed's default of 1s
//     becomes 2s on the server (the caller's callback context still ends
//     after the 1s asked for). TTLs are whole seconds, rounded up; expiry
//     happens within about 0.5s after the TTL.
//   - Bounded state: one key and one lease per held lock, and one key per
//     queued waiter; the lock's key goes when the lock is released or
//     expires, a waiter's when it gets the lock, gives up or dies (with its
//     lease), and a lease kept for reuse expires within its TTL if it is
//     not reused.
//   - Operators: [Locker.Inspect] reads a key's token, owner metadata (the
//     key's value, set by [Locker.AcquireOwner]) and its lease's time left;
//     [Locker.ForceRelease] deletes the key whoever holds it, which wakes
//     watching waiters; revisions, and so tokens, keep growing.
//   - Waiters queue (FIFO), as etcd's own Mutex has them do: a caller that
//     finds the key held puts an entry under {prefix}\x00q/{hex of key}/ on
//     a lease, and its create revision is its place. It watches the lock's
//     key and the queue from the current revision (no catch-up stall) and
//     tries only when the key is gone and no entry is ahead of it; its
//     transaction checks both. A handoff is thus one watch notification
//     after the releasing delete and the next waiter's transaction, however
//     many wait; a free key goes to the first waiter, and a newcomer's
//     transaction checks that nobody is queued. A waiter that gives up
//     deletes its entry (one request, up to 250ms); one that dies holds the
//     others back until its entry's lease expires: its keep time,
//     max(3 × retry interval, 1s), rounded up to whole seconds and to
//     MinTTL, plus etcd's expiry delay. Lock keys beginning with "\x00q/"
//     are reserved for the queues.
//
// # What is not guaranteed
//
//   - Without a reachable majority, every call fails with the client's
//     error (not xsync.ErrMissingLock). A lock attempt or Ping fails at
//     once, marked backend.ErrUnavailable, when the client cannot connect
//     (its last connection attempt failed: a stopped server, a refused
//     dial); the etcd client alone would wait for a connection until the
//     call's context ends. A server that stops answering on an open
//     connection (frozen, cut off) is not seen that way; a lock attempt
//     then ends at the TTL etcd grants (whole seconds, at least MinTTL:
//     never sooner than a lock granted by a healthy server could be of
//     use), marked backend.ErrUnavailable, unless its context ends sooner
//     (a grant after that TTL could only be of an expired lock), and
//     other calls wait for their context. A holder
//     cut off from the majority cannot refresh, and its lock expires on
//     the majority's side while it may still run. Auto-extension then
//     cancels its callback's context when its TTL runs out; fence writes
//     with the token to be safe.
//   - After a leader change etcd extends every lease by an election timeout,
//     so a lock can outlive its TTL by that much.
//   - A write whose call failed or timed out may have been applied, or may
//     still be applied later. An Acquire that fails therefore revokes its
//     lease before it returns (one more request, at most 250ms): that
//     deletes the key if the put was applied, and makes a put that comes
//     later fail. The lock stays orphaned only if the revocation cannot
//     reach the cluster either, and then until its lease expires: its TTL
//     after the put was applied, which a fault can delay until it heals,
//     plus an election timeout across a leader change (with the leader
//     isolated, soaks showed orphans lasting up to 6.85s with a 2s TTL).
//
// # Under faults, as histories show
//
// TestHistory records concurrent histories with conformance.RunHistory
// under each fault below and checks them; docs/safety.md has the figures
// of a soak. One member paused longer than the TTL, killed and restarted
// (its data survives), cut off the network, a client's link frozen, and on
// three members the leader cut off: under every one, mutual exclusion
// holds, tokens grow in grant order, a fenced resource accepts no stale
// write, no release or refresh succeeds for a token that lost the key, and
// a callback that outlives its lock has its context ended at the validity
// deadline. An acquisition that hung through a fault can be granted after
// its validity has passed; Run then hands the callback an already-ended
// context, with a cause matching xsync.ErrLockLost (counted as late
// grants).
//
// # Semaphores, read-write locks, multi-key locks
//
// Each permit and each read or write lock is an entry on a lease of its
// own, and its create revision is its token (for writers, a fencing
// token); waiters watch the entries' deletes.
//
//   - A semaphore of key keeps its permits under {prefix}\x00s/{hex of
//     key}/. An attempt is a lease and one transaction that puts the entry
//     and reads the first limit entries by create revision: the permit is
//     held if its entry is among them, and deleted otherwise (one more
//     request). An entry's place only moves forward, so holders never
//     exceed the limit.
//   - A read-write lock of key keeps readers, the writer and the marks of
//     writers that wait under {prefix}\x00r/{hex of key}/. A read attempt
//     is refused while a writer or a mark exists; a write attempt while
//     a reader or a writer does, and a writer that waits then puts its
//     own mark on a lease of its keep time (rounded up to whole seconds
//     and to MinTTL: a lease and a put, then a keep-alive once half of it
//     passed); its grant or its giving up deletes the mark.
//   - A multi-key lock is one transaction that creates every key, on one
//     lease, if none exists and none has waiters queued; its revision is
//     every key's token.
//
// Lock keys beginning with "\x00s/" or "\x00r/" are reserved, as "\x00q/"
// is. A release by a Locker that did not take the permit or read lock
// reads the entries first (one more request).
//
// # Round trips
//
// Measured in etcd writes (a Put) on one node: Acquire is a lease plus a
// transaction. The lease is one this Locker used before, renewed to a full
// TTL with one keep-alive (which is not a Raft write: about a third of a
// Put), or, the first time, a new grant (a write). Release is one
// transaction (a write); its lease is kept for the next lock and expires
// on its own when unused. Refresh is one keep-alive and one read. An uncontended
// Lock+Unlock costs about 2.4 Puts; see docs/benchmarks.md.
//
// # URLs
//
// Importing this package registers the URL scheme "etcd" with xsync.Open:
//
//	etcd://[user:password@]host1:2379[,host2:2379...][?options]
//
// Options: prefix (see [WithPrefix]); dial_timeout (a duration, default
// 5s); tls=true to connect with TLS, with ca_file (the CAs to trust
// instead of the system's), cert_file and key_file (a client certificate,
// for a cluster started with --client-cert-auth), all PEM files; and
// skip_verify=true, which turns certificate verification off: unsafe,
// only for tests. With a user and password, Open does not connect: the
// first call authenticates. The client Open builds is closed by the
// Closer Open returns.
//
// # Security
//
// TLS, mutual TLS and authentication are tested on a real cluster. With
// auth enabled, a lock user needs only read and write on its prefix
// (leases need no permission of their own):
//
//	etcdctl role add xsync-lock
//	etcdctl role grant-permission xsync-lock --prefix=true readwrite xsync/
//	etcdctl user add locker
//	etcdctl user grant-role locker xsync-lock
//
// A user of another prefix gets "permission denied" for every call on this
// one. A wrong password is "authentication failed"; errors never show it.
// A TLS handshake that fails (a certificate from another CA, a missing
// client certificate) makes etcd's client wait for a connection until the
// context ends; the error then says there was no connection to the cluster
// and why ("x509: certificate signed by unknown authority").
package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/xsync-go/xsync/backend"
)

var (
	_ backend.Locker        = (*Locker)(nil)
	_ backend.Refresher     = (*Locker)(nil)
	_ backend.Watcher       = (*Locker)(nil)
	_ backend.Pinger        = (*Locker)(nil)
	_ backend.OwnerAcquirer = (*Locker)(nil)
	_ backend.Inspector     = (*Locker)(nil)
	_ backend.ForceReleaser = (*Locker)(nil)
	_ backend.Queuer        = (*Locker)(nil)
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
	minTTL atomic.Int64 // seconds: the shortest lease the cluster grants, as far as known

	mu    sync.Mutex
	held  map[int64]lease   // by token: the leases of locks this Locker took
	idle  map[int64][]lease // by TTL in seconds: leases free for the next lock
	swept int               // len(held) after the last sweep
	marks map[string]mark   // by key: waiting writers' marks this Locker put
	// marksSwept is len(marks) after the last sweep.
	marksSwept int

	queued sync.Map // waiter → *waiter: this Locker's queued waiters
}

// lease is a lease this Locker granted. expires is a local estimate, only
// used to drop leases that etcd has surely expired.
type lease struct {
	key     string // the lock's key, with the prefix (held leases only); a multi-key lock's first key
	keys    int    // held leases: how many lock keys are attached to it; it is reused only once none is
	id      clientv3.LeaseID
	ttl     int64 // seconds, as granted
	expires time.Time
}

// New returns a backend that keeps its locks in the etcd cluster behind
// client.
//
// It panics if client is nil: a programmer's error, as with database/sql's
// Register.
func New(client *clientv3.Client, opts ...Option) *Locker {
	if client == nil {
		panic("etcd: New: client is nil")
	}
	l := &Locker{
		client: client,
		prefix: DefaultPrefix,
		held:   make(map[int64]lease),
		idle:   make(map[int64][]lease),
		marks:  make(map[string]mark),
	}
	for _, o := range opts {
		o(l)
	}
	l.minTTL.Store(int64(MinTTL / time.Second))
	return l
}

// granted is the TTL etcd grants a lease asked for ttl: whole seconds,
// rounded up, and at least the cluster's minimum lease TTL (MinTTL, or
// more as the cluster's grants have shown).
func (l *Locker) granted(ttl time.Duration) time.Duration {
	return time.Duration(max(seconds(ttl), l.minTTL.Load())) * time.Second
}

// seconds rounds ttl up to whole seconds, the unit of an etcd lease.
func seconds(ttl time.Duration) int64 {
	return int64((ttl + time.Second - 1) / time.Second)
}

// Acquire implements [backend.Locker]: a lease with a full TTL, then a
// transaction that creates the key with it if the key does not exist.
//
// The lease is one this Locker used before, renewed with one keep-alive
// (not a Raft write: a third of a Put here), or a new grant (a write).
func (l *Locker) Acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	return l.AcquireOwner(ctx, key, ttl, "")
}

// AcquireOwner implements [backend.OwnerAcquirer]: Acquire, with owner as
// the lock key's value (for [Locker.Inspect]). Same cost.
//
// The key goes to this caller only if no waiter is queued for it (see
// [Locker.WatchQueue]): the same transaction checks that the queue is
// empty.
func (l *Locker) AcquireOwner(ctx context.Context, key string, ttl time.Duration, owner string) (_ int64, err error) {
	ctx, done := l.bounded(ctx, ttl)
	defer func() { err = done(err) }()
	return l.acquire(ctx, key, ttl, owner,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(l.queuePrefix(key)).WithPrefix(), "=", 0)}, nil)
}

// errNoAnswer marks a lock attempt that got no answer within the lock's
// TTL.
var errNoAnswer = fmt.Errorf("%w: no answer within the lock's TTL", backend.ErrUnavailable)

// bounded gives a lock attempt at most the TTL etcd grants for ttl
// (see [Locker.granted]), unless ctx ends sooner: a grant that comes
// later could only be of a lock whose validity has passed, and the etcd
// client would otherwise wait on a frozen server for as long as ctx lets
// it. done(err) ends the bound and marks err with errNoAnswer (so
// backend.ErrUnavailable) if the bound cut the attempt short. The
// attempt's clean-up (revoking its lease) runs detached from the bound.
func (l *Locker) bounded(ctx context.Context, ttl time.Duration) (context.Context, func(error) error) {
	ttl = l.granted(ttl)
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= ttl {
		return ctx, func(err error) error { return err }
	}
	bctx, cancel := context.WithTimeoutCause(ctx, ttl, errNoAnswer)
	return bctx, func(err error) error {
		if err != nil && ctx.Err() == nil && errors.Is(context.Cause(bctx), errNoAnswer) && !errors.Is(err, errNoAnswer) {
			err = fmt.Errorf("%w: %w", errNoAnswer, err)
		}
		cancel()
		return err
	}
}

// acquire makes the lock's transaction: the key does not exist, and the
// comparisons cmps hold; then the put and the operations ops.
func (l *Locker) acquire(ctx context.Context, key string, ttl time.Duration, owner string, cmps []clientv3.Cmp, ops []clientv3.Op) (int64, error) {
	le, err := l.lease(ctx, seconds(ttl))
	if err != nil {
		// A lease granted without our knowing holds no key: it expires.
		return 0, fmt.Errorf("etcd: lease: %w", l.classify(err))
	}
	k := l.prefix + key
	resp, err := l.client.Txn(ctx).
		If(append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))...).
		Then(append(ops, clientv3.OpPut(k, owner, clientv3.WithLease(le.id)))...).
		Commit()
	if err != nil {
		// The put may have been applied, or may still be: revoking the
		// lease deletes the key if it was, and makes the put fail if it
		// comes later (its lease is gone).
		l.revoke(ctx, le)
		return 0, fmt.Errorf("etcd: acquire: %w", l.classify(err))
	}
	if !resp.Succeeded {
		l.putIdle(le)
		return 0, nil
	}
	token := resp.Header.Revision
	l.hold(token, k, 1, le)
	return token, nil
}

// cleanupTimeout bounds the revocation of an acquire's lease when the
// acquire failed.
const cleanupTimeout = 250 * time.Millisecond

// revoke revokes the lease of a failed acquire, best effort and bounded.
func (l *Locker) revoke(ctx context.Context, le lease) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = l.client.Revoke(ctx, le.id)
}

// classify marks err as [backend.ErrUnavailable] when the client has no
// working connection to the cluster (its connection is failing or being
// re-established), which is what ended the call rather than its context:
// the etcd client waits for a connection until the context ends.
func (l *Locker) classify(err error) error {
	if errors.Is(err, backend.ErrUnavailable) {
		return err
	}
	if conn := l.client.ActiveConnection(); conn != nil && conn.GetState() == connectivity.TransientFailure {
		return fmt.Errorf("%w: no connection to the cluster%s: %w", backend.ErrUnavailable, connError(conn), err)
	}
	return err
}

// connError says why conn has no connection (a refused dial, a TLS
// handshake that failed: "x509: certificate signed by unknown authority"),
// as gRPC tells a call that does not wait for a connection; "" if it
// cannot tell. The etcd client's own calls wait until their context ends
// and then report only that.
func connError(conn *grpc.ClientConn) string {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := etcdserverpb.NewMaintenanceClient(conn).Status(ctx, &etcdserverpb.StatusRequest{}, grpc.WaitForReady(false))
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
		return " (" + st.Message() + ")"
	}
	return ""
}

// connected returns an error marked [backend.ErrUnavailable] at once if
// the client's last attempt to connect to the cluster failed, instead of
// letting a call wait for a connection until its context ends (what the
// etcd client does: a lock attempt on a cluster that is down would hang
// as long as its caller lets it). While the client is still connecting
// it waits for the outcome, within ctx. An established connection that
// stops answering (a frozen server) is not seen here: a lock attempt
// then ends at its TTL (see bounded).
func (l *Locker) connected(ctx context.Context) error {
	conn := l.client.ActiveConnection()
	if conn == nil {
		return nil
	}
	for {
		st := conn.GetState()
		switch st {
		case connectivity.Ready, connectivity.Shutdown:
			return nil // a closed client says so itself
		case connectivity.TransientFailure:
			return fmt.Errorf("%w: no connection to the cluster%s", backend.ErrUnavailable, connError(conn))
		case connectivity.Idle:
			conn.Connect()
		}
		if !conn.WaitForStateChange(ctx, st) {
			return nil // ctx ended: the call reports it
		}
	}
}

// lease returns a lease whose TTL (ttl seconds) starts now. It is every
// acquisition's first request, and fails at once when the cluster cannot
// be reached (see [Locker.connected]).
func (l *Locker) lease(ctx context.Context, ttl int64) (lease, error) {
	if err := l.connected(ctx); err != nil {
		return lease{}, err
	}
	for {
		le, ok := l.takeIdle(ttl)
		if !ok {
			break
		}
		sent := time.Now()
		resp, err := l.client.KeepAliveOnce(ctx, le.id)
		if err == nil {
			le.expires = sent.Add(time.Duration(resp.TTL) * time.Second)
			return le, nil
		}
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return lease{}, err
		}
		// Expired meanwhile: try the next one, or grant.
	}
	sent := time.Now()
	g, err := l.client.Grant(ctx, ttl)
	if err != nil {
		return lease{}, err
	}
	if g.TTL > ttl && g.TTL > l.minTTL.Load() {
		l.minTTL.Store(g.TTL) // the cluster's minimum is more than MinTTL
	}
	return lease{id: g.ID, ttl: ttl, expires: sent.Add(time.Duration(g.TTL) * time.Second)}, nil
}

func (l *Locker) takeIdle(ttl int64) (lease, bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	pool := l.idle[ttl]
	for len(pool) > 0 {
		le := pool[len(pool)-1]
		pool = pool[:len(pool)-1]
		// A lease near its end may expire before the keep-alive arrives.
		if le.expires.Sub(now) > 250*time.Millisecond {
			l.idle[ttl] = pool
			return le, true
		}
	}
	delete(l.idle, ttl)
	return lease{}, false
}

func (l *Locker) putIdle(le lease) {
	le.key = ""
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	// Drop what etcd has expired already, so the pool stays small: at most
	// the locks released within one TTL.
	pool := l.idle[le.ttl][:0]
	for _, e := range l.idle[le.ttl] {
		if e.expires.After(now) {
			pool = append(pool, e)
		}
	}
	l.idle[le.ttl] = append(pool, le)
}

// sweepLocked forgets, now and then (amortized O(1)), held entries of
// locks that expired without a release, so the map follows the number of
// locks held.
func (l *Locker) sweepLocked() {
	if len(l.held) <= 2*l.swept+64 {
		return
	}
	now := time.Now()
	for tok, e := range l.held {
		if now.After(e.expires) {
			delete(l.held, tok)
		}
	}
	l.swept = len(l.held)
}

// hold records that token holds n lock keys on le, k the first of them.
func (l *Locker) hold(token int64, k string, n int, le lease) {
	le.key, le.keys = k, n
	l.mu.Lock()
	l.held[token] = le
	l.sweepLocked()
	l.mu.Unlock()
}

// detach records that one of the keys token holds was deleted, and puts
// the lease back in the pool once none is attached to it: a lease that
// still carries a key must never be reused (a lock taken on it would
// renew that key with its own keep-alives).
func (l *Locker) detach(token int64) {
	l.mu.Lock()
	le, ok := l.held[token]
	if ok && le.keys > 1 {
		le.keys--
		l.held[token] = le
		ok = false
	} else if ok {
		delete(l.held, token)
	}
	l.mu.Unlock()
	if ok {
		l.putIdle(le)
	}
}

func (l *Locker) takeHeld(token int64) (lease, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	le, ok := l.held[token]
	delete(l.held, token)
	return le, ok
}

// Release implements [backend.Locker] with one transaction that deletes
// the key if token (its create revision) still holds it. The lock's lease
// is kept for the next lock.
func (l *Locker) Release(ctx context.Context, key string, token int64) (bool, error) {
	return l.releaseKey(ctx, "release", l.prefix+key, token)
}

// releaseKey deletes the etcd key k if token is its create revision, and
// keeps the lease for the next lock.
func (l *Locker) releaseKey(ctx context.Context, op, k string, token int64) (bool, error) {
	resp, err := l.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", token)).
		Then(clientv3.OpDelete(k)).
		Commit()
	if err != nil {
		return false, fmt.Errorf("etcd: %s: %w", op, l.classify(err))
	}
	if !resp.Succeeded {
		return false, nil
	}
	l.detach(token)
	return true, nil
}

// Refresh implements [backend.Refresher]: one keep-alive of the lock's
// lease, then a read that the key still has token as its create revision.
// If the lease was granted for another TTL than ttl (a lease's TTL is fixed
// in etcd), the key moves to a new lease of ttl instead: a grant and a
// transaction guarded on the token, which keeps the key's create revision
// and so the token.
// In that order the answer is sound: a key that exists after its lease was
// extended lives on with it. (A lease can outlive its key: a release through
// another Locker deletes the key but knows nothing of the lease.)
func (l *Locker) Refresh(ctx context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	return l.refreshKey(ctx, l.prefix+key, token, ttl)
}

// refreshKey is Refresh of the etcd key k.
func (l *Locker) refreshKey(ctx context.Context, k string, token int64, ttl time.Duration) (bool, error) {
	l.mu.Lock()
	le, ok := l.held[token]
	l.mu.Unlock()
	if !ok || le.key != k {
		// Not taken by this Locker (or on another key): find the lease on
		// the key itself.
		resp, err := l.client.Get(ctx, k)
		if err != nil {
			return false, fmt.Errorf("etcd: refresh: %w", l.classify(err))
		}
		if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != token {
			return false, nil
		}
		le = lease{key: k, id: clientv3.LeaseID(resp.Kvs[0].Lease), ttl: seconds(ttl)}
	}
	sent := time.Now()
	resp, err := l.client.KeepAliveOnce(ctx, le.id)
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		l.takeHeld(token)
		return false, nil
	case err != nil:
		return false, fmt.Errorf("etcd: refresh: %w", l.classify(err))
	}
	if want := seconds(ttl); resp.TTL < want || resp.TTL > want && resp.TTL > int64(MinTTL/time.Second) {
		// The lease was granted for another TTL, and a lease's TTL is
		// fixed: move the key to a lease of the TTL asked for.
		return l.rebind(ctx, k, token, want)
	}
	if ok {
		check, err := l.client.Get(ctx, k, clientv3.WithKeysOnly())
		if err != nil {
			return false, fmt.Errorf("etcd: refresh: %w", l.classify(err))
		}
		if len(check.Kvs) == 0 || check.Kvs[0].CreateRevision != token {
			l.takeHeld(token) // its lease dies with nothing attached
			return false, nil
		}
		// Only leases this Locker granted are ever pooled: a lease found on
		// another process's key stays that process's.
		le.expires = sent.Add(time.Duration(resp.TTL) * time.Second)
		l.mu.Lock()
		if _, still := l.held[token]; still {
			l.held[token] = le
		}
		l.mu.Unlock()
	}
	return true, nil
}

// rebind attaches the key that token holds to a new lease of ttl seconds.
func (l *Locker) rebind(ctx context.Context, k string, token, ttl int64) (bool, error) {
	sent := time.Now()
	g, err := l.client.Grant(ctx, ttl)
	if err != nil {
		return false, fmt.Errorf("etcd: refresh: %w", l.classify(err))
	}
	le := lease{key: k, keys: 1, id: g.ID, ttl: ttl, expires: sent.Add(time.Duration(g.TTL) * time.Second)}
	resp, err := l.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", token)).
		Then(clientv3.OpPut(k, "", clientv3.WithLease(g.ID), clientv3.WithIgnoreValue())).
		Commit()
	if err != nil || !resp.Succeeded {
		l.revoke(ctx, le)
		if err != nil {
			return false, fmt.Errorf("etcd: refresh: %w", l.classify(err))
		}
		l.takeHeld(token)
		return false, nil
	}
	l.mu.Lock()
	old, ours := l.held[token]
	switch {
	case ours && old.keys > 1:
		// One key of a multi-key lock moved: the others stay on the old
		// lease, which is not reused while they do; the new lease is not
		// pooled at all and expires with its key.
		old.keys--
		l.held[token] = old
		ours = false
	default:
		l.held[token] = le
	}
	l.mu.Unlock()
	if ours && old.key == k {
		l.putIdle(old) // nothing is attached to it any more
	}
	return true, nil
}

// Inspect implements [backend.Inspector]: a read of the key (its create
// revision is the token, its value the owner), then the time to live of
// its lease, in whole seconds as etcd reports it. Two requests: the lock
// can change between them (then TTL is 0).
func (l *Locker) Inspect(ctx context.Context, key string) (backend.LockInfo, error) {
	resp, err := l.client.Get(ctx, l.prefix+key)
	if err != nil {
		return backend.LockInfo{}, fmt.Errorf("etcd: inspect: %w", l.classify(err))
	}
	if len(resp.Kvs) == 0 {
		return backend.LockInfo{}, nil
	}
	kv := resp.Kvs[0]
	info := backend.LockInfo{Held: true, Token: kv.CreateRevision, Owner: string(kv.Value)}
	ttl, err := l.client.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
	if err != nil {
		return backend.LockInfo{}, fmt.Errorf("etcd: inspect: %w", l.classify(err))
	}
	if ttl.TTL > 0 {
		info.TTL = time.Duration(ttl.TTL) * time.Second
	}
	return info, nil
}

// ForceRelease implements [backend.ForceReleaser]: one delete of the key,
// whoever holds it. Waiters watching it wake; tokens (revisions) keep
// growing. The holder's lease is left to expire.
func (l *Locker) ForceRelease(ctx context.Context, key string) (bool, error) {
	resp, err := l.client.Delete(ctx, l.prefix+key)
	if err != nil {
		return false, fmt.Errorf("etcd: force release: %w", l.classify(err))
	}
	return resp.Deleted > 0, nil
}

// Watch implements [backend.Watcher]. It starts a watch at the current
// revision and waits until etcd has created it, then reads the key: a
// release before the read shows in the read, one after it in the watch.
// (A watch from a past revision would wait for etcd's 100ms catch-up.)
func (l *Locker) Watch(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	return l.watchKey(ctx, l.prefix+key, l.absent(l.prefix+key))
}

// absent returns a check that no etcd key is at k (with opts: in the
// range they make of it).
func (l *Locker) absent(k string, opts ...clientv3.OpOption) func(ctx context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		resp, err := l.client.Get(ctx, k, append([]clientv3.OpOption{clientv3.WithCountOnly()}, opts...)...)
		if err != nil {
			return false, err
		}
		return resp.Count == 0, nil
	}
}

// watchKey watches the deletes of the etcd key k, or with opts
// (clientv3.WithPrefix) of the keys it begins; once the watch is in
// effect, ready is sent to at once if free says the lock may be taken.
func (l *Locker) watchKey(ctx context.Context, k string, free func(ctx context.Context) (bool, error), opts ...clientv3.OpOption) (<-chan struct{}, func(), error) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	events := l.client.Watch(clientv3.WithRequireLeader(wctx), k,
		append([]clientv3.OpOption{clientv3.WithCreatedNotify(), clientv3.WithFilterPut()}, opts...)...)
	fail := func(err error) (<-chan struct{}, func(), error) {
		cancel()
		for range events { // let the watch's goroutines finish
		}
		return nil, nil, fmt.Errorf("etcd: watch: %w", err)
	}
	if err := watchCreated(ctx, events); err != nil {
		return fail(err)
	}
	isFree, err := free(ctx)
	if err != nil {
		return fail(err)
	}

	ready, notify := signal()
	if isFree {
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

// signal returns a watch's ready channel and the function that sends on
// it; values are coalesced, as backend.Watcher allows.
func signal() (<-chan struct{}, func()) {
	ready := make(chan struct{}, 1)
	return ready, func() {
		select {
		case ready <- struct{}{}:
		default:
		}
	}
}

// watchCreated waits for a watch's first response, which says that etcd
// has created it (clientv3.WithCreatedNotify): events from then on reach
// it.
func watchCreated(ctx context.Context, events clientv3.WatchChan) error {
	select {
	case resp, ok := <-events:
		if !ok {
			return errors.New("watch closed before it was created")
		}
		return resp.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ping implements [backend.Pinger] with one linearizable read, which needs
// a leader and a quorum: what a lock needs.
func (l *Locker) Ping(ctx context.Context) error {
	if err := l.connected(ctx); err != nil {
		return fmt.Errorf("etcd: ping: %w", err)
	}
	if _, err := l.client.Get(ctx, l.prefix, clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("etcd: ping: %w", l.classify(err))
	}
	return nil
}

// OwnerCmp returns a comparison that holds while token holds the lock on
// key. Put it in the transaction that writes the protected data, and the
// write happens only if the lock is still the caller's: fencing without a
// separate token check.
//
//	cmp := locker.OwnerCmp("order:1001", int64(xsync.ItemFromContext(ctx)))
//	resp, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut("order/1001/paid", "yes")).Commit()
//	// resp.Succeeded is false if the lock was lost
func (l *Locker) OwnerCmp(key string, token int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(l.prefix+key), "=", token)
}
