// Command otel runs contended locks on the memory backend with the
// OpenTelemetry observer and prints the metrics and spans with the SDK's
// stdout exporters, and the slog observer's warnings on stderr. It is a
// module of its own, so that the library's module does not depend on the
// OpenTelemetry SDK.
//
//	cd examples/otel && go run .
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend/memory"
	"github.com/xsync-go/xsync/xotel"
	"github.com/xsync-go/xsync/xslog"
)

func main() {
	workers := flag.Int("workers", 3, "goroutines contending for the lock")
	runs := flag.Int("runs", 2, "Runs per worker")
	spans := flag.Bool("spans", true, "print every span too")
	flag.Parse()
	ctx := context.Background()

	metricExp, err := stdoutmetric.New(stdoutmetric.WithPrettyPrint())
	if err != nil {
		log.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	otel.SetMeterProvider(mp)
	var tpOpts []sdktrace.TracerProviderOption
	if *spans {
		traceExp, err := stdouttrace.New(stdouttrace.WithPrettyPrint())
		if err != nil {
			log.Fatal(err)
		}
		tpOpts = append(tpOpts, sdktrace.WithSyncer(traceExp))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)
	otel.SetTracerProvider(tp)

	xsync.Register("default", memory.New())

	// The lines an application adds: OpenTelemetry (the global providers),
	// and warnings and errors (lost locks, failed releases) through slog.
	o, err := xotel.New()
	if err != nil {
		log.Fatal(err)
	}
	logs := xslog.New(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	xsync.SetObserver("", xsync.Tee(o, logs))

	var wg sync.WaitGroup
	var mu sync.Mutex
	results := map[string]int{}
	for range *workers {
		wg.Go(func() {
			for range *runs {
				a := xsync.New("default", "report:daily")
				_ = a.SetRetry(100, 50*time.Millisecond)
				err := a.Run(ctx, func(context.Context) error {
					time.Sleep(5 * time.Millisecond) // the work
					return nil
				})
				mu.Lock()
				switch {
				case err == nil:
					results["ran"]++
				case errors.Is(err, xsync.ErrMissingLock):
					results["busy"]++
				default:
					results["failed"]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	fmt.Printf("runs: %v\n", results)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	if err := metricExp.Export(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	_ = tp.Shutdown(ctx)
	_ = mp.Shutdown(ctx)
}
