// Package benchmarks compares xsync's backends with the locks people would
// otherwise pick, on the same servers in the same run: redsync (1 and 5
// nodes), bsm/redislock, etcd's concurrency.Mutex, and the raw limits (a
// SET NX PX plus a compare-and-delete script; one PING; one etcd Put).
// run.sh runs it and writes docs/peers.md; see that file for the method.
package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis"
	rsgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	goredis "github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/xsync-go/xsync"
	xetcd "github.com/xsync-go/xsync/backend/etcd"
	"github.com/xsync-go/xsync/backend/memory"
	xredis "github.com/xsync-go/xsync/backend/redis"
	"github.com/xsync-go/xsync/backend/redlock"
	"github.com/xsync-go/xsync/internal/benchutil"
	"github.com/xsync-go/xsync/internal/itest"
)

func TestMain(m *testing.M) { itest.Main(m) }

var seq atomic.Int64

func unique(s string) string { return fmt.Sprintf("%s-%d", s, seq.Add(1)) }

// rawRelease is the compare-and-delete every Redis lock needs.
var rawRelease = goredis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

// etcdLocker returns an etcd Locker on c whose idle leases its Close
// revokes when b ends, so that they do not linger into the next run.
func etcdLocker(b *testing.B, c *clientv3.Client, prefix string) *xetcd.Locker {
	l := xetcd.New(c, xetcd.WithPrefix(prefix))
	b.Cleanup(func() { l.Close() })
	return l
}

func must(b *testing.B, err error) {
	if err != nil {
		b.Fatal(err)
	}
}

func redsyncOf(cs ...goredis.UniversalClient) *redsync.Redsync {
	pools := make([]redis.Pool, len(cs))
	for i, c := range cs {
		pools[i] = rsgoredis.NewPool(c)
	}
	return redsync.New(pools...)
}

// Contenders on one Redis: acquire+release once.
func redisOps(b *testing.B, c *goredis.Client) []benchutil.Op {
	ctx := context.Background()
	name := unique("xsync-redis")
	b.Cleanup(xsync.Swap(name, xredis.New(c, xredis.WithPrefix(unique("p")+":"))))
	rl := redislock.New(c)
	rs := redsyncOf(c)
	n := 0
	return []benchutil.Op{
		{Name: "xsync-redis", Fn: benchutil.LockUnlock(b, name, "k")},
		{Name: "redislock", Fn: func() {
			l, err := rl.Obtain(ctx, "redislock:k", 10*time.Second, nil)
			must(b, err)
			must(b, l.Release(ctx))
		}},
		{Name: "redsync-1", Fn: func() {
			m := rs.NewMutex("redsync:k", redsync.WithExpiry(10*time.Second), redsync.WithTries(1))
			must(b, m.LockContext(ctx))
			if ok, err := m.UnlockContext(ctx); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}},
		{Name: "raw", Fn: func() {
			n++
			v := strconv.Itoa(n)
			if ok, err := c.SetNX(ctx, "raw:k", v, 10*time.Second).Result(); !ok || err != nil {
				b.Fatal(ok, err)
			}
			if r, err := rawRelease.Run(ctx, c, []string{"raw:k"}, v).Int(); r != 1 || err != nil {
				b.Fatal(r, err)
			}
		}},
		{Name: "ping", Fn: func() { must(b, c.Ping(ctx).Err()) }},
	}
}

// BenchmarkUncontended interleaves, op by op, one acquire+release of every
// contender on the same servers and reports each mean (ns) and its cost in
// round trips (PING for Redis, Put for etcd).
func BenchmarkUncontended(b *testing.B) {
	b.Run("redis", func(b *testing.B) {
		c := itest.RedisClient(b, itest.StartRedis(b))
		report(b, benchutil.Interleave(b, redisOps(b, c)...), "ping")
	})
	b.Run("redis5", func(b *testing.B) {
		nodes := itest.StartRedisN(b, 5)
		cs := make([]goredis.UniversalClient, len(nodes))
		for i, n := range nodes {
			cs[i] = itest.RedisClient(b, n)
		}
		ctx := context.Background()
		name := unique("xsync-redlock")
		b.Cleanup(xsync.Swap(name, redlock.New(cs, redlock.WithPrefix(unique("p")+":"))))
		rs := redsyncOf(cs...)
		report(b, benchutil.Interleave(b,
			benchutil.Op{Name: "xsync-redlock", Fn: benchutil.LockUnlock(b, name, "k")},
			benchutil.Op{Name: "redsync-5", Fn: func() {
				m := rs.NewMutex("redsync:k", redsync.WithExpiry(10*time.Second), redsync.WithTries(1))
				must(b, m.LockContext(ctx))
				if ok, err := m.UnlockContext(ctx); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}},
			benchutil.Op{Name: "ping", Fn: func() { must(b, cs[0].Ping(ctx).Err()) }},
		), "ping")
	})
	b.Run("etcd", func(b *testing.B) {
		srv := itest.StartEtcd(b)
		c := itest.EtcdClient(b, srv)
		ctx := context.Background()
		name := unique("xsync-etcd")
		b.Cleanup(xsync.Swap(name, etcdLocker(b, c, unique("p")+"/")))
		shared, err := concurrency.NewSession(c, concurrency.WithTTL(10))
		must(b, err)
		b.Cleanup(func() { shared.Close() })
		report(b, benchutil.Interleave(b,
			benchutil.Op{Name: "xsync-etcd", Fn: benchutil.LockUnlock(b, name, "k")},
			benchutil.Op{Name: "mutex-shared-session", Fn: func() {
				m := concurrency.NewMutex(shared, "mutex-shared")
				must(b, m.Lock(ctx))
				must(b, m.Unlock(ctx))
			}},
			benchutil.Op{Name: "mutex-new-session", Fn: func() {
				s, err := concurrency.NewSession(c, concurrency.WithTTL(10))
				must(b, err)
				m := concurrency.NewMutex(s, "mutex-new")
				must(b, m.Lock(ctx))
				must(b, m.Unlock(ctx))
				must(b, s.Close())
			}},
			benchutil.Op{Name: "put", Fn: func() {
				_, err := c.Put(ctx, "put", "v")
				must(b, err)
			}},
		), "put")
	})
	b.Run("postgres", uncontendedPostgres)
	b.Run("memory", func(b *testing.B) {
		name := unique("xsync-memory")
		b.Cleanup(xsync.Swap(name, memory.New()))
		report(b, benchutil.Interleave(b, benchutil.Op{Name: "xsync-memory", Fn: benchutil.LockUnlock(b, name, "k")}), "")
	})
}

// report writes each op's mean and, if unit names an op, its cost in that
// op's time.
func report(b *testing.B, means map[string]time.Duration, unit string) {
	for name, d := range means {
		b.ReportMetric(float64(d.Nanoseconds()), name+"-ns")
		if unit != "" && name != unit {
			b.ReportMetric(benchutil.Ratio(d, means[unit]), name+"-"+unit+"s")
		}
	}
}

// lockFunc takes the lock, runs work while holding it, and releases it.
type lockFunc = func(ctx context.Context, work func()) error

// contenders builds, for each library, worker w's way to take one key with
// its own client (as separate processes would), waiting as the library
// does by default (xsync: release notification; redislock: a 1ms linear
// retry; redsync: its default randomised 50-250ms retry; Mutex: its watch).
type contender struct {
	name  string
	setup func(b *testing.B) func(w int) lockFunc
}

// xsyncContender retries every interval at most: one second where the
// backend reports releases (the wait ends at the release), less where it
// does not (Redlock: 250ms, so waits of 125-250ms, near redsync's 50-250ms).
func xsyncContender(name string, interval time.Duration, register func(b *testing.B, name string)) contender {
	return contender{name, func(b *testing.B) func(int) lockFunc {
		return func(w int) lockFunc {
			n := unique(name)
			register(b, n)
			a := xsync.New(n, "k")
			must(b, a.SetRetry(1<<30, interval))
			return func(ctx context.Context, work func()) error {
				return a.Run(ctx, func(context.Context) error { work(); return nil })
			}
		}
	}}
}

func BenchmarkContended8(b *testing.B) {
	redisSrv := itest.StartRedis(b)
	nodes := itest.StartRedisN(b, 5)
	etcdSrv := itest.StartEtcd(b)
	prefix := unique("c") + ":"
	nodeClients := func(b *testing.B) []goredis.UniversalClient {
		cs := make([]goredis.UniversalClient, len(nodes))
		for i, n := range nodes {
			cs[i] = itest.RedisClient(b, n)
		}
		return cs
	}
	all := []contender{
		xsyncContender("xsync-redis", time.Second, func(b *testing.B, n string) {
			b.Cleanup(xsync.Swap(n, xredis.New(itest.RedisClient(b, redisSrv), xredis.WithPrefix(prefix))))
		}),
		{"redislock-1ms", func(b *testing.B) func(int) lockFunc {
			return func(int) lockFunc {
				rl := redislock.New(itest.RedisClient(b, redisSrv))
				opt := &redislock.Options{RetryStrategy: redislock.LinearBackoff(time.Millisecond)}
				return func(ctx context.Context, work func()) error {
					l, err := rl.Obtain(ctx, "redislock:k", 10*time.Second, opt)
					if err != nil {
						return err
					}
					work()
					return l.Release(context.WithoutCancel(ctx))
				}
			}
		}},
		{"redsync-1", func(b *testing.B) func(int) lockFunc {
			return func(int) lockFunc {
				rs := redsyncOf(itest.RedisClient(b, redisSrv))
				return func(ctx context.Context, work func()) error {
					m := rs.NewMutex("redsync:k", redsync.WithExpiry(10*time.Second), redsync.WithTries(1<<20))
					if err := m.LockContext(ctx); err != nil {
						return err
					}
					work()
					_, err := m.UnlockContext(context.WithoutCancel(ctx))
					return err
				}
			}
		}},
		xsyncContender("xsync-redlock", 250*time.Millisecond, func(b *testing.B, n string) {
			b.Cleanup(xsync.Swap(n, redlock.New(nodeClients(b), redlock.WithPrefix(prefix))))
		}),
		{"redsync-5", func(b *testing.B) func(int) lockFunc {
			return func(int) lockFunc {
				rs := redsyncOf(nodeClients(b)...)
				return func(ctx context.Context, work func()) error {
					m := rs.NewMutex("redsync5:k", redsync.WithExpiry(10*time.Second), redsync.WithTries(1<<20))
					if err := m.LockContext(ctx); err != nil {
						return err
					}
					work()
					_, err := m.UnlockContext(context.WithoutCancel(ctx))
					return err
				}
			}
		}},
		xsyncContender("xsync-etcd", time.Second, func(b *testing.B, n string) {
			b.Cleanup(xsync.Swap(n, etcdLocker(b, itest.EtcdClient(b, etcdSrv), prefix)))
		}),
		{"etcd-mutex", func(b *testing.B) func(int) lockFunc {
			return func(int) lockFunc {
				s, err := concurrency.NewSession(itest.EtcdClient(b, etcdSrv), concurrency.WithTTL(10))
				must(b, err)
				b.Cleanup(func() { s.Close() })
				m := concurrency.NewMutex(s, "mutex-contended")
				return func(ctx context.Context, work func()) error {
					if err := m.Lock(ctx); err != nil {
						return err
					}
					work()
					return m.Unlock(context.WithoutCancel(ctx))
				}
			}
		}},
	}
	all = append(all, postgresContenders(lazyPostgres(b), prefix)...)
	for _, c := range all {
		b.Run(c.name, func(b *testing.B) { benchutil.Contend(b, 8, c.setup(b)) })
	}
}

// BenchmarkRedlockTwoPaused freezes 2 of 5 nodes and compares xsync's
// Redlock backend (50ms node timeout) with redsync's defaults: time to lock
// and unlock, and the validity left after locking, as a share of the TTL.
func BenchmarkRedlockTwoPaused(b *testing.B) {
	nodes := itest.StartRedisN(b, 5)
	cs := make([]goredis.UniversalClient, len(nodes))
	for i, n := range nodes {
		// redsync's per-node timeout reaches the socket only with this.
		cs[i] = itest.RedisClientWith(b, n, &goredis.Options{ContextTimeoutEnabled: true, MaxRetries: -1})
		must(b, cs[i].Ping(context.Background()).Err())
	}
	nodes[1].Pause()
	nodes[4].Pause()
	const ttl = 8 * time.Second
	name := unique("xsync-redlock")
	b.Cleanup(xsync.Swap(name, redlock.New(cs, redlock.WithPrefix(unique("p")+":"))))
	rs := redsyncOf(cs...)
	ctx := context.Background()
	var xl, xu, rl, ru time.Duration
	var xv, rv float64
	n := 0
	a := xsync.New(name, "k")
	must(b, a.SetExp(ttl))
	for b.Loop() {
		t0 := time.Now()
		var locked time.Time
		err := a.Run(ctx, func(ctx context.Context) error {
			locked = time.Now()
			d, _ := ctx.Deadline()
			xv += d.Sub(t0).Seconds() / ttl.Seconds()
			return nil
		})
		must(b, err)
		xl += locked.Sub(t0)
		xu += time.Since(locked)

		t0 = time.Now()
		m := rs.NewMutex("redsync:k", redsync.WithExpiry(ttl), redsync.WithTries(1))
		if err := m.LockContext(ctx); err != nil && !errors.Is(err, redsync.ErrFailed) {
			must(b, err)
		}
		t1 := time.Now()
		rv += m.Until().Sub(t0).Seconds() / ttl.Seconds()
		m.UnlockContext(ctx)
		rl += t1.Sub(t0)
		ru += time.Since(t1)
		n++
	}
	b.ReportMetric(float64(xl.Milliseconds())/float64(n), "xsync-lock-ms")
	b.ReportMetric(float64(xu.Milliseconds())/float64(n), "xsync-unlock-ms")
	b.ReportMetric(100*xv/float64(n), "xsync-validity-%")
	b.ReportMetric(float64(rl.Milliseconds())/float64(n), "redsync-lock-ms")
	b.ReportMetric(float64(ru.Milliseconds())/float64(n), "redsync-unlock-ms")
	b.ReportMetric(100*rv/float64(n), "redsync-validity-%")
}

// BenchmarkParallelKeys runs acquire+release from 4 goroutines at once
// (2 per core), each on a key of its own, for every library on the same
// servers: ops/s on distinct keys, where only the library's own cost and
// round trips count. The libraries take turns, b.N slices of
// parallelSlice each, the order rotating from slice to slice, so that the
// machine's drift within a round falls on all of them alike, not on
// whichever library ran last (docs/benchmarks.md); each library's rate is
// its operations over the time of its own slices, reported as
// <library>-ops/s.
func BenchmarkParallelKeys(b *testing.B) {
	redisSrv := itest.StartRedis(b)
	etcdSrv := itest.StartEtcd(b)
	ctx := context.Background()
	type libOp = func(key string) func() // one acquire+release of key
	libs := []parallelLib{
		{"xsync-redis", func(b *testing.B) libOp {
			n := unique("xsync-redis")
			b.Cleanup(xsync.Swap(n, xredis.New(itest.RedisClient(b, redisSrv), xredis.WithPrefix(unique("p")+":"))))
			return func(key string) func() { return benchutil.LockUnlock(b, n, key) }
		}},
		{"redislock", func(b *testing.B) libOp {
			rl := redislock.New(itest.RedisClient(b, redisSrv))
			return func(key string) func() {
				return func() {
					l, err := rl.Obtain(ctx, "redislock:"+key, 10*time.Second, nil)
					must(b, err)
					must(b, l.Release(ctx))
				}
			}
		}},
		{"redsync-1", func(b *testing.B) libOp {
			rs := redsyncOf(itest.RedisClient(b, redisSrv))
			return func(key string) func() {
				return func() {
					m := rs.NewMutex("redsync:"+key, redsync.WithExpiry(10*time.Second), redsync.WithTries(1))
					must(b, m.LockContext(ctx))
					if ok, err := m.UnlockContext(ctx); !ok || err != nil {
						b.Fatal(ok, err)
					}
				}
			}
		}},
		{"xsync-etcd", func(b *testing.B) libOp {
			n := unique("xsync-etcd")
			b.Cleanup(xsync.Swap(n, etcdLocker(b, itest.EtcdClient(b, etcdSrv), unique("p")+"/")))
			return func(key string) func() { return benchutil.LockUnlock(b, n, key) }
		}},
		{"etcd-mutex", func(b *testing.B) libOp {
			s, err := concurrency.NewSession(itest.EtcdClient(b, etcdSrv), concurrency.WithTTL(10))
			must(b, err)
			b.Cleanup(func() { s.Close() })
			return func(key string) func() {
				return func() {
					m := concurrency.NewMutex(s, "mutex/"+key)
					must(b, m.Lock(ctx))
					must(b, m.Unlock(ctx))
				}
			}
		}},
	}
	libs = append(libs, postgresLibs(lazyPostgres(b))...)
	type runner struct {
		name string
		ops  []func() // one per goroutine, each on its own key
		n    int64
		took time.Duration
	}
	runners := make([]*runner, len(libs))
	for i, l := range libs {
		op := l.op(b)
		r := &runner{name: l.name}
		for g := range parallelGoroutines {
			r.ops = append(r.ops, op(fmt.Sprint("k", g)))
		}
		parallelRun(r.ops, parallelSlice) // connects, and warms up
		runners[i] = r
	}
	b.ResetTimer()
	for i := range b.N {
		for j := range runners {
			r := runners[(i+j)%len(runners)]
			n, took := parallelRun(r.ops, parallelSlice)
			r.n += n
			r.took += took
		}
	}
	for _, r := range runners {
		b.ReportMetric(float64(r.n)/r.took.Seconds(), r.name+"-ops/s")
	}
}

// parallelGoroutines and parallelSlice: BenchmarkParallelKeys's
// goroutines per library, and the length of each library's turn.
const (
	parallelGoroutines = 4
	parallelSlice      = 100 * time.Millisecond
)

// parallelRun runs each of ops in a goroutine of its own, over and over,
// for d, and returns how many ran and how long they took (until the last
// one ended).
func parallelRun(ops []func(), d time.Duration) (int64, time.Duration) {
	var n atomic.Int64
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for _, op := range ops {
		wg.Go(func() {
			var k int64
			for time.Now().Before(end) {
				op()
				k++
			}
			n.Add(k)
		})
	}
	wg.Wait()
	return n.Load(), time.Since(start)
}
