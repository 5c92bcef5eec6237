package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/pubsub"
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

// The spaces of the kinds of lock, after the prefix and before the key:
// no key of one kind can name another kind's state.
const (
	mutexSpace     = "m:"
	semaphoreSpace = "s:"
	rwSpace        = "r:"
	electionSpace  = "e:"
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
//	~xsync:* &xsync:* -@all +eval +evalsha +subscribe +unsubscribe +ping +time +get +set +hmget +hgetall +hset +hdel +del +pexpire +pttl +publish +zadd +zrem +zscore +zcount +zrange +zrangebyscore +zremrangebyscore
//
// (The sorted-set commands are for semaphores and read-write locks.)
//
// Add +scan for an operator's user, to let [Locker.List] list the locks
// (SCAN shows the names of every key of the database, not only the
// prefix's, so a lock user does without it).
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
		"+time +get +set +hmget +hgetall +hset +hdel +del +pexpire +pttl +publish " +
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

// WithHashLayout keeps every mutex and election in a hash, the layout of
// earlier versions of this package, instead of the short layout: a plain
// string while no waiter is queued, which costs the server less per lock
// (see the package doc). Lockers of earlier versions read
// hashes only: a key in the short layout fails their scripts (WRONGTYPE
// errors, never a second holder). To upgrade a fleet without such errors,
// roll out this version with WithHashLayout first, then without it once
// no earlier Locker is left. Lockers with and without it share their
// locks. A Locker on a Redis Cluster client keeps hashes only, with or
// without it.
func WithHashLayout() Option {
	return func(l *Locker) { l.acquire = acquireHashScript }
}

// Locker is the Redis backend. It never closes its client. It is safe for
// concurrent use.
type Locker struct {
	client  Client
	prefix  string
	idle    time.Duration
	idleArg any             // ms(idle), boxed once rather than on every call
	acquire *goredis.Script // acquireScript, or acquireHashScript
	hub     *pubsub.Hub
	reload  func(context.Context) // a Cluster client's ReloadState; nil otherwise
	queued  queued                // this Locker's queued waiters
}

// New returns a backend that keeps its locks in the Redis behind client.
// It panics if client is nil: a programmer's error, as with database/sql's
// Register.
func New(client Client, opts ...Option) *Locker {
	if client == nil || reflect.ValueOf(client).Kind() == reflect.Pointer && reflect.ValueOf(client).IsNil() {
		panic("redis: New: client is nil")
	}
	l := &Locker{client: client, prefix: DefaultPrefix, idle: DefaultFenceIdle, acquire: acquireScript}
	for _, o := range opts {
		o(l)
	}
	l.idleArg = ms(l.idle)
	l.hub = pubsub.New(client.Subscribe)
	if r, ok := client.(interface{ ReloadState(context.Context) }); ok {
		l.reload = r.ReloadState
		// A Cluster keeps hashes: a slot migration would abort a script
		// that turns a key from the short layout into a hash halfway
		// (see the package doc's key layouts).
		l.acquire = acquireHashScript
	}
	return l
}

// ms rounds d up to whole milliseconds, Redis's precision.
func ms(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// Acquire implements [backend.Locker]: the mutex's attempt, in one round
// trip (see [Locker.Mutex]).
func (l *Locker) Acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	return l.acquireMutex(ctx, l.prefix+mutexSpace+key, backend.Request{TTL: ttl})
}

// Release implements [backend.Locker] in one round trip.
func (l *Locker) Release(ctx context.Context, key string, token int64) (bool, error) {
	return l.call(ctx, "release", releaseScript, []string{l.prefix + mutexSpace + key}, token, l.idleArg)
}

// call runs a release, refresh or force script that answers 1 (yes) or 0.
func (l *Locker) call(ctx context.Context, op string, script *goredis.Script, keys []string, args ...any) (bool, error) {
	n, err := script.Run(ctx, l.client, keys, args...).Int64()
	if err != nil {
		return false, crossSlot(fmt.Errorf("redis: %s: %w", op, l.classify(err)))
	}
	return n >= 1, nil
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

// isReply reports whether err is the server's answer (the script ran, or
// was refused as a whole), as opposed to a failure of the connection after
// which the outcome is unknown.
func isReply(err error) bool {
	var reply goredis.Error
	return errors.As(err, &reply)
}

// classify marks err as [backend.ErrUnavailable] when the server could not
// be reached (refused, reset, closed), as opposed to a reply, a timeout or
// the caller's context, and hints a Cluster client that its map of the
// slots may be out of date (see reloadState).
func (l *Locker) classify(err error) error {
	if !isReply(err) {
		l.reloadState()
	}
	var ne net.Error
	switch {
	case isReply(err), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return err
	}
	return fmt.Errorf("%w: %w", backend.ErrUnavailable, err)
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

// ErrCrossSlot is what a multi-key lock's error matches when the keys are
// in several hash slots of a Redis Cluster, which cannot take them in one
// step. Give them one hash tag ("{order:42}:payment", "{order:42}:stock").
var ErrCrossSlot = errors.New("redis: the keys are in several hash slots of the cluster: give them one hash tag, such as {order:42}")

// crossSlot adds ErrCrossSlot to a CROSSSLOT reply.
func crossSlot(err error) error {
	if err != nil && strings.Contains(err.Error(), "CROSSSLOT") {
		return fmt.Errorf("%w: %w", ErrCrossSlot, err)
	}
	return err
}
