package redis_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/xsync-go/xsync"
	xredis "github.com/xsync-go/xsync/backend/redis"
	"github.com/xsync-go/xsync/internal/benchutil"
	"github.com/xsync-go/xsync/internal/itest"
)

// rawRelease is the compare-and-delete every Redis lock needs.
var rawRelease = goredis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

// BenchmarkPaired interleaves, op by op (benchutil.Interleave), xsync's
// Lock+Unlock, the raw limit (SET NX PX, then a compare-and-delete script:
// two round trips) and one PING, each on the same client and server, and
// reports each one's mean and the ratios. Separate benchmarks mislead on
// this machine; this does not.
func BenchmarkPaired(b *testing.B) {
	srv := itest.StartRedis(b)
	c := itest.RedisClient(b, srv)
	b.Cleanup(xsync.Swap("bench", xredis.New(c, xredis.WithPrefix(newPrefix()))))
	ctx := context.Background()
	n := 0
	m := benchutil.Interleave(b,
		benchutil.Op{Name: "xsync", Fn: benchutil.LockUnlock(b, "bench", "k")},
		benchutil.Op{Name: "raw", Fn: func() {
			n++
			val := strconv.Itoa(n)
			if ok, err := c.SetNX(ctx, "raw:k", val, 10*time.Second).Result(); !ok || err != nil {
				b.Fatal(ok, err)
			}
			if n, err := rawRelease.Run(ctx, c, []string{"raw:k"}, val).Int(); n != 1 || err != nil {
				b.Fatal(n, err)
			}
		}},
		benchutil.Op{Name: "ping", Fn: func() {
			if err := c.Ping(ctx).Err(); err != nil {
				b.Fatal(err)
			}
		}},
	)
	b.ReportMetric(float64(m["xsync"].Nanoseconds()), "xsync-ns")
	b.ReportMetric(float64(m["raw"].Nanoseconds()), "raw-ns")
	b.ReportMetric(float64(m["ping"].Nanoseconds()), "ping-ns")
	b.ReportMetric(benchutil.Ratio(m["xsync"], m["raw"]), "xsync/raw")
	b.ReportMetric(benchutil.Ratio(m["xsync"], m["ping"]), "xsync-RTTs")
	b.ReportMetric(benchutil.Ratio(m["raw"], m["ping"]), "raw-RTTs")
}

// BenchmarkLockUnlock is one uncontended Lock+Unlock, for allocations.
func BenchmarkLockUnlock(b *testing.B) {
	srv := itest.StartRedis(b)
	b.Cleanup(xsync.Swap("bench", xredis.New(itest.RedisClient(b, srv), xredis.WithPrefix(newPrefix()))))
	b.ReportAllocs()
	op := benchutil.LockUnlock(b, "bench", "k")
	for b.Loop() {
		op()
	}
}

// BenchmarkRun is the seed API's Run with an empty callback, uncontended:
// for allocations, and for comparing commits (its Lock+Unlock twin is
// BenchmarkLockUnlock).
func BenchmarkRun(b *testing.B) {
	srv := itest.StartRedis(b)
	b.Cleanup(xsync.Swap("bench", xredis.New(itest.RedisClient(b, srv), xredis.WithPrefix(newPrefix()))))
	b.ReportAllocs()
	a := xsync.New("bench", "k")
	ctx := context.Background()
	cb := func(context.Context) error { return nil }
	for b.Loop() {
		if err := a.Run(ctx, cb); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParallelKeys runs Lock+Unlock on distinct keys from parallel
// goroutines sharing one client (pool).
func BenchmarkParallelKeys(b *testing.B) {
	srv := itest.StartRedis(b)
	b.Cleanup(xsync.Swap("bench", xredis.New(itest.RedisClient(b, srv), xredis.WithPrefix(newPrefix()))))
	ctx := context.Background()
	var ids atomic.Int64
	b.SetParallelism(4)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := fmt.Sprint("k", ids.Add(1))
		for pb.Next() {
			item, err := xsync.Lock(ctx, "bench", key, 10)
			if err != nil || !item.HasLock() {
				b.Error(item, err)
				return
			}
			if ok, err := item.Unlock(ctx, "bench", key); !ok || err != nil {
				b.Error(ok, err)
				return
			}
		}
	})
}

// BenchmarkContended8 has 8 goroutines, each with its own client (as 8
// processes would), take turns on one key with Run and a one-second retry
// interval, so that handoffs go through release notification (see
// benchutil.Contend for the metrics).
func BenchmarkContended8(b *testing.B) {
	srv := itest.StartRedis(b)
	prefix := newPrefix()
	benchutil.Contend(b, 8, func(w int) func(context.Context, func()) error {
		name := fmt.Sprint("bench", w)
		b.Cleanup(xsync.Swap(name, xredis.New(itest.RedisClient(b, srv), xredis.WithPrefix(prefix))))
		a := xsync.New(name, "k")
		if err := a.SetRetry(1<<30, time.Second); err != nil {
			b.Fatal(err)
		}
		return func(ctx context.Context, work func()) error {
			return a.Run(ctx, func(context.Context) error { work(); return nil })
		}
	})
}

// BenchmarkServerCost measures what the scripts cost the server, from its
// INFO commandstats (microseconds of server time per call; round trips and
// the client are not counted): an acquire of a key whose fencing counter
// exists (the common case: the key was locked before), a release, and for
// comparison SET NX PX and the compare-and-delete script every Redis lock
// needs. Each of b.N keys is locked once per phase; ns/op is the wall time
// of the four calls per key, round trips included.
func BenchmarkServerCost(b *testing.B) {
	srv := itest.StartRedis(b)
	c := itest.RedisClient(b, srv)
	l := xredis.New(c, xredis.WithPrefix(newPrefix()))
	ctx := context.Background()
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}
	usec := func(cmd string) float64 {
		stats, err := c.Info(ctx, "commandstats").Result()
		if err != nil {
			b.Fatal(err)
		}
		if !strings.Contains(stats, "cmdstat_"+cmd+":") {
			b.Fatalf("no %s in commandstats", cmd)
		}
		return benchutil.CommandUsec(b, stats, cmd)
	}
	phase := func(cmd string, fn func(k string)) float64 {
		if err := c.ConfigResetStat(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		for _, k := range keys {
			fn(k)
		}
		return usec(cmd) / float64(len(keys))
	}
	toks := map[string]int64{}
	lock := func(k string) {
		tok, err := l.Acquire(ctx, k, time.Minute)
		if err != nil || tok == 0 {
			b.Fatal(tok, err)
		}
		toks[k] = tok
	}
	unlock := func(k string) {
		if ok, err := l.Release(ctx, k, toks[k]); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	for _, k := range keys { // the fencing counters exist from here on
		lock(k)
		unlock(k)
	}
	b.ResetTimer()
	acquire := phase("evalsha", lock)
	release := phase("evalsha", unlock)
	set := phase("set", func(k string) {
		if err := c.SetNX(ctx, "raw:"+k, "v", time.Minute).Err(); err != nil {
			b.Fatal(err)
		}
	})
	del := phase("evalsha", func(k string) {
		if err := rawRelease.Run(ctx, c, []string{"raw:" + k}, "v").Err(); err != nil {
			b.Fatal(err)
		}
	})
	b.ReportMetric(acquire, "acquire-µs")
	b.ReportMetric(release, "release-µs")
	b.ReportMetric(set, "setnx-µs")
	b.ReportMetric(del, "cad-µs")
	b.ReportMetric((acquire+release)/(set+del), "xsync/raw-server")
}

// BenchmarkTypes interleaves an uncontended acquire+release of each lock
// type (the mutex, a semaphore's permit, a read lock, the write lock, two
// keys at once) and one PING, on one client and server, and reports each
// type against the mutex and in round trips (PINGs).
func BenchmarkTypes(b *testing.B) {
	srv := itest.StartRedis(b)
	c := itest.RedisClient(b, srv)
	ctx := context.Background()
	ops := benchutil.TypeOps(b, xsync.NewClient(xredis.New(c, xredis.WithPrefix(newPrefix()))), "")
	ops = append(ops, benchutil.Op{Name: "ping", Fn: func() {
		if err := c.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}})
	benchutil.ReportTypes(b, benchutil.Interleave(b, ops...), "ping")
}
