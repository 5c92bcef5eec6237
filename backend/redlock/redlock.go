package redlock

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis"
	rsgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	goredis "github.com/redis/go-redis/v9"

	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/pubsub"
)

var (
	_ backend.Locker     = (*Locker)(nil)
	_ backend.Mutexer    = (*Locker)(nil)
	_ backend.Electioner = (*Locker)(nil)
	_ backend.Validity   = (*Locker)(nil)
	_ backend.Pinger     = (*Locker)(nil)
)

// mutexSpace comes after the prefix and before a mutex's key, as in
// backend/redis: the space of the mutexes, the only kind here.
const mutexSpace = "m:"

// Defaults of the options.
const (
	DefaultPrefix        = "xsync:"
	DefaultNodeTimeout   = 50 * time.Millisecond
	DefaultQuorumTimeout = time.Second
	DefaultDriftFactor   = 0.01
)

// Option configures a Locker.
type Option func(*Locker)

// WithPrefix puts every key under prefix (default "xsync:").
func WithPrefix(prefix string) Option { return func(l *Locker) { l.prefix = prefix } }

// WithNodeTimeout sets how long, from the start of a call, nodes that have
// not answered are waited for once a majority has answered (default
// 50ms). It panics unless d > 0.
func WithNodeTimeout(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("redlock: WithNodeTimeout(%v): must be > 0", d))
	}
	return func(l *Locker) { l.nodeTimeout = d }
}

// WithQuorumTimeout sets how long a call waits for a majority of the
// nodes to answer before it fails with "quorum unreachable" (default 1s;
// never less than the node timeout). It panics unless d > 0.
func WithQuorumTimeout(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("redlock: WithQuorumTimeout(%v): must be > 0", d))
	}
	return func(l *Locker) { l.quorumTimeout = d }
}

// WithDriftFactor sets the clock-drift allowance as a fraction of the TTL
// (default 0.01); 2ms are added to it. It panics unless 0 <= f < 0.5.
func WithDriftFactor(f float64) Option {
	if !(f >= 0 && f < 0.5) {
		panic(fmt.Sprintf("redlock: WithDriftFactor(%v): must be in [0, 0.5)", f))
	}
	return func(l *Locker) { l.drift = f }
}

// Locker is the Redlock backend. It never closes its clients. It is safe
// for concurrent use.
type Locker struct {
	clients       []goredis.UniversalClient
	pools         []redis.Pool
	n, quorum     int
	prefix        string
	nodeTimeout   time.Duration
	quorumTimeout time.Duration
	drift         float64
	hubs          []*pubsub.Hub // one pub/sub connection per node, for Watch
	lines         *lines        // the waiters that wake one at a time, per key (see watch)

	electOnce *sync.Once
	elect     *Locker // the election space: this Locker under another prefix
}

// New returns a backend over the given independent Redis nodes (use an
// odd number: 3 or 5). It panics if there are no clients or one is nil: a
// programmer's error, as with database/sql's Register.
func New(clients []goredis.UniversalClient, opts ...Option) *Locker {
	if len(clients) == 0 {
		panic("redlock: New needs at least one client")
	}
	for i, c := range clients {
		if c == nil {
			panic(fmt.Sprintf("redlock: New: client %d is nil", i))
		}
	}
	l := &Locker{clients: clients, prefix: DefaultPrefix, nodeTimeout: DefaultNodeTimeout,
		quorumTimeout: DefaultQuorumTimeout, drift: DefaultDriftFactor, electOnce: &sync.Once{}}
	for _, o := range opts {
		o(l)
	}
	l.quorumTimeout = max(l.quorumTimeout, l.nodeTimeout)
	l.hubs = make([]*pubsub.Hub, len(clients))
	l.lines = &lines{}
	l.pools = make([]redis.Pool, len(clients))
	for i, c := range clients {
		l.pools[i] = rsgoredis.NewPool(c)
		l.hubs[i] = pubsub.New(c.Subscribe)
	}
	l.n, l.quorum = len(clients), len(clients)/2+1
	return l
}

// ACLRules returns the Redis ACL rules of a least-privileged lock user on
// each node, for the given prefix (DefaultPrefix if ""): its keys, and only
// the commands the backend sends, including those its scripts call. Use it
// as
//
//	ACL SETUSER locker on >PASSWORD resetkeys resetchannels <ACLRules(prefix)>
//
// With the default prefix:
//
//	~xsync:* &xsync:* -@all +set +get +del +pexpire +pttl +publish +subscribe +unsubscribe +eval +evalsha +ping
func ACLRules(prefix string) string {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return "~" + prefix + "* &" + prefix + "* -@all +set +get +del +pexpire +pttl +publish +subscribe +unsubscribe +eval +evalsha +ping"
}

// Validity implements [backend.Validity]: the TTL less the drift allowance.
func (l *Locker) Validity(ttl time.Duration) time.Duration {
	return ttl - time.Duration(float64(ttl)*l.drift) - 2*time.Millisecond
}

// The scripts each node runs, one atomic step per node.
var (
	// acquireScript sets the key if it is free; otherwise it says who
	// holds it. Returns 1, or the holder's value. (The first try on a node
	// is a plain SET NX PX; this is for tries after a time-out.)
	acquireScript = redis.NewScript(1, `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return redis.call('GET', KEYS[1])
`, "")
	// releaseScript deletes the key if it holds the value, and tells the
	// waiters (see Watch). Returns 1 if it did, 0 if not.
	releaseScript = redis.NewScript(1, `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', KEYS[1], 'released')
  return 1
end
return 0
`, "")
	// rollbackScript deletes the key if it holds the value, and tells
	// nobody: a failed acquire's clean-up frees no lock a waiter could
	// take (the key never had a majority for this value), and a message
	// would wake the failed contender itself, which would then try again
	// at once, fail again and wake itself again, for as long as the
	// holder lacks some node. Returns 1 if it deleted, 0 if not.
	rollbackScript = redis.NewScript(1, `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`, "")
	// extendScript sets a new TTL if the key holds the value. Returns 1
	// if it did, 0 if not.
	extendScript = redis.NewScript(1, `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`, "")
	// inspectScript reads the key's value and remaining TTL (ms).
	inspectScript = redis.NewScript(1, `
local v = redis.call('GET', KEYS[1])
if not v then
  return {'', 0}
end
return {v, redis.call('PTTL', KEYS[1])}
`, "")
	// forceScript deletes the key whatever it holds, and tells the
	// waiters. Returns 1 if it existed.
	forceScript = redis.NewScript(1, `
local n = redis.call('DEL', KEYS[1])
if n == 1 then
  redis.call('PUBLISH', KEYS[1], 'released')
end
return n
`, "")
)

func init() {
	for _, s := range []*redis.Script{acquireScript, releaseScript, rollbackScript, extendScript, inspectScript, forceScript} {
		s.Hash = sha1hex(s.Src)
	}
}

// vote is one node's answer in a round.
type vote struct {
	answered bool
	yes      bool   // granted, released or extended
	holder   string // acquire refused on a retry: the value that holds the key (a first try, SET NX, does not say)
	err      error  // the node failed or did not answer (a *redsync.RedisError)
}

var errNoAnswer = errors.New("no answer")

// round runs op on the given nodes in parallel and collects their votes.
//
// Each node's call ends at the node timeout after start. A call that times
// out while fewer than a majority of the nodes have answered is made again
// with twice the time (a cold connection's dial, a burst of them, can take
// longer than the node timeout), up to the quorum timeout after start.
// round returns when every node has answered or given up, or earlier when
// decided says the outcome is settled (the calls still running are then
// cancelled and waited for: each ends by its own deadline, and a late
// answer is recorded, since the clean-up needs to know).
func (l *Locker) round(ctx context.Context, start time.Time, nodes []int, votes []vote, decided func() bool,
	op func(ctx context.Context, node, try int) (vote, error)) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	last := start.Add(l.quorumTimeout)
	// Every node's first try shares one deadline (one timer per round).
	first, cancelFirst := context.WithDeadline(rctx, start.Add(l.nodeTimeout)) // never after last: quorumTimeout >= nodeTimeout
	defer cancelFirst()
	var more atomic.Bool // fewer than a majority answered: time-outs are retried
	answered := 0
	for i := range votes {
		if votes[i].answered {
			answered++
		}
	}
	more.Store(answered < l.quorum)
	type result struct {
		node int
		v    vote
	}
	ch := make(chan result, len(nodes))
	for _, i := range nodes {
		go func() {
			deadline := start.Add(l.nodeTimeout)
			for try := 0; ; try++ {
				var v vote
				var err error
				if try == 0 {
					v, err = op(first, i, 0)
				} else {
					if deadline.After(last) {
						deadline = last
					}
					actx, acancel := context.WithDeadline(rctx, deadline)
					v, err = op(actx, i, try)
					acancel()
				}
				if err == nil {
					v.answered = true
				} else if isTimeout(err) && more.Load() && rctx.Err() == nil && time.Now().Before(last) {
					deadline = time.Now().Add(2 * deadline.Sub(start))
					continue
				} else {
					v = vote{err: &redsync.RedisError{Node: i, Err: err}}
				}
				ch <- result{i, v}
				return
			}
		}()
	}
	for _, i := range nodes {
		if !votes[i].answered && votes[i].err == nil {
			votes[i].err = &redsync.RedisError{Node: i, Err: errNoAnswer}
		}
	}
	pending := len(nodes)
	for pending > 0 {
		r := <-ch
		pending--
		if r.v.answered || !votes[r.node].answered {
			votes[r.node] = r.v
		}
		if r.v.answered {
			answered++
			if answered >= l.quorum {
				more.Store(false)
			}
		}
		if decided != nil && decided() {
			break
		}
	}
	cancel()
	for ; pending > 0; pending-- {
		r := <-ch
		if r.v.answered {
			votes[r.node] = r.v
		}
	}
}

// isTimeout reports whether err is a call that ran out of time.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// tally counts votes: yes, no (answered, not yes), failed (no answer).
func tally(votes []vote) (yes, no, failed int) {
	for _, v := range votes {
		switch {
		case !v.answered:
			failed++
		case v.yes:
			yes++
		default:
			no++
		}
	}
	return yes, no, failed
}

func all(n int) []int {
	nodes := make([]int, n)
	for i := range nodes {
		nodes[i] = i
	}
	return nodes
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

// maxClaims bounds how often the winner of a split vote asks again for the
// nodes the others are releasing.
const maxClaims = 4

// acquire is one Redlock round over all nodes in parallel. If nobody reached a majority (a split vote), the contender that
// holds the lowest-numbered answering node claims the rest, and the others
// release theirs. A failed acquire releases what it took before it
// returns.
func (l *Locker) acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	token, err := newToken()
	if err != nil {
		return 0, fmt.Errorf("redlock: token: %w", err)
	}
	k, value, px := l.prefix+mutexSpace+key, strconv.FormatInt(token, 10), ttl.Milliseconds()
	start := time.Now()
	votes := make([]vote, l.n)
	op := func(ctx context.Context, i, try int) (vote, error) {
		if try == 0 {
			// The plain SET NX PX of Redlock: the cheapest command.
			conn, err := l.pools[i].Get(ctx)
			if err != nil {
				return vote{}, err
			}
			defer conn.Close()
			ok, err := conn.SetNX(k, value, ttl)
			return vote{yes: ok}, err
		}
		// A try after a time-out: the first may have landed, so ask who
		// holds the key.
		r, err := l.eval(ctx, i, acquireScript, k, value, px)
		if err != nil {
			return vote{}, err
		}
		if s, ok := r.(string); ok {
			// Our own value: an earlier try of this call that timed out
			// had landed.
			return vote{holder: s, yes: s == value}, nil
		}
		return vote{yes: r == int64(1)}, nil
	}
	l.round(ctx, start, all(l.n), votes, func() bool {
		yes, no, _ := tally(votes)
		return yes >= l.quorum || no > l.n-l.quorum
	}, op)
	yes, no, _ := tally(votes)
	if yes < l.quorum && yes+no >= l.quorum && ctx.Err() == nil && l.splitWinner(votes, value) {
		// Ask again for the nodes the other contenders are releasing.
		pause := min(max(time.Since(start), time.Millisecond), l.nodeTimeout)
		for range maxClaims {
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			if ctx.Err() != nil {
				break
			}
			var missing []int
			for i, v := range votes {
				if !v.yes {
					missing = append(missing, i)
				}
			}
			// A majority answered already: the nodes that do not answer
			// now get one node timeout, no more.
			l.round(ctx, time.Now(), missing, votes, func() bool {
				yes, _, _ := tally(votes)
				return yes >= l.quorum
			}, op)
			if yes, _, _ = tally(votes); yes >= l.quorum {
				break
			}
		}
	}
	if yes >= l.quorum {
		if time.Since(start) < l.Validity(ttl) {
			return token, nil
		}
		l.cleanUp(ctx, k, value, votes)
		return 0, fmt.Errorf("redlock: acquire took longer than the lock's validity (%v)", time.Since(start))
	}
	l.cleanUp(ctx, k, value, votes)
	_, no, failed := tally(votes)
	switch {
	case ctx.Err() != nil:
		return 0, fmt.Errorf("redlock: acquire: %w", ctx.Err())
	case yes+no >= l.quorum:
		return 0, nil // a majority answered: someone else holds it
	default:
		return 0, l.unreachable("acquire", failed, votes)
	}
}

// splitWinner reports whether a round that gave nobody a majority, and in
// which a majority of the nodes answered, should be resolved in favour of
// this contender: no other value holds a majority, and this contender
// holds the lowest-numbered node that answered. Every contender applies the same rule to what it saw, and at
// most one holds that node.
func (l *Locker) splitWinner(votes []vote, value string) bool {
	counts := make(map[string]int)
	lowest := -1
	for i, v := range votes {
		if !v.answered {
			continue
		}
		if lowest < 0 {
			lowest = i
		}
		if !v.yes {
			counts[v.holder]++
		}
	}
	for holder, c := range counts {
		if holder != "" && holder != value && c >= l.quorum {
			return false
		}
	}
	return lowest >= 0 && votes[lowest].yes
}

// cleanUp releases, within one node timeout, what a failed acquire took
// or may have taken (nodes that did not answer).
func (l *Locker) cleanUp(ctx context.Context, k, value string, votes []vote) {
	var nodes []int
	for i, v := range votes {
		if v.yes || !v.answered {
			nodes = append(nodes, i)
		}
	}
	if len(nodes) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.nodeTimeout)
	defer cancel()
	rv := make([]vote, l.n)
	l.round(cctx, time.Now(), nodes, rv, nil, func(ctx context.Context, i, _ int) (vote, error) {
		_, err := l.eval(ctx, i, rollbackScript, k, value)
		return vote{}, err
	})
}

func (l *Locker) unreachable(op string, failed int, votes []vote) error {
	var errs []error
	for _, v := range votes {
		if v.err != nil {
			errs = append(errs, v.err)
		}
	}
	return fmt.Errorf("redlock: %s: %w: quorum unreachable (%d of %d nodes answered, %d needed): %w",
		op, backend.ErrUnavailable, l.n-failed, l.n, l.quorum, errors.Join(errs...))
}

// release runs on all nodes in parallel. It returns
// (true, nil) if a majority released the token's key, (false, nil) if
// nodes enough to leave no majority answered that the token does not hold
// it, and an error when too few nodes answered to tell.
func (l *Locker) release(ctx context.Context, key string, token int64) (bool, error) {
	return l.each(ctx, "release", key, token, releaseScript)
}

// refresh sets the TTL anew on every node that still has the token, in
// parallel; the answers mean what
// Release's do.
func (l *Locker) refresh(ctx context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	start := time.Now()
	ok, err := l.each(ctx, "refresh", key, token, extendScript, ttl.Milliseconds())
	if ok && time.Since(start) >= l.Validity(ttl) {
		return false, fmt.Errorf("redlock: refresh took longer than the lock's validity (%v)", time.Since(start))
	}
	return ok, err
}

// each runs script on every node with the token's value (and args) and
// decides what the answers mean: see Release.
func (l *Locker) each(ctx context.Context, op, key string, token int64, script *redis.Script, args ...any) (bool, error) {
	k, value := l.prefix+mutexSpace+key, strconv.FormatInt(token, 10)
	votes := make([]vote, l.n)
	keysAndArgs := append([]any{k, value}, args...)
	l.round(ctx, time.Now(), all(l.n), votes, nil, func(ctx context.Context, i, _ int) (vote, error) {
		r, err := l.eval(ctx, i, script, keysAndArgs...)
		if err != nil {
			return vote{}, err
		}
		return vote{yes: r == int64(1)}, nil
	})
	yes, _, failed := tally(votes)
	switch {
	case yes >= l.quorum:
		return true, nil
	case yes+failed < l.quorum:
		return false, nil // no majority can still hold it
	case ctx.Err() != nil:
		return false, fmt.Errorf("redlock: %s: %w", op, ctx.Err())
	default:
		return false, fmt.Errorf("redlock: %s: cannot tell whether the lock is held: %w", op, l.unreachable(op, failed, votes))
	}
}

// inspect reads the key across the nodes: each node's
// value and remaining TTL are read in parallel (each atomically on its
// node, not all at one instant). The key is held if a majority of the
// nodes hold the same value; its TTL is how long that majority lasts (the
// majority-th longest of those nodes' TTLs). Redlock stores no owner
// metadata. With fewer than a majority answering, it cannot tell and
// returns an error.
func (l *Locker) inspect(ctx context.Context, key string) (backend.Info, error) {
	info, _, err := l.read(ctx, key)
	return info, err
}

// read is inspect, and also says how soon an attempt can win the key:
// free is 0 if no value holds a majority (a minority's keys are a failed
// attempt's, which it deletes at once), and otherwise how long until a
// majority of the nodes no longer hold the holder's value. That counts a
// node that did not answer as held (it may be slow, not free), so it can
// be later than the holder's TTL, never earlier; free < 0 if it cannot
// tell (too few of the holder's nodes have a TTL).
func (l *Locker) read(ctx context.Context, key string) (info backend.Info, free time.Duration, err error) {
	type seen struct {
		value string
		ttl   time.Duration
	}
	answers := make([]seen, l.n)
	votes := make([]vote, l.n)
	l.round(ctx, time.Now(), all(l.n), votes, nil, func(ctx context.Context, i, _ int) (vote, error) {
		r, err := l.eval(ctx, i, inspectScript, l.prefix+mutexSpace+key)
		if err != nil {
			return vote{}, err
		}
		a, _ := r.([]any)
		if len(a) == 2 {
			v, _ := a[0].(string)
			ms, _ := a[1].(int64)
			answers[i] = seen{value: v, ttl: time.Duration(ms) * time.Millisecond}
		}
		return vote{yes: true}, nil
	})
	answered, _, failed := tally(votes)
	if answered < l.quorum {
		return backend.Info{}, 0, fmt.Errorf("redlock: inspect: cannot tell: %w", l.unreachable("inspect", failed, votes))
	}
	byValue := map[string][]time.Duration{}
	for i, a := range answers {
		if votes[i].answered && a.value != "" && a.ttl >= 0 {
			byValue[a.value] = append(byValue[a.value], a.ttl)
		}
	}
	for v, ttls := range byValue {
		if len(ttls) < l.quorum {
			continue
		}
		token, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return backend.Info{}, 0, fmt.Errorf("redlock: inspect: value %q is not a token", v)
		}
		slices.Sort(ttls)
		// A PTTL of 0 is a key in its last millisecond: still held.
		free = -1
		if i := l.quorum - (answered - len(ttls)) - 1; i < len(ttls) {
			free = max(ttls[i], time.Millisecond)
		}
		if ttl := ttls[len(ttls)-l.quorum]; ttl > 0 {
			info.Holders = []backend.Holder{{Token: token, TTL: ttl}}
		}
		return info, free, nil
	}
	return backend.Info{}, 0, nil
}

// forceRelease deletes the key on every node, whatever it holds. It reports whether any node had it, and
// fails unless a majority of the nodes answered (a node that did not may
// keep its vote until its TTL; a minority cannot hold the lock). Every
// node that had the key tells its waiters, as a release does.
func (l *Locker) forceRelease(ctx context.Context, key string) (bool, error) {
	votes := make([]vote, l.n)
	l.round(ctx, time.Now(), all(l.n), votes, nil, func(ctx context.Context, i, _ int) (vote, error) {
		r, err := l.eval(ctx, i, forceScript, l.prefix+mutexSpace+key)
		if err != nil {
			return vote{}, err
		}
		return vote{yes: r == int64(1)}, nil
	})
	yes, no, failed := tally(votes)
	if yes+no < l.quorum {
		return false, fmt.Errorf("redlock: force release: %w", l.unreachable("force release", failed, votes))
	}
	return yes > 0, nil
}

// Ping implements [backend.Pinger]: every node is pinged in parallel, and
// a quorum must answer.
func (l *Locker) Ping(ctx context.Context) error {
	votes := make([]vote, l.n)
	l.round(ctx, time.Now(), all(l.n), votes, nil, func(ctx context.Context, i, _ int) (vote, error) {
		return vote{yes: true}, l.clients[i].Ping(ctx).Err()
	})
	if yes, _, failed := tally(votes); yes < l.quorum {
		if ctx.Err() != nil {
			return fmt.Errorf("redlock: ping: %w", ctx.Err())
		}
		return l.unreachable("ping", failed, votes)
	}
	return nil
}

// eval runs script on node i.
func (l *Locker) eval(ctx context.Context, i int, script *redis.Script, keysAndArgs ...any) (any, error) {
	conn, err := l.pools[i].Get(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.Eval(script, keysAndArgs...)
}

func sha1hex(src string) string {
	h := sha1.Sum([]byte(src))
	return hex.EncodeToString(h[:])
}
