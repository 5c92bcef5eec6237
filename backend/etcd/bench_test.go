package etcd_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/xsync-go/xsync"
	xetcd "github.com/xsync-go/xsync/backend/etcd"
	"github.com/xsync-go/xsync/internal/itest"
)

// BenchmarkPaired interleaves, op by op on one server (itest.Interleave): xsync's Lock+Unlock;
// one Put (the unit: a write round trip); concurrency.Mutex Lock+Unlock on
// one shared session; and concurrency.Mutex with a new session per lock
// (what a per-lock TTL costs there). It reports each mean in Puts.
func BenchmarkPaired(b *testing.B) {
	srv := itest.StartEtcd(b)
	c := itest.EtcdClient(b, srv)
	b.Cleanup(xsync.Swap("bench", xetcd.New(c, xetcd.WithPrefix(newPrefix()))))
	ctx := context.Background()
	shared, err := concurrency.NewSession(c, concurrency.WithTTL(10))
	if err != nil {
		b.Fatal(err)
	}
	defer shared.Close()
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
		itest.Op{Name: "put", Fn: func() {
			if _, err := c.Put(ctx, "bench-put", "v"); err != nil {
				b.Fatal(err)
			}
		}},
		itest.Op{Name: "mutex-shared", Fn: func() {
			m := concurrency.NewMutex(shared, "bench-mutex-shared")
			if err := m.Lock(ctx); err != nil {
				b.Fatal(err)
			}
			if err := m.Unlock(ctx); err != nil {
				b.Fatal(err)
			}
		}},
		itest.Op{Name: "mutex-new-session", Fn: func() {
			s, err := concurrency.NewSession(c, concurrency.WithTTL(10))
			if err != nil {
				b.Fatal(err)
			}
			m := concurrency.NewMutex(s, "bench-mutex-new")
			if err := m.Lock(ctx); err != nil {
				b.Fatal(err)
			}
			if err := m.Unlock(ctx); err != nil {
				b.Fatal(err)
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
		}},
	)
	b.ReportMetric(float64(m["put"].Nanoseconds()), "put-ns")
	b.ReportMetric(itest.Ratio(m["xsync"], m["put"]), "xsync-puts")
	b.ReportMetric(itest.Ratio(m["mutex-shared"], m["put"]), "mutex-shared-puts")
	b.ReportMetric(itest.Ratio(m["mutex-new-session"], m["put"]), "mutex-new-session-puts")
}

// contend runs 8 workers, each with its own client, taking turns on one
// key through lockOnce until b.N acquisitions, and reports acquisitions/s,
// the wait from one holder's end to the next holder's start, and how often
// the owner changed.
func contend(b *testing.B, srv *itest.Server, setup func(c *clientv3.Client) func(ctx context.Context, work func()) error) {
	const workers = 8
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
	lockers := make([]func(context.Context, func()) error, workers)
	for i := range lockers {
		lockers[i] = setup(itest.EtcdClient(b, srv))
	}
	remaining.Store(int64(b.N))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var local []time.Duration
			work := func() {
				now := time.Now().UnixNano()
				if prev := lastEnd.Load(); prev != 0 {
					local = append(local, time.Duration(now-prev))
				}
				if lastOwner.Swap(int32(w)) != int32(w) {
					changes.Add(1)
				}
				lastEnd.Store(time.Now().UnixNano())
			}
			for remaining.Add(-1) >= 0 {
				if err := lockers[w](ctx, work); err != nil {
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

// BenchmarkContended8 compares xsync and concurrency.Mutex with 8 clients
// on one key, on the same server.
func BenchmarkContended8(b *testing.B) {
	srv := itest.StartEtcd(b)
	prefix := newPrefix()
	var ids atomic.Int64
	b.Run("xsync", func(b *testing.B) {
		contend(b, srv, func(c *clientv3.Client) func(context.Context, func()) error {
			name := fmt.Sprint("bench", ids.Add(1))
			b.Cleanup(xsync.Swap(name, xetcd.New(c, xetcd.WithPrefix(prefix))))
			a := xsync.New(name, "k")
			if err := a.SetRetry(1<<30, time.Second); err != nil {
				b.Fatal(err)
			}
			return func(ctx context.Context, work func()) error {
				return a.Run(ctx, func(context.Context) error { work(); return nil })
			}
		})
	})
	b.Run("concurrency.Mutex", func(b *testing.B) {
		contend(b, srv, func(c *clientv3.Client) func(context.Context, func()) error {
			s, err := concurrency.NewSession(c, concurrency.WithTTL(10))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			m := concurrency.NewMutex(s, "bench-mutex")
			return func(ctx context.Context, work func()) error {
				if err := m.Lock(ctx); err != nil {
					return err
				}
				work()
				return m.Unlock(ctx)
			}
		})
	})
}
