package xsync_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend/memory"
)

// BenchmarkLockUnlock is one uncontended Lock and Unlock through the core
// on the memory backend.
func BenchmarkLockUnlock(b *testing.B) {
	b.Cleanup(xsync.Swap("bench", memory.New()))
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

// BenchmarkRun is one uncontended Run with an empty callback on the memory
// backend. Its cost minus BenchmarkLockUnlock's is Run's overhead.
func BenchmarkRun(b *testing.B) {
	b.Cleanup(xsync.Swap("bench", memory.New()))
	ctx := context.Background()
	a := xsync.New("bench", "k")
	cb := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Run(ctx, cb); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRunOverhead alternates one Run with one Lock+Unlock, op by op,
// timing each, so both see the same machine state; it reports Run's cost
// over Lock+Unlock. (The two clock reads per op cost the same on both
// sides and cancel out.)
func BenchmarkRunOverhead(b *testing.B) {
	b.Cleanup(xsync.Swap("bench", memory.New()))
	ctx := context.Background()
	a := xsync.New("bench", "k")
	cb := func(context.Context) error { return nil }
	var run, pair time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := a.Run(ctx, cb); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		item, err := xsync.Lock(ctx, "bench", "k", 10)
		if err != nil || !item.HasLock() {
			b.Fatal(item, err)
		}
		if ok, err := item.Unlock(ctx, "bench", "k"); !ok || err != nil {
			b.Fatal(ok, err)
		}
		t2 := time.Now()
		run += t1.Sub(t0)
		pair += t2.Sub(t1)
	}
	b.ReportMetric(float64(run.Nanoseconds())/float64(b.N), "run-ns")
	b.ReportMetric(float64(pair.Nanoseconds())/float64(b.N), "lock+unlock-ns")
	b.ReportMetric(float64((run-pair).Nanoseconds())/float64(b.N), "overhead-ns")
}

// BenchmarkRunAutoExtend is BenchmarkRun with auto-extension on: one
// renewal goroutine and its timers per Run.
func BenchmarkRunAutoExtend(b *testing.B) {
	b.Cleanup(xsync.Swap("bench", memory.New()))
	ctx := context.Background()
	a := xsync.New("bench", "k")
	if err := a.SetAutoExtend(true, 0); err != nil {
		b.Fatal(err)
	}
	cb := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Run(ctx, cb); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkContended8 runs 8 goroutines that take turns on one key with
// Run and a long retry interval, so every handoff goes through the
// backend's release notification. It reports the wait from one holder's
// callback end to the next holder's callback start (p50 and p99), and the
// share of acquisitions that changed owner.
func BenchmarkContended8(b *testing.B) {
	b.Cleanup(xsync.Swap("bench", memory.New()))
	ctx := context.Background()
	const workers = 8
	var (
		lastEnd   atomic.Int64 // unix nanos when the previous callback ended
		lastOwner atomic.Int32
		changes   atomic.Int64
		mu        sync.Mutex
		waits     []time.Duration
		remaining atomic.Int64
	)
	remaining.Store(int64(b.N))
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			a := xsync.New("bench", "k")
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
	b.StopTimer()
	if len(waits) == 0 {
		return
	}
	slices.Sort(waits)
	b.ReportMetric(float64(waits[len(waits)/2].Nanoseconds()), "p50-wait-ns")
	b.ReportMetric(float64(waits[len(waits)*99/100].Nanoseconds()), "p99-wait-ns")
	b.ReportMetric(100*float64(changes.Load())/float64(b.N), "%owner-change")
}
