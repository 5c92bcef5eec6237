package xsync_test

import (
	"context"
	"testing"
	"time"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend/memory"
	"github.com/xsync-go/xsync/internal/benchutil"
)

// BenchmarkLockUnlock is one uncontended Lock and Unlock through the core
// on the memory backend.
func BenchmarkLockUnlock(b *testing.B) {
	b.Cleanup(xsync.Swap("bench", memory.New()))
	b.ReportAllocs()
	op := benchutil.LockUnlock(b, "bench", "k")
	for b.Loop() {
		op()
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
// backend's release notification (see benchutil.Contend for the metrics).
func BenchmarkContended8(b *testing.B) {
	b.Cleanup(xsync.Swap("bench", memory.New()))
	benchutil.Contend(b, 8, func(int) func(context.Context, func()) error {
		a := xsync.New("bench", "k")
		if err := a.SetRetry(1<<30, time.Second); err != nil {
			b.Fatal(err)
		}
		return func(ctx context.Context, work func()) error {
			return a.Run(ctx, func(context.Context) error { work(); return nil })
		}
	})
}
