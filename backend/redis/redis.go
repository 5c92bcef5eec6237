// Package redis is an xsync lock backend on one Redis deployment: a single
// server, a Sentinel-managed primary, or a Redis Cluster, through any
// go-redis v9 client.
//
//	client := goredis.NewClient(&goredis.Options{
//		Addr:                  "localhost:6379",
//		ContextTimeoutEnabled: true, // calls end with their context, not the 3s read timeout
//	})
//	xsync.Register("default", redis.New(client))
//
// Build the client with ContextTimeoutEnabled: without it, go-redis ends a
// call to a frozen server by its read timeout (3s by default), not by the
// caller's context: Lock and Run then return late, and the clean-up of an
// acquire cut short waits as long. (The callback's context of Run ends on
// time either way: the core keeps that deadline.)
//
// # What is guaranteed
//
// While the Redis primary that holds a key stays up and keeps its data:
//
//   - Mutual exclusion: acquire, release and refresh are Lua scripts, each
//     one atomic step on the server, one round trip each.
//   - Owner-only release and refresh: the script compares the token.
//   - Expiry with millisecond precision, measured on the server's clock
//     (TIME): a lock not released is free once its TTL has passed there.
//   - Fencing tokens: a new token is max(last token + 1, server time in
//     microseconds). Tokens grow strictly for a key while its counter
//     lives (the TTL plus [WithFenceIdle], one minute by default), and keep
//     growing after the counter expired or the server restarted without
//     persistence, as long as the server's clock has not gone back by more
//     than the time since the last token was issued.
//   - Bounded state: one hash per key ({prefix}{key}), and it expires with
//     its lock plus the fence idle time, or, while waiters are queued, when
//     the last of them is no longer alive, if that is later. Nothing else
//     is written.
//   - Operators: [Locker.Inspect] reads a key's token, time left (on the
//     server's clock) and owner metadata (stored in the lock's hash by
//     [Locker.AcquireOwner], at no extra cost) in one script;
//     [Locker.ForceRelease] frees a key whoever holds it, keeps the fencing
//     counter and publishes the release, so waiters try at once.
//   - Waiters queue (FIFO): a caller that finds the key held joins the
//     key's queue (a field of its hash) and listens on a channel named
//     like the key. A release publishes the name of the first live waiter,
//     and only that one wakes and tries; a free key goes to the first live
//     waiter, not to whoever asks first. A handoff thus costs the
//     releaser's round trip, one message and the waiter's round trip,
//     whatever the number of waiters. Waiters also wake when the holder's
//     TTL runs out (every waiter tries then, the first one wins).
//   - A waiter that dies while queued (its process killed, its link cut)
//     holds the key back for its keep time at most: a waiter stays alive in
//     the queue for max(3 × its retry interval, 1s) after each attempt
//     (xsync attempts at least once per retry interval while it waits), and
//     one not alive is dropped when the queue is next read. A waiter that
//     gives up leaves the queue at once (one more script, up to 250ms);
//     if that fails, the same keep time bounds the delay. The conformance
//     rules QueueFIFO, QueueGiveUp and QueueDeadWaiter check all three.
//
// # What is not guaranteed
//
//   - One Redis is not highly available. If the server is down, every call
//     fails (with the client's error, not [xsync.ErrMissingLock]) until it
//     is back.
//   - A restart without persistence forgets held locks: a second holder can
//     get a key whose first holder still runs (its Refresh and Unlock then
//     return false, and auto-extension cancels its callback's context).
//     Tokens still grow (see above), so a fenced resource rejects the old
//     holder.
//   - A failover to a replica (Sentinel, Cluster) can lose the last writes,
//     replication being asynchronous: a grant, extension or release that
//     had not reached the replica when the primary died. A lost grant or
//     extension lets a second caller take a key whose holder still runs,
//     for up to the rest of that holder's TTL; tokens keep growing if the
//     promoted replica's clock is not behind the old primary's by more
//     than the time since the last token (the lost counter is replaced by
//     the clock). See "Redis Cluster and Sentinel" below for what was
//     measured. For locks that must survive the loss of a node, use
//     Redlock (backend/redlock) or etcd (backend/etcd).
//   - A release notification lost while the subscription reconnects delays
//     a waiter until its retry interval, never longer. A key's pub/sub
//     connection stays open 10s after its last waiter left ([IdleGoroutines]),
//     so that waiting again does not connect again.
//   - Eviction: with maxmemory set, every maxmemory-policy but noeviction
//     (allkeys-* and volatile-* alike: lock keys always carry a TTL) lets
//     Redis delete a held lock to free memory, and a second caller then
//     gets it. Run Redis for locks with maxmemory-policy noeviction (or no
//     maxmemory); [Locker.Ping] reports an unsafe policy as
//     [ErrEvictionPolicy].
//   - An acquire whose caller gave up (its context ended) or whose
//     connection broke may still have taken the lock. Acquire then waits up
//     to 250ms more for the reply and releases what it took, or, without a
//     reply, sends a clean-up script (250ms more at most) that releases
//     what that attempt took or marks it void if it has not arrived yet;
//     Acquire returns after that, so it can return up to 0.5s after ctx
//     ended. The lock stays orphaned, until its TTL, only if neither the
//     reply nor the clean-up gets through in that time (a server frozen
//     for longer, a link that stays cut).
//
// # Under faults, as histories show
//
// TestHistory records concurrent histories with conformance.RunHistory
// under each fault below and checks them; docs/safety.md has the figures
// of a soak. Under every one: tokens grow in grant order, a fenced
// resource accepts no stale write, no release or refresh succeeds for a
// token that lost the key, and a callback that outlives its lock has its
// context ended at the validity deadline.
//
//   - Server paused longer than the TTL, network cut, a client's link
//     frozen: mutual exclusion holds. Acquisitions queued on a frozen
//     server run when it wakes, after their callers gave up, and their
//     clean-up cannot reach it first; such a key stays held, by nobody,
//     for up to its TTL after the heal (counted as orphans).
//   - Server killed and restarted without persistence: it forgets held
//     locks, and a second holder gets a key inside the first one's
//     validity (the history must show it, or the test fails). Fencing
//     rejects the first holder's later writes.
//
// # Redis Cluster and Sentinel
//
// Tested on real deployments in containers (Redis 7.0): a Cluster of 3
// primaries with a replica each (cluster-node-timeout 1s) through a
// ClusterClient, and a primary, a replica and 3 sentinels (quorum 2,
// down-after-milliseconds 1000) through a FailoverClient. Both pass the
// conformance suite, with keys over many slots, braces and hash tags
// included. In a Cluster each lock is one key, so it lives in its key's
// slot, and the fencing counter lives in the same hash and moves with it.
//
// Release notifications use classic PUBLISH and SUBSCRIBE, not sharded
// pub/sub: classic pub/sub works from Redis 5 on and on every deployment
// through one code path, and a Cluster broadcasts each message over its
// bus, so a waiter's subscription on any node hears it, and keeps hearing
// it while the key's slot moves. The cost is that each release in a
// Cluster reaches every node.
//
// Measured (TestClusterFailover, TestSentinelFailover, TestHistoryFailover;
// 2 cores):
//
//   - Primary killed and left dead: locks on its slots were served again
//     after 3.5 to 3.9s on the Cluster and after about 4.0s on Sentinel
//     (three runs each). Meanwhile callers got errors: on Sentinel
//     [backend.ErrUnavailable] (connection refused); on the Cluster their
//     context's deadline (go-redis retries the dial within the call). A
//     go-redis ClusterClient finds the promoted replica by itself only on
//     a MOVED reply or every ClusterStateReloadInterval (a minute by
//     default), and a dead primary sends no MOVED: without help it was not
//     served again within 60s. So this backend asks a ClusterClient to
//     reload its slot map (ReloadState, in the background, coalesced by
//     the client) whenever a call fails without a reply.
//   - The held lock survived the kill in these runs (it had reached the
//     replica); in an earlier run on Sentinel it did not, and a second
//     holder got the key with a larger token. Histories with the primary
//     killed mid-history (Cluster and Sentinel) allow overlaps and count
//     them; in every run tokens grew in grant order and the fenced
//     resource accepted no stale write.
//   - Slot migration while locks are taken (the slot of the contended
//     keys moved from primary to primary three times in 10s, each time
//     half-migrated for 1.5s, with 300 to 430 ASK redirections): no
//     overlap, no orphan, no error; the history is checked with no
//     allowance at all. MIGRATE moves a key with its TTL atomically.
//
// Needs Redis 5 or later (scripts that call TIME and then write).
//
// # Semaphores, read-write locks, multi-key locks
//
// Each call is one script, one round trip; waiters hear of releases on
// pub/sub as a mutex's do (no queue: the first to try wins).
//
//   - A semaphore of key is the sorted set prefix+key+"\x00sem": permit
//     tokens (random, drawn by the client) scored by their expiry on the
//     server's clock. An attempt drops the expired ones and counts the
//     rest, so it costs O(permits held). An attempt whose reply never came
//     is cleaned up as a mutex's is (its permit given back, or its token
//     marked void).
//   - A read-write lock of key is the sorted set prefix+key+"\x00rw":
//     readers and the writer scored by expiry, the marks of writers that
//     wait (each writer's own, removed when it gets the lock or gives up,
//     alive its keep time after each refused attempt), and the fencing
//     counter; tokens are max(counter+1, server time in µs), as
//     a mutex's. Attempts, releases and refreshes scan the holders:
//     O(holders). A holder's name carries its attempt's nonce, so an
//     attempt whose reply never came is cleaned up as a mutex's is.
//   - A multi-key lock takes the mutexes' own hashes in one script, with
//     one token for all (larger than each key's earlier tokens). In a
//     Cluster the keys must share a hash slot (a hash tag); otherwise the
//     error matches [ErrCrossSlot] and nothing is taken.
//
// A hash tag in key keeps a semaphore's and a read-write lock's set in
// key's slot. They are sorted sets, so a mutex key that ends in
// "\x00sem" or "\x00rw" and collides with one fails with WRONGTYPE rather
// than share its state.
//
// # URLs
//
// Importing this package registers these URL schemes with xsync.Open:
//
//	redis://[[user]:password@]host[:port][/db][?options]
//	rediss://[[user]:password@]host[:port][/db][?ca_file=ca.pem&cert_file=client.pem&key_file=client-key.pem]
//	redis+cluster://[[user]:password@]host1:port,host2:port[?options]
//	redis+sentinel://[[user]:password@]sentinel1:port,sentinel2:port/primary[/db][?options]
//
// and rediss+cluster and rediss+sentinel, the same with TLS. A cluster
// URL lists some of its nodes (the client finds the others); a sentinel
// URL lists sentinels and names the primary they watch (their "sentinel
// monitor" name) as its path. The user and password are the Redis
// servers' (the primary's and replicas'); sentinels that require a
// password get sentinel_username and sentinel_password options.
//
// The options are go-redis's (dial_timeout, read_timeout, write_timeout,
// pool_size, client_name, max_retries, ...; see goredis.ParseURL,
// goredis.ParseClusterURL and goredis.ParseFailoverURL) plus, with TLS,
// the PEM files: ca_file (the CAs to trust instead of the system's),
// cert_file and key_file (a client certificate, for servers that require
// one), and this package's prefix (see [WithPrefix]) and fence_idle, a
// duration (see [WithFenceIdle]). skip_verify=true turns certificate
// verification off: it is unsafe (anyone on the path can pose as the
// server) and only for tests. The client Open builds honours contexts
// (ContextTimeoutEnabled) and is closed by the Closer Open returns.
//
// # Security
//
// TLS, mutual TLS, passwords (requirepass) and ACL users are tested on
// real servers. A lock user needs no more than [ACLRules] grants: its keys
// and channels under the prefix, and the commands the backend sends:
//
//	ACL SETUSER locker on >PASSWORD resetkeys resetchannels ~xsync:* &xsync:* -@all +eval +evalsha +subscribe +unsubscribe +ping +time +hmget +hgetall +hset +hdel +del +pexpire +pttl +publish
//
// Errors never show a password: wrong credentials are the server's
// WRONGPASS or NOAUTH, and URLs in errors are redacted.
package redis

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

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
	_ backend.Semaphorer    = (*Locker)(nil)
	_ backend.RWLocker      = (*Locker)(nil)
	_ backend.MultiLocker   = (*Locker)(nil)
)

var (
	// common.lua's functions come before the scripts that use them.
	//go:embed common.lua
	commonLua string
	//go:embed acquire.lua
	acquireLua    string
	acquireScript = goredis.NewScript(commonLua + acquireLua)
	//go:embed release.lua
	releaseLua    string
	releaseScript = goredis.NewScript(commonLua + releaseLua)
	//go:embed queue.lua
	queueLua    string
	queueScript = goredis.NewScript(commonLua + queueLua)
	//go:embed dequeue.lua
	dequeueLua    string
	dequeueScript = goredis.NewScript(commonLua + dequeueLua)
	//go:embed refresh.lua
	refreshLua    string
	refreshScript = goredis.NewScript(refreshLua)
	//go:embed held.lua
	heldLua    string
	heldScript = goredis.NewScript(heldLua)
	//go:embed inspect.lua
	inspectLua    string
	inspectScript = goredis.NewScript(inspectLua)
	//go:embed force.lua
	forceLua    string
	forceScript = goredis.NewScript(commonLua + forceLua)
	//go:embed abandon.lua
	abandonLua    string
	abandonScript = goredis.NewScript(commonLua + abandonLua)

	// The other lock types (types.go).
	//go:embed zset.lua
	zsetLua string
	//go:embed sem_acquire.lua
	semAcquireLua    string
	semAcquireScript = goredis.NewScript(zsetLua + semAcquireLua)
	//go:embed sem_abandon.lua
	semAbandonLua    string
	semAbandonScript = goredis.NewScript(zsetLua + semAbandonLua)
	//go:embed rw_acquire.lua
	rwAcquireLua    string
	rwAcquireScript = goredis.NewScript(zsetLua + rwAcquireLua)
	//go:embed rw_abandon.lua
	rwAbandonLua    string
	rwAbandonScript = goredis.NewScript(zsetLua + rwAbandonLua)
	//go:embed rw_held.lua
	rwHeldLua    string
	rwHeldScript = goredis.NewScript(zsetLua + rwHeldLua)
	//go:embed rw_withdraw.lua
	rwWithdrawLua    string
	rwWithdrawScript = goredis.NewScript(rwWithdrawLua)
	//go:embed sem_release.lua
	semReleaseLua    string
	semReleaseScript = goredis.NewScript(zsetLua + semReleaseLua)
	//go:embed sem_refresh.lua
	semRefreshLua    string
	semRefreshScript = goredis.NewScript(zsetLua + semRefreshLua)
	//go:embed rw_release.lua
	rwReleaseLua    string
	rwReleaseScript = goredis.NewScript(zsetLua + rwReleaseLua)
	//go:embed rw_refresh.lua
	rwRefreshLua    string
	rwRefreshScript = goredis.NewScript(zsetLua + rwRefreshLua)
	//go:embed zset_held.lua
	zsetHeldLua    string
	zsetHeldScript = goredis.NewScript(zsetLua + zsetHeldLua)
	//go:embed multi_acquire.lua
	multiAcquireLua    string
	multiAcquireScript = goredis.NewScript(commonLua + multiAcquireLua)
	//go:embed multi_release.lua
	multiReleaseLua    string
	multiReleaseScript = goredis.NewScript(commonLua + multiReleaseLua)
	//go:embed multi_refresh.lua
	multiRefreshLua    string
	multiRefreshScript = goredis.NewScript(multiRefreshLua)
)

// cleanupTimeout bounds each step of the clean-up of an acquire whose
// caller gave up: waiting for its late reply, and the clean-up script.
const cleanupTimeout = 250 * time.Millisecond

// ACLRules returns the Redis ACL rules of a least-privileged lock user for
// the backend with the given prefix (DefaultPrefix if ""): its keys and
// release channels under the prefix, and only the commands the backend
// sends, including those its scripts call. Use it as
//
//	ACL SETUSER locker on >PASSWORD resetkeys resetchannels <ACLRules(prefix)>
//
// With the default prefix the rules are:
//
//	~xsync:* &xsync:* -@all +eval +evalsha +subscribe +unsubscribe +ping +time +hmget +hgetall +hset +hdel +del +pexpire +pttl +publish +zadd +zrem +zscore +zcount +zrange +zrangebyscore +zremrangebyscore
//
// (The sorted-set commands are for semaphores and read-write locks.)
//
// Add +info to let [Locker.Ping] check the eviction policy; without it,
// Ping falls back to PING and cannot. On Redis 7.2 or later, go-redis also
// sends CLIENT SETINFO when it connects and ignores a refusal; add
// +client|setinfo to let it through. (Tested on Redis 7.0.)
func ACLRules(prefix string) string {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return "~" + prefix + "* &" + prefix + "* -@all +eval +evalsha +subscribe +unsubscribe +ping " +
		"+time +hmget +hgetall +hset +hdel +del +pexpire +pttl +publish " +
		"+zadd +zrem +zscore +zcount +zrange +zrangebyscore +zremrangebyscore"
}

// ErrEvictionPolicy is what [Locker.Ping] reports when the server may evict
// lock keys to free memory: maxmemory is set and maxmemory-policy is not
// noeviction. An evicted lock is free to the next caller while its holder
// still runs.
var ErrEvictionPolicy = errors.New("redis: the server may evict held locks (maxmemory is set and maxmemory-policy is not noeviction)")

// Client is what the backend needs of a go-redis v9 client: scripts,
// pub/sub, PING and INFO. *goredis.Client (including one from NewFailoverClient),
// *goredis.ClusterClient, *goredis.Ring and goredis.UniversalClient all
// satisfy it.
type Client interface {
	goredis.Scripter
	Subscribe(ctx context.Context, channels ...string) *goredis.PubSub
	Ping(ctx context.Context) *goredis.StatusCmd
	Info(ctx context.Context, section ...string) *goredis.StringCmd
}

// Defaults of the options.
const (
	DefaultPrefix    = "xsync:"
	DefaultFenceIdle = time.Minute
)

// Option configures a Locker.
type Option func(*Locker)

// WithPrefix puts every key under prefix (default "xsync:"). Lockers that
// share a Redis and a prefix share their locks.
func WithPrefix(prefix string) Option {
	return func(l *Locker) { l.prefix = prefix }
}

// WithFenceIdle sets how long a key's fencing counter outlives its lock
// (default one minute). It panics if d < 0. Within that time,
// tokens for the key grow even if the server clock steps back; after it,
// the key is gone from Redis and tokens rely on the server clock alone.
func WithFenceIdle(d time.Duration) Option {
	if d < 0 {
		panic(fmt.Sprintf("redis: WithFenceIdle(%v): must be >= 0", d))
	}
	return func(l *Locker) { l.idle = d }
}

// Locker is the Redis backend. It never closes its client. It is safe for
// concurrent use.
type Locker struct {
	client  Client
	prefix  string
	idle    time.Duration
	idleArg any // ms(idle), boxed once rather than on every call
	hub     hub
	reload  func(context.Context) // a Cluster client's ReloadState; nil otherwise
	queued  sync.Map              // waiter → *watcher, for WatchQueue's waiters
}

// New returns a backend that keeps its locks in the Redis behind client.
// It panics if client is nil: a programmer's error, as with database/sql's
// Register.
func New(client Client, opts ...Option) *Locker {
	if client == nil || reflect.ValueOf(client).Kind() == reflect.Pointer && reflect.ValueOf(client).IsNil() {
		panic("redis: New: client is nil")
	}
	l := &Locker{client: client, prefix: DefaultPrefix, idle: DefaultFenceIdle}
	for _, o := range opts {
		o(l)
	}
	l.idleArg = ms(l.idle)
	l.hub = hub{client: client, subs: make(map[string]*sub)}
	if r, ok := client.(interface{ ReloadState(context.Context) }); ok {
		l.reload = r.ReloadState
	}
	return l
}

// ms rounds d up to whole milliseconds, Redis's precision.
func ms(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// Acquire implements [backend.Locker] in one round trip.
//
// If ctx ends before the reply comes, Acquire still waits for it up to
// 250ms (on the same connection: a reply is the only sure news of the
// outcome) and releases a lock it turns out to have taken. If no reply
// comes even then, or the connection broke, it sends a clean-up script,
// with a budget of 250ms more, that releases what this attempt took (each
// attempt carries a random nonce, stored with the lock) or marks the
// attempt void should its request still be on the way.
func (l *Locker) Acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	return l.AcquireOwner(ctx, key, ttl, "")
}

// AcquireOwner implements [backend.OwnerAcquirer]: Acquire, storing owner
// in the lock's hash (field who) for [Locker.Inspect]. Same cost.
func (l *Locker) AcquireOwner(ctx context.Context, key string, ttl time.Duration, owner string) (int64, error) {
	return l.acquire(ctx, key, ttl, owner, "", 0)
}

// AcquireQueued implements [backend.Queuer]: Acquire as the queued waiter
// w, in the same one script. The key goes to w only if no live waiter is
// ahead of it; a refused w stays queued, alive for keep more.
func (l *Locker) AcquireQueued(ctx context.Context, key string, ttl time.Duration, owner, w string, keep time.Duration) (int64, error) {
	tok, err := l.acquire(ctx, key, ttl, owner, w, keep)
	if tok > 0 {
		if v, ok := l.queued.Load(w); ok {
			v.(*watcher).left.Store(true) // the script took w out of the queue
		}
	}
	return tok, err
}

func (l *Locker) acquire(ctx context.Context, key string, ttl time.Duration, owner, w string, keep time.Duration) (int64, error) {
	k := l.prefix + key
	nonce := strconv.FormatUint(rand.Uint64(), 36)
	rctx := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		rctx, cancel = context.WithDeadline(context.WithoutCancel(ctx), d.Add(cleanupTimeout))
		defer cancel()
	}
	var tok int64
	var err error
	switch { // literal calls: a slice built here costs the seed's Lock 20 B more
	case w != "":
		tok, err = acquireScript.Run(rctx, l.client, []string{k}, ms(ttl), l.idleArg, nonce, owner, w, ms(keep)).Int64()
	case owner == "":
		tok, err = acquireScript.Run(rctx, l.client, []string{k}, ms(ttl), l.idleArg, nonce).Int64()
	default:
		tok, err = acquireScript.Run(rctx, l.client, []string{k}, ms(ttl), l.idleArg, nonce, owner).Int64()
	}
	switch {
	case err != nil:
		if !isReply(err) {
			l.abandon(ctx, k, nonce, ttl)
			l.reloadState()
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("redis: acquire: %w (then: %w)", ctx.Err(), err)
		}
		return 0, fmt.Errorf("redis: acquire: %w", l.classify(err))
	case ctx.Err() != nil:
		// The reply came after the caller gave up: nobody will use this
		// lock, so give it back.
		if tok > 0 {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			_, _ = l.Release(cctx, key, tok)
		}
		return 0, fmt.Errorf("redis: acquire: %w", ctx.Err())
	}
	return tok, nil
}

// abandon undoes the acquire that carried nonce, best effort.
func (l *Locker) abandon(ctx context.Context, k, nonce string, ttl time.Duration) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	// EVAL with the source: one round trip even on a server that has
	// not seen the script (this path is rare; EVALSHA could cost two).
	_ = abandonScript.Eval(ctx, l.client, []string{k}, nonce, l.idleArg, ms(ttl)).Err()
}

// isReply reports whether err is the server's answer (the script ran, or
// was refused as a whole), as opposed to a failure of the connection after
// which the outcome is unknown.
func isReply(err error) bool {
	var reply goredis.Error
	return errors.As(err, &reply)
}

// classify is classify, and a hint to a Cluster client that its map of
// the slots may be out of date (see reloadState).
func (l *Locker) classify(err error) error {
	if !isReply(err) {
		l.reloadState()
	}
	return classify(err)
}

// reloadState asks a Cluster client to reload its map of the slots, in
// the background, after a call failed without a reply. go-redis reloads
// it by itself only on MOVED or ASK replies and every
// ClusterStateReloadInterval (a minute by default): a primary that died
// and stays dead answers neither, so without this hint the client keeps
// calling it for up to a minute after its replica took over. Reloads are
// coalesced by the client, so a burst of failures costs one or two.
func (l *Locker) reloadState() {
	if l.reload != nil {
		l.reload(context.Background())
	}
}

// classify marks err as [backend.ErrUnavailable] when the server could not
// be reached (refused, reset, closed), as opposed to a reply, a timeout or
// the caller's context.
func classify(err error) error {
	var ne net.Error
	switch {
	case isReply(err), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return err
	}
	return fmt.Errorf("%w: %w", backend.ErrUnavailable, err)
}

// Release implements [backend.Locker] in one round trip.
func (l *Locker) Release(ctx context.Context, key string, token int64) (bool, error) {
	n, err := releaseScript.Run(ctx, l.client, []string{l.prefix + key}, token, l.idleArg).Int64()
	if err != nil {
		return false, fmt.Errorf("redis: release: %w", l.classify(err))
	}
	return n == 1, nil
}

// Inspect implements [backend.Inspector] in one round trip: the token,
// the time left on the server's clock, and the owner.
func (l *Locker) Inspect(ctx context.Context, key string) (backend.LockInfo, error) {
	v, err := inspectScript.Run(ctx, l.client, []string{l.prefix + key}).Slice()
	if err != nil {
		return backend.LockInfo{}, fmt.Errorf("redis: inspect: %w", l.classify(err))
	}
	if len(v) != 3 {
		return backend.LockInfo{}, fmt.Errorf("redis: inspect: unexpected reply %v", v)
	}
	tok, _ := v[0].(string)
	left, _ := v[1].(int64)
	owner, _ := v[2].(string)
	token, err := strconv.ParseInt(tok, 10, 64)
	if err != nil {
		return backend.LockInfo{}, fmt.Errorf("redis: inspect: token %q: %w", tok, err)
	}
	if token <= 0 {
		return backend.LockInfo{}, nil
	}
	return backend.LockInfo{Held: true, Token: token, TTL: time.Duration(left) * time.Millisecond, Owner: owner}, nil
}

// ForceRelease implements [backend.ForceReleaser] in one round trip: it
// frees the key whoever holds it, keeps the fencing counter and publishes
// the release to waiters.
func (l *Locker) ForceRelease(ctx context.Context, key string) (bool, error) {
	n, err := forceScript.Run(ctx, l.client, []string{l.prefix + key}, l.idleArg).Int64()
	if err != nil {
		return false, fmt.Errorf("redis: force release: %w", l.classify(err))
	}
	return n == 1, nil
}

// Refresh implements [backend.Refresher] in one round trip.
func (l *Locker) Refresh(ctx context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	n, err := refreshScript.Run(ctx, l.client, []string{l.prefix + key}, token, ms(ttl), l.idleArg).Int64()
	if err != nil {
		return false, fmt.Errorf("redis: refresh: %w", l.classify(err))
	}
	return n == 1, nil
}

// Ping implements [backend.Pinger] with one INFO memory: the server
// answers, and it will not evict lock keys. If maxmemory is set and
// maxmemory-policy is anything but noeviction, Ping returns an error
// matching [ErrEvictionPolicy]. Where INFO is not allowed (an ACL user
// without it), Ping falls back to PING and cannot check the policy. With a
// Cluster client, INFO reaches one node.
func (l *Locker) Ping(ctx context.Context) error {
	info, err := l.client.Info(ctx, "memory").Result()
	if err != nil && isReply(err) {
		err = l.client.Ping(ctx).Err()
		info = ""
	}
	if err != nil {
		return fmt.Errorf("redis: ping: %w", l.classify(err))
	}
	var maxmemory, policy string
	for line := range strings.Lines(info) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "maxmemory:"); ok {
			maxmemory = v
		} else if v, ok := strings.CutPrefix(line, "maxmemory_policy:"); ok {
			policy = v
		}
	}
	if maxmemory != "" && maxmemory != "0" && policy != "" && policy != "noeviction" {
		return fmt.Errorf("%w: maxmemory %s, maxmemory-policy %s; set maxmemory-policy noeviction", ErrEvictionPolicy, maxmemory, policy)
	}
	return nil
}

// Watch implements [backend.Watcher]. Waiters on one key share one pub/sub
// connection, opened by the first and closed by the last; Watch returns
// after the server confirmed the subscription and said how long the key
// stays held, so no release after Watch returns is missed (short of a
// reconnect).
func (l *Locker) Watch(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	return l.watch(ctx, l.prefix+key, "", 0, heldScript)
}

// WatchQueue implements [backend.Queuer]: Watch, and w joins the key's
// queue (a field of the lock's hash) in the same script that reads the
// holder's time left. A release then wakes only the queue's first live
// waiter (its message names it), so a handoff costs one acquire script,
// not one per waiter. stop takes w out of the queue with one more script
// (up to 250ms), unless w got the lock, which took it out already.
func (l *Locker) WatchQueue(ctx context.Context, key, w string, keep time.Duration) (<-chan struct{}, func(), error) {
	if err := checkWaiter(w, false); err != nil {
		return nil, nil, fmt.Errorf("redis: watch: %w", err)
	}
	return l.watch(ctx, l.prefix+key, w, keep, nil)
}

// checkWaiter checks a waiter's name, which the scripts keep in the
// store: letters and digits ("" too if empty is allowed).
func checkWaiter(w string, empty bool) error {
	if w == "" && !empty || strings.ContainsFunc(w, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	}) {
		return fmt.Errorf("waiter %q: want letters and digits", w)
	}
	return nil
}

// watch listens for releases of the Redis key k. held is the script that
// tells how long k stays held; for the queued waiter id (held nil), the
// queue script, which also queues it.
func (l *Locker) watch(ctx context.Context, k, id string, keep time.Duration, held *goredis.Script) (<-chan struct{}, func(), error) {
	s, err := l.hub.join(ctx, k)
	if err != nil {
		return nil, nil, fmt.Errorf("redis: watch: %w", err)
	}
	w := &watcher{ch: make(chan struct{}, 1), id: id}
	s.add(w)
	var left int64
	if id == "" {
		left, err = held.Run(ctx, l.client, []string{k}).Int64()
	} else {
		l.queued.Store(id, w)
		left, err = queueScript.Run(ctx, l.client, []string{k}, id, ms(keep)).Int64()
	}
	stop := func() {
		if w.timer != nil {
			w.timer.Stop()
		}
		s.remove(w)
		l.hub.leave(k, s)
		if id != "" {
			l.queued.Delete(id)
			if !w.left.Load() {
				ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
				defer cancel()
				_ = dequeueScript.Run(ctx, l.client, []string{k}, id).Err()
			}
		}
	}
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("redis: watch: %w", err)
	}
	switch {
	case left == 0:
		w.notify()
	case left > 0:
		// Wake at the holder's expiry too: Redis publishes no event then.
		w.timer = time.AfterFunc(time.Duration(left)*time.Millisecond, w.notify)
	}
	var once sync.Once
	return w.ch, func() { once.Do(stop) }, nil
}

type watcher struct {
	ch    chan struct{}
	timer *time.Timer
	id    string      // the queued waiter; "" for Watch
	left  atomic.Bool // the waiter got the lock, and so left the queue
}

func (w *watcher) notify() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// hub shares one pub/sub connection per watched key among its waiters.
type hub struct {
	client Client
	mu     sync.Mutex
	subs   map[string]*sub
}

type sub struct {
	refs  int           // under hub.mu
	idle  *time.Timer   // under hub.mu: closes the connection once idle
	ready chan struct{} // closed once open has finished
	err   error         // open's result, set before ready is closed
	ps    *goredis.PubSub
	done  chan struct{} // closed when the dispatcher has stopped

	mu       sync.Mutex
	watchers map[*watcher]struct{}
}

var errUnexpected = errors.New("unexpected reply to SUBSCRIBE")

func (h *hub) join(ctx context.Context, channel string) (*sub, error) {
	h.mu.Lock()
	s, ok := h.subs[channel]
	if !ok {
		s = &sub{ready: make(chan struct{}), watchers: make(map[*watcher]struct{})}
		h.subs[channel] = s
	}
	s.refs++
	h.mu.Unlock()

	if !ok {
		s.err = s.open(ctx, h.client, channel)
		close(s.ready)
	}
	select {
	case <-s.ready:
	case <-ctx.Done():
		h.leave(channel, s)
		return nil, ctx.Err()
	}
	if s.err != nil {
		h.leave(channel, s)
		return nil, s.err
	}
	return s, nil
}

// subIdle is how long a key's pub/sub connection stays open after its
// last waiter left, so that a Locker that waits for a key again and again
// (each contended acquisition) does not connect and subscribe each time.
const subIdle = 10 * time.Second

// IdleGoroutines names the goroutines of a key's idle pub/sub connection,
// which outlive its waiters by up to 10s: for a goroutine leak check
// (conformance.Limits.IgnoreGoroutines).
var IdleGoroutines = []string{
	"github.com/xsync-go/xsync/backend/redis.(*sub).open.func1",
	"github.com/redis/go-redis/v9.(*channel).initHealthCheck.func1",
	"github.com/redis/go-redis/v9.(*channel).initAllChan.func1",
}

func (h *hub) leave(channel string, s *sub) {
	h.mu.Lock()
	s.refs--
	if s.refs > 0 {
		h.mu.Unlock()
		return
	}
	if s.ps == nil { // it failed to open: nothing to keep
		if h.subs[channel] == s {
			delete(h.subs, channel)
		}
		h.mu.Unlock()
		return
	}
	// One timer per connection, pushed back by every leave: the
	// connection closes subIdle after the last waiter left, if none came.
	if s.idle == nil {
		s.idle = time.AfterFunc(subIdle, func() {
			h.mu.Lock()
			idle := s.refs == 0 && h.subs[channel] == s
			if idle {
				delete(h.subs, channel)
			}
			h.mu.Unlock()
			if idle {
				s.ps.Close()
				<-s.done
			}
		})
	} else {
		s.idle.Reset(subIdle)
	}
	h.mu.Unlock()
}

// open subscribes and waits for the server's confirmation: only then is a
// release published afterwards sure to arrive.
func (s *sub) open(ctx context.Context, c Client, channel string) error {
	ps := c.Subscribe(ctx, channel)
	msg, err := ps.Receive(ctx)
	if err == nil {
		if _, ok := msg.(*goredis.Subscription); !ok {
			err = fmt.Errorf("%w: %T", errUnexpected, msg)
		}
	}
	if err != nil {
		ps.Close()
		return err
	}
	s.ps = ps
	s.done = make(chan struct{})
	// Messages and subscription confirmations both wake the waiters: after
	// a reconnect (go-redis resubscribes) a release may have been missed.
	msgs := ps.ChannelWithSubscriptions()
	go func() {
		defer close(s.done)
		for m := range msgs {
			// A message naming a queued waiter wakes that one (and plain
			// watchers); anything else wakes everyone.
			var to string
			if msg, ok := m.(*goredis.Message); ok && msg.Payload != "released" {
				to = msg.Payload
			}
			s.mu.Lock()
			for w := range s.watchers {
				if to == "" || w.id == "" || w.id == to {
					w.notify()
				}
			}
			s.mu.Unlock()
		}
	}()
	return nil
}

func (s *sub) add(w *watcher) {
	s.mu.Lock()
	s.watchers[w] = struct{}{}
	s.mu.Unlock()
}

func (s *sub) remove(w *watcher) {
	s.mu.Lock()
	delete(s.watchers, w)
	s.mu.Unlock()
}
