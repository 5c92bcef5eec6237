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
	_ backend.Locker      = (*Locker)(nil)
	_ backend.Mutexer     = (*Locker)(nil)
	_ backend.Semaphorer  = (*Locker)(nil)
	_ backend.RWLocker    = (*Locker)(nil)
	_ backend.MultiLocker = (*Locker)(nil)
	_ backend.Electioner  = (*Locker)(nil)
	_ backend.Lister      = (*Locker)(nil)
	_ backend.Pinger      = (*Locker)(nil)
)

// The spaces of the kinds of lock, after the prefix: a mutex's key is
// {prefix}m/{key}; a mutex's queue, a semaphore's permits and a
// read-write lock's entries are under {prefix}q/, s/ and r/, then the key
// in hex. No key of one kind can name another kind's state.
const (
	mutexSpace     = "m/"
	queueSpace     = "q/"
	semaphoreSpace = "s/"
	rwSpace        = "r/"
)

// mutexKey is the etcd key of key's mutex.
func (l *Locker) mutexKey(key string) string { return l.prefix + mutexSpace + key }

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

// Locker is the etcd backend. It never closes its client; [Locker.Close]
// frees what it keeps between locks. It is safe for concurrent use.
type Locker struct {
	client *clientv3.Client
	prefix string
	minTTL atomic.Int64 // seconds: the shortest lease the cluster grants, as far as known

	mu    sync.Mutex
	held  map[int64]lease   // by token: the leases of locks this Locker took
	idle  map[int64][]lease // by TTL in seconds: leases free for the next lock
	swept int               // len(held) after the last sweep
	marks map[string]mark   // by key: waiting writers' marks this Locker put

	electOnce sync.Once
	elect     *Locker // the election space; nil until used (written under mu)
	// marksSwept is len(marks) after the last sweep.
	marksSwept int

	queued sync.Map                // waiter → *waiter: this Locker's queued waiters
	id     string                  // names this Locker's queue entries (see takeSlot)
	slots  map[string]map[int]bool // by queue prefix: the entry slots this Locker's waiters use

	hints      map[string]time.Time // by mutex key or semaphore directory: when an attempt of this Locker was last refused there
	hintsSwept int                  // len(hints) after the last sweep

	keeper keeper // renews leases

	closed bool // Close was called: released leases are no longer kept (under mu)
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
		hints:  make(map[string]time.Time),
		id:     entryName()[:16],
		slots:  make(map[string]map[int]bool),
	}
	l.keeper.client = client
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
//
// The put goes on a lease of ttl. A lease this Locker used before (its
// lock was released) is renewed by a keep-alive sent alongside the
// transaction, not before it: the lease is alive when the transaction
// applies (it has at least 250ms left when taken from the pool), and the
// keep-alive, once answered, gives it the whole TTL from a moment after
// the attempt began. A lock is returned only if both succeeded; a
// transaction that put the key while the keep-alive failed is undone
// (the lease is revoked).
//
// With readFirst, the comparisons are first read on their own, in a
// read-only transaction (linearizable, and no Raft write, where the
// transaction with its put is one even when it is refused), and a lock
// they show held or queued ahead is refused there. A caller asks for it
// where a refusal is likely (see contended): then a refusal costs a read,
// and a grant a read more.
func (l *Locker) acquire(ctx context.Context, key string, ttl time.Duration, owner string, cmps []clientv3.Cmp, ops []clientv3.Op, readFirst bool) (int64, error) {
	if err := l.connected(ctx); err != nil {
		return 0, fmt.Errorf("etcd: lease: %w", err)
	}
	k := l.mutexKey(key)
	cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
	if readFirst {
		// The read of the key makes the transaction linearizable: etcd
		// serves a read-only transaction whose reads are all serializable,
		// as one with none is, from the member's own state, which may lag.
		resp, err := l.client.Txn(ctx).If(cmps...).Then(clientv3.OpGet(k, clientv3.WithCountOnly())).Commit()
		if err != nil {
			return 0, fmt.Errorf("etcd: acquire: %w", l.classify(err))
		}
		if !resp.Succeeded {
			return 0, nil
		}
	}
	for {
		le, renewed, err := l.leaseAlongside(ctx, seconds(ttl))
		if err != nil {
			// A lease granted without our knowing holds no key: it expires.
			return 0, fmt.Errorf("etcd: lease: %w", l.classify(err))
		}
		resp, err := l.client.Txn(ctx).
			If(cmps...).
			Then(append(ops, clientv3.OpPut(k, owner, clientv3.WithLease(le.id)))...).
			Commit()
		kerr := renewed(&le)
		if errors.Is(kerr, rpctypes.ErrLeaseNotFound) && (err == nil && !resp.Succeeded || errors.Is(err, rpctypes.ErrLeaseNotFound)) {
			continue // the pooled lease had expired, and nothing was put: the next one
		}
		if err != nil {
			// The put may have been applied, or may still be: revoking the
			// lease deletes the key if it was, and makes the put fail if it
			// comes later (its lease is gone).
			l.revoke(ctx, le)
			return 0, fmt.Errorf("etcd: acquire: %w", l.classify(err))
		}
		if kerr != nil {
			// Answered, but the lease's renewal was not: whatever the
			// transaction put may expire before the TTL, so it is undone.
			l.revoke(ctx, le)
			return 0, fmt.Errorf("etcd: acquire: lease keep-alive: %w", l.classify(kerr))
		}
		if !resp.Succeeded {
			l.putIdle(le)
			return 0, nil
		}
		token := resp.Header.Revision
		l.hold(token, k, 1, le)
		return token, nil
	}
}

// leaseAlongside returns a lease of ttl seconds for an acquire: one from
// the pool, whose keep-alive it has sent and whose answer renewed waits
// for (and records in the lease), or else a new one (renewed then returns
// nil at once).
func (l *Locker) leaseAlongside(ctx context.Context, ttl int64) (lease, func(*lease) error, error) {
	le, ok := l.takeIdle(ttl)
	if !ok {
		le, err := l.grant(ctx, ttl)
		return le, func(*lease) error { return nil }, err
	}
	type answer struct {
		expires time.Time
		err     error
	}
	done := make(chan answer, 1)
	go func() {
		sent := time.Now()
		ttl, err := l.keeper.keepAlive(ctx, le.id)
		if err != nil {
			done <- answer{err: err}
			return
		}
		done <- answer{expires: sent.Add(time.Duration(ttl) * time.Second)}
	}()
	return le, func(le *lease) error {
		a := <-done
		if a.err == nil {
			le.expires = a.expires
		}
		return a.err
	}, nil
}

// cleanupTimeout bounds the revocation of an acquire's lease when the
// acquire failed.
const cleanupTimeout = 250 * time.Millisecond

// closeTimeout bounds Close's revocations, all of them together (the
// election space's too).
const closeTimeout = 5 * time.Second

// Close is for a service shutting down. It revokes the leases the Locker
// keeps for its next locks (idle ones, which hold no key), so that they
// do not live on in etcd until their TTL, and closes its keep-alive
// stream. Locks held stay held until released or expired, as do the
// places of waiters still waiting. The Locker still works after Close,
// but a lease its locks release is then left to expire rather than kept.
// Close does not close the client. It waits at most 5s in all for the
// cluster: a lease it could not revoke by then (the cluster is
// unreachable) expires by its TTL. It returns the revocations' errors, but
// for leases already gone; calling it again does no harm.
func (l *Locker) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return l.close(ctx)
}

// close is Close within ctx, which the election space's Locker shares.
func (l *Locker) close(ctx context.Context) error {
	l.mu.Lock()
	l.closed = true
	var ids []clientv3.LeaseID
	for _, pool := range l.idle {
		for _, le := range pool {
			ids = append(ids, le.id)
		}
	}
	clear(l.idle)
	elect := l.elect
	l.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if _, err := l.client.Revoke(ctx, id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			errs = append(errs, fmt.Errorf("etcd: close: revoke lease %x: %w", int64(id), l.classify(err)))
		}
	}
	l.keeper.close()
	if elect != nil {
		errs = append(errs, elect.close(ctx))
	}
	return errors.Join(errs...)
}

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
		ttl, err := l.keeper.keepAlive(ctx, le.id)
		if err == nil {
			le.expires = sent.Add(time.Duration(ttl) * time.Second)
			return le, nil
		}
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return lease{}, err
		}
		// Expired meanwhile: try the next one, or grant.
	}
	return l.grant(ctx, ttl)
}

// grant grants a new lease of ttl seconds.
func (l *Locker) grant(ctx context.Context, ttl int64) (lease, error) {
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
	if l.closed {
		return // left to expire
	}
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

// hintLife is how long a refusal marks a key as contended.
const hintLife = 10 * time.Second

// contended says whether an attempt of this Locker on the mutex key k (or
// on the semaphore whose directory is k) was refused within hintLife, and
// not granted after a read since: the next attempt is likely refused too,
// so it reads first (see acquire and acquirePermit). A key
// contended in the steady state (a releaser that tries again while
// others wait) stays marked; one no longer contended costs one read more,
// once.
func (l *Locker) contended(k string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.hints[k]
	return ok && time.Since(at) < hintLife
}

// markContended records a refusal on k. The marks are swept now and then
// (amortized O(1)), so they follow the keys refused within hintLife.
func (l *Locker) markContended(k string) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hints[k] = now
	if len(l.hints) <= 2*l.hintsSwept+64 {
		return
	}
	for h, at := range l.hints {
		if now.Sub(at) >= hintLife {
			delete(l.hints, h)
		}
	}
	l.hintsSwept = len(l.hints)
}

// unmarkContended forgets k's mark: an attempt that read first was granted.
func (l *Locker) unmarkContended(k string) {
	l.mu.Lock()
	delete(l.hints, k)
	l.mu.Unlock()
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
	leaseTTL, err := l.keeper.keepAlive(ctx, le.id)
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		l.takeHeld(token)
		return false, nil
	case err != nil:
		return false, fmt.Errorf("etcd: refresh: %w", l.classify(err))
	}
	if want := seconds(ttl); leaseTTL < want || leaseTTL > want && leaseTTL > int64(MinTTL/time.Second) {
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
		le.expires = sent.Add(time.Duration(leaseTTL) * time.Second)
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

// Acquire implements [backend.Locker]: the mutex's attempt (see
// [Locker.Mutex]).
func (l *Locker) Acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	return l.acquireOwner(ctx, key, ttl, "")
}

// Release implements [backend.Locker]: one transaction that deletes the
// mutex's key if token (its create revision) still holds it.
func (l *Locker) Release(ctx context.Context, key string, token int64) (bool, error) {
	return l.releaseKey(ctx, "release", l.mutexKey(key), token)
}

// OwnerCmp returns a comparison that holds while token holds the lock on
// key. Put it in the transaction that writes the protected data, and the
// write happens only if the lock is still the caller's: fencing without a
// separate token check. (A transaction with comparisons and no write or
// linearizable read is served from one member's state, which may lag: it
// can say the lock is held after it was lost. Check it with a write, or
// with a Get in the transaction.)
//
//	cmp := locker.OwnerCmp("order:1001", int64(xsync.ItemFromContext(ctx)))
//	resp, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut("order/1001/paid", "yes")).Commit()
//	// resp.Succeeded is false if the lock was lost
func (l *Locker) OwnerCmp(key string, token int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(l.mutexKey(key)), "=", token)
}
