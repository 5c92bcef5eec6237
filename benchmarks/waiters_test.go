package benchmarks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/xsync-go/xsync"
	xpg "github.com/xsync-go/xsync/backend/postgres"
	xredis "github.com/xsync-go/xsync/backend/redis"
	"github.com/xsync-go/xsync/backend/redlock"
	"github.com/xsync-go/xsync/internal/benchutil"
	"github.com/xsync-go/xsync/internal/itest"

	goredis "github.com/redis/go-redis/v9"
)

// lockers is how many Lockers (each with its own client) the waiters of
// BenchmarkWaiters share, worker w using Locker w%lockers: enough that
// waiters sit in several processes' worth of clients, few enough that 150
// waiters do not exhaust PostgreSQL's connections. Every waiter still
// waits on its own (a place in the queue, a watch of its own).
const lockers = 10

// BenchmarkWaiters measures handoffs on one key as the queue grows: 10, 50
// and 150 workers, each taking the key in turn through xsync (a FIFO queue
// on Redis, etcd and PostgreSQL; release notification on Redlock), with a
// retry interval of one second as the bound. If waiting costs O(1) per
// handoff, acquisitions per second stay level as waiters are added, and
// so does the CPU time the Redis servers spend per acquisition (Redis and
// Redlock; over all three nodes for Redlock) and the Raft entries (writes)
// etcd appends per acquisition.
func BenchmarkWaiters(b *testing.B) {
	redisSrv := itest.StartRedis(b)
	nodes := itest.StartRedisN(b, 3)
	etcdSrv := itest.StartEtcd(b)
	pg := lazyPostgres(b)
	prefix := unique("w") + ":"
	type opener = func(b *testing.B, name string)
	// servers returns a client of each of ss. A run reports the CPU time
	// per acquisition of the Redis servers it names (server-cpu-µs/acq):
	// what waiting costs the store.
	servers := func(b *testing.B, ss ...*itest.Server) []goredis.UniversalClient {
		cs := make([]goredis.UniversalClient, len(ss))
		for i, s := range ss {
			cs[i] = itest.RedisClient(b, s)
		}
		return cs
	}
	all := []struct {
		name     string
		interval time.Duration
		register opener
		servers  []*itest.Server
	}{
		{"xsync-redis", time.Second, func(b *testing.B, n string) {
			b.Cleanup(xsync.Swap(n, xredis.New(itest.RedisClient(b, redisSrv), xredis.WithPrefix(prefix))))
		}, []*itest.Server{redisSrv}},
		{"xsync-redlock", 250 * time.Millisecond, func(b *testing.B, n string) {
			b.Cleanup(xsync.Swap(n, redlock.New(servers(b, nodes...), redlock.WithPrefix(prefix))))
		}, nodes},
		{"xsync-etcd", time.Second, func(b *testing.B, n string) {
			b.Cleanup(xsync.Swap(n, etcdLocker(b, itest.EtcdClient(b, etcdSrv), prefix)))
		}, nil},
		{"xsync-postgres", time.Second, func(b *testing.B, n string) {
			l := xpg.New(pgPool(b, pg(), nil), xpg.WithPrefix(prefix))
			b.Cleanup(func() { l.Close() })
			b.Cleanup(xsync.Swap(n, l))
		}, nil},
	}
	for _, be := range all {
		for _, n := range []int{10, 50, 150} {
			b.Run(fmt.Sprintf("%s/waiters=%d", be.name, n), func(b *testing.B) {
				names := make([]string, lockers)
				for i := range names {
					names[i] = unique(be.name)
					be.register(b, names[i])
				}
				key := unique("k")
				var meter benchutil.Meter
				switch {
				case be.servers != nil:
					meter = &benchutil.ServerCPU{B: b, Clients: servers(b, be.servers...)}
				case be.name == "xsync-etcd":
					meter = &benchutil.RaftEntries{B: b, Client: itest.EtcdClient(b, etcdSrv)}
				}
				benchutil.ContendMetered(b, n, func(w int) lockFunc {
					a := xsync.New(names[w%lockers], key)
					must(b, a.SetRetry(1<<30, be.interval))
					// A TTL as the peers' (10s): with 150 waiters sharing
					// 10 Lockers, a release can wait for a pooled connection.
					must(b, a.SetExp(10*time.Second))
					return func(ctx context.Context, work func()) error {
						return a.Run(ctx, func(context.Context) error { work(); return nil })
					}
				}, meter)
				b.ReportMetric(lockers, "lockers")
			})
		}
	}
}
