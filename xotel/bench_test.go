package xotel_test

import (
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend/memory"
	xredis "github.com/xsync-go/xsync/backend/redis"
	"github.com/xsync-go/xsync/internal/benchutil"
	"github.com/xsync-go/xsync/internal/itest"
	"github.com/xsync-go/xsync/xotel"
)

func TestMain(m *testing.M) { itest.Main(m) }

// benchPaired alternates, op by op on the same backend, Lock+Unlock with no
// observer and with the OpenTelemetry observer (the SDK's meter provider
// with a manual reader, a tracer provider sampling everything), and reports
// the ratio.
func benchPaired(b *testing.B, l xsync.Locker) {
	b.Cleanup(xsync.Swap("bench-plain", l))
	b.Cleanup(xsync.Swap("bench-otel", l))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tp := sdktrace.NewTracerProvider()
	o, err := xotel.New(xotel.WithMeterProvider(mp), xotel.WithTracerProvider(tp))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(xsync.SetObserver("bench-otel", o))
	m := benchutil.Interleave(b,
		benchutil.Op{Name: "plain", Fn: benchutil.LockUnlock(b, "bench-plain", "k1")},
		benchutil.Op{Name: "otel", Fn: benchutil.LockUnlock(b, "bench-otel", "k2")},
	)
	b.ReportMetric(float64(m["plain"].Nanoseconds()), "plain-ns")
	b.ReportMetric(float64(m["otel"].Nanoseconds()), "otel-ns")
	b.ReportMetric(benchutil.Ratio(m["otel"], m["plain"]), "otel/plain")
}

func BenchmarkPairedMemory(b *testing.B) { benchPaired(b, memory.New()) }

func BenchmarkPairedRedis(b *testing.B) {
	benchPaired(b, xredis.New(itest.RedisClient(b, itest.StartRedis(b))))
}
