package redlock_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis"
	rsgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend/redlock"
	"github.com/xsync-go/xsync/internal/benchutil"
	"github.com/xsync-go/xsync/internal/itest"
)

// BenchmarkPaired alternates, op by op on the same 5 nodes and clients,
// xsync's Lock+Unlock on the Redlock backend, redsync used directly (its
// defaults, one try) and one PING to the first node (benchutil.Interleave),
// and reports the ratio.
func BenchmarkPaired(b *testing.B) {
	nodes := itest.StartRedisN(b, 5)
	cs := clients(b, nodes)
	b.Cleanup(xsync.Swap("bench", redlock.New(cs, redlock.WithPrefix(newPrefix()))))
	pools := make([]redis.Pool, len(cs))
	for i, c := range cs {
		pools[i] = rsgoredis.NewPool(c)
	}
	rs := redsync.New(pools...)
	ctx := context.Background()
	m := benchutil.Interleave(b,
		benchutil.Op{Name: "xsync", Fn: benchutil.LockUnlock(b, "bench", "k")},
		benchutil.Op{Name: "redsync", Fn: func() {
			m := rs.NewMutex("direct:k", redsync.WithExpiry(10*time.Second), redsync.WithTries(1))
			if err := m.LockContext(ctx); err != nil {
				b.Fatal(err)
			}
			if ok, err := m.UnlockContext(ctx); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}},
		benchutil.Op{Name: "ping", Fn: func() {
			if err := cs[0].Ping(ctx).Err(); err != nil {
				b.Fatal(err)
			}
		}},
	)
	b.ReportMetric(float64(m["xsync"].Nanoseconds()), "xsync-ns")
	b.ReportMetric(float64(m["redsync"].Nanoseconds()), "redsync-ns")
	b.ReportMetric(benchutil.Ratio(m["xsync"], m["redsync"]), "xsync/redsync")
	b.ReportMetric(benchutil.Ratio(m["xsync"], m["ping"]), "xsync-RTTs")
}
