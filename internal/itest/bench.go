package itest

import (
	"testing"
	"time"
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
