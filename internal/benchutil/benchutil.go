// Package benchutil holds what the module's benchmarks share: an
// interleaving loop for ratios taken side by side, and the measurement of
// several workers taking turns on one lock.
package benchutil

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xsync-go/xsync"
)

// Op is one operation of an interleaved benchmark.
type Op struct {
	Name string
	Fn   func()
}

// Interleave runs every op once per iteration of b.Loop, rotating which
// op goes first, so that each sees the same machine state and none always
// follows the same neighbour (on a noisy 2-core machine, separate
// benchmarks, or a fixed order, skew ratios by several percent). It
// returns each op's mean time.
func Interleave(b *testing.B, ops ...Op) map[string]time.Duration {
	sum := make([]time.Duration, len(ops))
	n := 0
	for b.Loop() {
		for j := range ops {
			k := (n + j) % len(ops)
			t0 := time.Now()
			ops[k].Fn()
			sum[k] += time.Since(t0)
		}
		n++
	}
	out := make(map[string]time.Duration, len(ops))
	for i, op := range ops {
		out[op.Name] = sum[i] / time.Duration(max(n, 1))
	}
	return out
}

// Ratio is a/b as a float, for b.ReportMetric.
func Ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// Contend has workers goroutines take turns on one lock until b.N
// acquisitions in all. lock(w) builds worker w's way to take the lock and
// run work while holding it (each worker should have its own client, as a
// separate process would). It reports acquisitions per second, the wait
// from one holder's end to the next holder's start (p50, p99), and the
// share of acquisitions that changed owner (100% is strict turn-taking; a
// worker that barges right back in after releasing lowers it).
func Contend(b *testing.B, workers int, lock func(w int) func(ctx context.Context, work func()) error) {
	ctx := context.Background()
	var (
		lastEnd   atomic.Int64 // unix nanos when the previous holder finished
		lastOwner atomic.Int32
		changes   atomic.Int64
		mu        sync.Mutex
		waits     []time.Duration
		remaining atomic.Int64
	)
	lastOwner.Store(-1)
	take := make([]func(context.Context, func()) error, workers)
	for w := range take {
		take[w] = lock(w)
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
				if err := take[w](ctx, work); err != nil {
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

// LockUnlock returns an op that takes key on the backend registered as
// name with xsync.Lock and releases it, failing the benchmark if either
// does not succeed.
func LockUnlock(b *testing.B, name, key string) func() {
	ctx := context.Background()
	return func() {
		item, err := xsync.Lock(ctx, name, key, 10)
		if err != nil || !item.HasLock() {
			b.Fatal(item, err)
		}
		if ok, err := item.Unlock(ctx, name, key); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
