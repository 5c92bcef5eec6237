package redis_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/xsync-go/xsync"
	xredis "github.com/xsync-go/xsync/backend/redis"
	"github.com/xsync-go/xsync/internal/itest"
)

// rawRelease is the compare-and-delete every Redis lock needs.
var rawRelease = goredis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

// BenchmarkPaired interleaves, op by op (itest.Interleave), xsync's
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
	m := itest.Interleave(b,
		itest.Op{Name: "xsync", Fn: func() {
			item, err := xsync.Lock(ctx, "bench", "k", 10)
			if err != nil || !item.HasLock() {
				b.Fatal(item, err)
			}
			if ok, err := item.Unlock(ctx, "bench", "k"); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}},
		itest.Op{Name: "raw", Fn: func() {
			n++
			val := strconv.Itoa(n)
			if ok, err := c.SetNX(ctx, "raw:k", val, 10*time.Second).Result(); !ok || err != nil {
				b.Fatal(ok, err)
			}
			if n, err := rawRelease.Run(ctx, c, []string{"raw:k"}, val).Int(); n != 1 || err != nil {
				b.Fatal(n, err)
			}
		}},
		itest.Op{Name: "ping", Fn: func() {
			if err := c.Ping(ctx).Err(); err != nil {
				b.Fatal(err)
			}
		}},
	)
	b.ReportMetric(float64(m["xsync"].Nanoseconds()), "xsync-ns")
	b.ReportMetric(float64(m["raw"].Nanoseconds()), "raw-ns")
	b.ReportMetric(float64(m["ping"].Nanoseconds()), "ping-ns")
	b.ReportMetric(itest.Ratio(m["xsync"], m["raw"]), "xsync/raw")
	b.ReportMetric(itest.Ratio(m["xsync"], m["ping"]), "xsync-RTTs")
	b.ReportMetric(itest.Ratio(m["raw"], m["ping"]), "raw-RTTs")
}

// BenchmarkLockUnlock is one uncontended Lock+Unlock, for allocations.
func BenchmarkLockUnlock(b *testing.B) {
	srv := itest.StartRedis(b)
	b.Cleanup(xsync.Swap("bench", xredis.New(itest.RedisClient(b, srv), xredis.WithPrefix(newPrefix()))))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		item, err := xsync.Lock(ctx, "bench", "k", 10)
		if err != nil || !item.HasLock() {
			b.Fatal(item, err)
		}
		if ok, err := item.Unlock(ctx, "bench", "k"); !ok || err != nil {
			b.Fatal(ok, err)
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
// interval, so that handoffs go through release notification. It reports
// acquisitions per second, the wait from one callback's end to the next
// callback's start (p50, p99), and how often the lock changed owner.
func BenchmarkContended8(b *testing.B) {
	srv := itest.StartRedis(b)
	prefix := newPrefix()
	const workers = 8
	names := make([]string, workers)
	for i := range names {
		names[i] = fmt.Sprint("bench", i)
		b.Cleanup(xsync.Swap(names[i], xredis.New(itest.RedisClient(b, srv), xredis.WithPrefix(prefix))))
	}
	ctx := context.Background()
	var (
		lastEnd   atomic.Int64
		lastOwner atomic.Int32
		changes   atomic.Int64
		mu        sync.Mutex
		waits     []time.Duration
		remaining atomic.Int64
	)
	lastOwner.Store(-1)
	remaining.Store(int64(b.N))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			a := xsync.New(names[w], "k")
			if err := a.SetRetry(1<<30, time.Second); err != nil {
				b.Error(err)
				return
			}
			var local []time.Duration
			cb := func(context.Context) error {
				now := time.Now().UnixNano()
				if prev := lastEnd.Load(); prev != 0 {
					local = append(local, time.Duration(now-prev))
				}
				if lastOwner.Swap(int32(w)) != int32(w) {
					changes.Add(1)
				}
				lastEnd.Store(time.Now().UnixNano())
				return nil
			}
			for remaining.Add(-1) >= 0 {
				if err := a.Run(ctx, cb); err != nil {
					b.Error(err)
					return
				}
			}
			mu.Lock()
			waits = append(waits, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if len(waits) == 0 {
		return
	}
	slices.Sort(waits)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "acq/s")
	b.ReportMetric(float64(waits[len(waits)/2].Microseconds()), "p50-wait-µs")
	b.ReportMetric(float64(waits[len(waits)*99/100].Microseconds()), "p99-wait-µs")
	b.ReportMetric(100*float64(changes.Load())/float64(b.N), "%owner-change")
}
