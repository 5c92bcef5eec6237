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

// Contend has workers goroutines take turns on one lock, all of them
// contending throughout: the first acquisitions warm up, until every
// worker has held the lock once (so it has made its first attempt, over
// connections it had to open, and on a backend with a queue it is in
// line) and there were at least workers of them, or until 4 × workers
// (a backend without a queue may pass a worker over for long); the next
// b.N are measured, and then the
// workers still waiting give up (their context is cancelled). lock(w)
// builds worker w's way to take the lock and run work while holding it
// (each worker should have its own client, as a separate process would);
// its release must outlive the context's end (context.WithoutCancel),
// which comes while a worker holds the lock. It reports acquisitions per
// second, the wait from one holder's end to the next holder's start (p50,
// p99), and the share of acquisitions that changed owner (100% is strict
// turn-taking; a worker that barges right back in after releasing lowers
// it), all over the measured acquisitions.
func Contend(b *testing.B, workers int, lock func(w int) func(ctx context.Context, work func()) error) {
	ContendMetered(b, workers, lock, nil)
}

// A Meter measures a cost over Contend's measured acquisitions: Start is
// called as they begin, Stop as they end, with how many there were (both
// while the workers run: what they do around these calls blurs the
// edges by an acquisition or so).
type Meter interface {
	Start()
	Stop(acquisitions int)
}

// ContendMetered is Contend, with m (if not nil) measuring the measured
// acquisitions.
func ContendMetered(b *testing.B, workers int, lock func(w int) func(ctx context.Context, work func()) error, m Meter) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	warm, most := int64(workers), int64(4*workers)
	var (
		count     atomic.Int64 // acquisitions so far
		held      atomic.Int64 // workers that held the lock at least once
		warmAt    atomic.Int64 // the acquisition that ended the warm-up; 0 before
		lastEnd   atomic.Int64 // unix nanos when the previous holder finished
		lastOwner atomic.Int32
		changes   atomic.Int64
		mu        sync.Mutex
		waits     []time.Duration
		start     atomic.Int64 // unix nanos when the measured acquisitions began
		elapsed   atomic.Int64 // how long they took, in nanoseconds
		warmed    = make(chan struct{})
		measured  = make(chan struct{}) // closed at the last measured acquisition
		metered   = make(chan struct{}) // closed once the meter stopped
	)
	lastOwner.Store(-1)
	take := make([]func(context.Context, func()) error, workers)
	for w := range take {
		take[w] = lock(w)
	}
	b.StopTimer()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var local []time.Duration
			first := true
			work := func() {
				if first {
					first = false
					held.Add(1)
				}
				n := count.Add(1)
				now := time.Now()
				at := warmAt.Load()
				switch {
				case at == 0:
					if n >= warm && (held.Load() == int64(workers) || n >= most) && warmAt.CompareAndSwap(0, n) {
						start.Store(now.UnixNano())
						close(warmed)
					}
				case n <= at+int64(b.N):
					local = append(local, time.Duration(now.UnixNano()-lastEnd.Load()))
					if lastOwner.Load() != int32(w) {
						changes.Add(1)
					}
				}
				if at > 0 && n == at+int64(b.N) {
					elapsed.Store(now.UnixNano() - start.Load())
					// The meter stops before the cancel: the waiters left
					// then give up their places (etcd deletes their queue
					// entries, Redis runs their dequeue scripts), which is
					// the benchmark's end, not the acquisitions' cost.
					close(measured)
					select {
					case <-metered:
					case <-ctx.Done():
					}
					cancel()
				}
				lastOwner.Store(int32(w))
				lastEnd.Store(time.Now().UnixNano())
			}
			for ctx.Err() == nil {
				if err := take[w](ctx, work); err != nil && ctx.Err() == nil {
					b.Error(err)
					cancel()
				}
			}
			mu.Lock()
			waits = append(waits, local...)
			mu.Unlock()
		})
	}
	select {
	case <-warmed:
		if m != nil {
			m.Start()
		}
		b.StartTimer()
		select {
		case <-measured:
			b.StopTimer()
			if m != nil {
				m.Stop(b.N)
			}
			close(metered)
		case <-ctx.Done(): // a worker failed
		}
	case <-ctx.Done(): // a worker failed during the warm-up
	}
	wg.Wait()
	d := time.Duration(elapsed.Load())
	if len(waits) == 0 || d <= 0 {
		return
	}
	slices.Sort(waits)
	b.ReportMetric(float64(b.N)/d.Seconds(), "acq/s")
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
