// Package redlock is an xsync lock backend over N independent Redis nodes
// (no replication between them), using the Redlock algorithm as
// implemented by github.com/go-redsync/redsync/v4: a lock is held when a
// majority of the nodes granted it within its validity.
//
//	var clients []goredis.UniversalClient
//	for _, addr := range []string{"r1:6379", "r2:6379", "r3:6379", "r4:6379", "r5:6379"} {
//		clients = append(clients, goredis.NewClient(&goredis.Options{Addr: addr, ContextTimeoutEnabled: true}))
//	}
//	xsync.Register("default", redlock.New(clients))
//
// # What is guaranteed
//
// Under Redlock's timing assumptions (below), while a majority of the nodes
// is up and keeps its data:
//
//   - Mutual exclusion: two holders would each need a majority of the
//     nodes, and any two majorities share a node, which grants a key to one
//     holder at a time (SET NX PX).
//   - Owner-only release and extend: each node checks the holder's value (a
//     random 63-bit token) in a script.
//   - Availability: locking goes on with up to (N-1)/2 nodes down, slow or
//     partitioned away; each node is given at most the node timeout (50ms
//     by default) per call, so frozen nodes do not stall a call.
//   - Validity: the lock is trusted for its TTL minus the time the
//     acquisition took minus an allowance for clock drift (1% of the TTL
//     plus 2ms). The callback of xsync's Run is cancelled at that moment.
//
// Contention and failure are told apart: if a majority of the nodes
// answered and the lock was not obtained, someone else holds it ((0, nil),
// so xsync.ErrMissingLock from Run); if fewer than a majority answered, the
// error says the quorum was unreachable (and is not ErrMissingLock).
//
// # What is not guaranteed
//
//   - Tokens are not fencing tokens. They are unique per acquisition but
//     random, not ordered: Redlock has no single place that could order
//     acquisitions (a counter on each node is only as ordered as the
//     majorities that see it, and a node that lost its data resets it).
//     Martin Kleppmann's critique ("How to do distributed locking") and
//     antirez's reply are the debate; both agree that a lock without a
//     fencing token cannot protect a resource against a holder that stalls
//     past its validity. Where that matters, use etcd (backend/etcd), or
//     design the writes to be idempotent or checked.
//   - Timing assumptions: process pauses, network delays and clock drift
//     must stay small against the TTL. A node whose clock jumps forward
//     expires keys early.
//   - A node that restarts without persistence forgets the locks it
//     granted; with the one that held the deciding vote gone, a second
//     holder can get a majority while the first still holds the lock.
//     Mitigation: keep a restarted node out for at least the longest TTL
//     in use (or run it with fsync'd persistence).
//   - Release notification: none; waiters wait their retry interval.
//
// Simultaneous contenders can split the vote so that none of them gets a
// majority; retry with xsync's Async.SetRetry, whose waits are randomised.
//
// The clients should honour contexts (go-redis ContextTimeoutEnabled:
// true); otherwise a frozen node holds each call for the client's read
// timeout (3s by default) instead of the node timeout. Dialling counts
// against the node timeout: a burst of calls on cold connection pools may
// need WithNodeTimeout of a few hundred milliseconds.
package redlock

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis"
	rsgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	goredis "github.com/redis/go-redis/v9"

	"github.com/xsync-go/xsync/backend"
)

var (
	_ backend.Locker    = (*Locker)(nil)
	_ backend.Refresher = (*Locker)(nil)
	_ backend.Validity  = (*Locker)(nil)
	_ backend.Pinger    = (*Locker)(nil)
)

// Defaults of the options.
const (
	DefaultPrefix      = "xsync:"
	DefaultNodeTimeout = 50 * time.Millisecond
	DefaultDriftFactor = 0.01
)

// ErrNoNodes is returned by every call of a Locker built without clients.
var ErrNoNodes = errors.New("redlock: no nodes")

// Option configures a Locker.
type Option func(*Locker)

// WithPrefix puts every key under prefix (default "xsync:").
func WithPrefix(prefix string) Option { return func(l *Locker) { l.prefix = prefix } }

// WithNodeTimeout bounds each node's part of a call (default 50ms). Values
// <= 0 keep the default.
func WithNodeTimeout(d time.Duration) Option {
	return func(l *Locker) {
		if d > 0 {
			l.nodeTimeout = d
		}
	}
}

// WithDriftFactor sets the clock-drift allowance as a fraction of the TTL
// (default 0.01); 2ms are added to it. Values outside [0, 0.5) keep the
// default.
func WithDriftFactor(f float64) Option {
	return func(l *Locker) {
		if f >= 0 && f < 0.5 {
			l.drift = f
		}
	}
}

// Locker is the Redlock backend. It never closes its clients. It is safe
// for concurrent use.
type Locker struct {
	clients     []goredis.UniversalClient
	rs          *redsync.Redsync
	n, quorum   int
	prefix      string
	nodeTimeout time.Duration
	drift       float64
}

// New returns a backend over the given independent Redis nodes (use an
// odd number: 3 or 5). With no clients, every call fails with ErrNoNodes.
func New(clients []goredis.UniversalClient, opts ...Option) *Locker {
	l := &Locker{clients: clients, prefix: DefaultPrefix, nodeTimeout: DefaultNodeTimeout, drift: DefaultDriftFactor}
	for _, o := range opts {
		o(l)
	}
	pools := make([]redis.Pool, len(clients))
	for i, c := range clients {
		pools[i] = rsgoredis.NewPool(c)
	}
	l.rs = redsync.New(pools...)
	l.n, l.quorum = len(pools), len(pools)/2+1
	return l
}

// Validity implements [backend.Validity]: the TTL less the drift allowance.
func (l *Locker) Validity(ttl time.Duration) time.Duration {
	return ttl - time.Duration(float64(ttl)*l.drift) - 2*time.Millisecond
}

func (l *Locker) mutex(key string, ttl time.Duration, opts ...redsync.Option) *redsync.Mutex {
	opts = append(opts,
		redsync.WithExpiry(ttl),
		redsync.WithTries(1), // the core owns retries
		redsync.WithDriftFactor(l.drift),
		redsync.WithTimeoutFactor(float64(l.nodeTimeout)/float64(ttl)),
	)
	return l.rs.NewMutex(l.prefix+key, opts...)
}

// newToken returns a random token in [1, 2^63).
func newToken() (int64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
		if t := int64(binary.BigEndian.Uint64(b[:]) >> 1); t > 0 {
			return t, nil
		}
	}
}

// Acquire implements [backend.Locker]: one Redlock round over all nodes in
// parallel; on failure, redsync releases the nodes it did get.
func (l *Locker) Acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	if l.n == 0 {
		return 0, ErrNoNodes
	}
	token, err := newToken()
	if err != nil {
		return 0, fmt.Errorf("redlock: token: %w", err)
	}
	m := l.mutex(key, ttl, redsync.WithGenValueFunc(func() (string, error) {
		return strconv.FormatInt(token, 10), nil
	}))
	err = m.LockContext(ctx)
	if err == nil {
		return token, nil
	}
	var taken *redsync.ErrTaken
	if errors.As(err, &taken) {
		return 0, nil
	}
	failed, held := count(err)
	switch {
	case failed == 0 && held == 0:
		// A majority granted it, but too late to leave any validity.
		return 0, fmt.Errorf("redlock: acquire took longer than the lock's validity: %w", err)
	case l.n-failed >= l.quorum:
		return 0, nil // a majority answered: someone else holds it
	default:
		return 0, l.unreachable("acquire", failed, err)
	}
}

func (l *Locker) unreachable(op string, failed int, err error) error {
	return fmt.Errorf("redlock: %s: quorum unreachable (%d of %d nodes answered, %d needed): %w",
		op, l.n-failed, l.n, l.quorum, err)
}

// count walks redsync's joined errors: failed nodes (RedisError) and nodes
// that refused because of another holder's value (ErrNodeTaken).
func count(err error) (failed, held int) {
	switch e := err.(type) {
	case *redsync.RedisError:
		return 1, 0
	case *redsync.ErrNodeTaken:
		return 0, 1
	case interface{ Unwrap() []error }:
		for _, e := range e.Unwrap() {
			f, h := count(e)
			failed, held = failed+f, held+h
		}
	}
	return failed, held
}

// Release implements [backend.Locker] on all nodes in parallel, each
// bounded by the node timeout.
func (l *Locker) Release(ctx context.Context, key string, token int64) (bool, error) {
	if l.n == 0 {
		return false, ErrNoNodes
	}
	ctx, cancel := context.WithTimeout(ctx, l.nodeTimeout)
	defer cancel()
	m := l.mutex(key, time.Second, redsync.WithValue(strconv.FormatInt(token, 10)))
	ok, err := m.UnlockContext(ctx)
	if ok {
		return true, nil
	}
	return false, l.notHeld("release", err)
}

// notHeld decides what a failed release or extend means: if the nodes that
// answered leave no majority that could still hold the lock, the token no
// longer holds it (false, nil); otherwise it cannot tell (an error).
func (l *Locker) notHeld(op string, err error) error {
	if err == nil {
		return nil
	}
	failed, _ := count(err)
	if l.n-failed >= l.quorum {
		return nil
	}
	return l.unreachable(op, failed, err)
}

// Refresh implements [backend.Refresher]: the TTL is set anew on every node
// that still has the token, in parallel, each bounded by the node timeout.
func (l *Locker) Refresh(ctx context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	if l.n == 0 {
		return false, ErrNoNodes
	}
	ctx, cancel := context.WithTimeout(ctx, l.nodeTimeout)
	defer cancel()
	m := l.mutex(key, ttl, redsync.WithValue(strconv.FormatInt(token, 10)))
	ok, err := m.ExtendContext(ctx)
	if ok {
		return true, nil
	}
	if errors.Is(err, redsync.ErrExtendFailed) {
		return false, fmt.Errorf("redlock: refresh took longer than the lock's validity: %w", err)
	}
	return false, l.notHeld("refresh", err)
}

// Ping implements [backend.Pinger]: every node is pinged in parallel, each
// bounded by the node timeout, and a quorum must answer.
func (l *Locker) Ping(ctx context.Context) error {
	if l.n == 0 {
		return ErrNoNodes
	}
	ctx, cancel := context.WithTimeout(ctx, l.nodeTimeout)
	defer cancel()
	errs := make([]error, l.n)
	var wg sync.WaitGroup
	for i, c := range l.clients {
		wg.Go(func() {
			if err := c.Ping(ctx).Err(); err != nil {
				errs[i] = &redsync.RedisError{Node: i, Err: err}
			}
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	if failed, _ := count(err); l.n-failed < l.quorum {
		return l.unreachable("ping", failed, err)
	}
	return nil
}
