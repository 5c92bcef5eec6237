// Command semaphore limits the concurrent calls to a slow service across
// several workers: the "at most N requests at once to a rate-limited
// partner API" case. Each worker is a replica with its own connection to
// the lock backend; each call takes a permit of one semaphore (xsync's
// Client.Semaphore), waits for one when all are taken, and gives it back
// when the call returns. The service counts the calls in flight and
// reports the most it saw: never more than the limit.
//
//	go run ./examples/semaphore                                  # in-memory backend
//	go run ./examples/semaphore -url redis://localhost:6379 -workers 8 -limit 3
//	go run ./examples/semaphore -url etcd://localhost:2379
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xsync-go/xsync"
	_ "github.com/xsync-go/xsync/backend/etcd"     // etcd://
	_ "github.com/xsync-go/xsync/backend/memory"   // mem://
	_ "github.com/xsync-go/xsync/backend/postgres" // postgres://, postgresql://
	_ "github.com/xsync-go/xsync/backend/redis"    // redis://, rediss://
)

// Service is a slow service that may be called Limit times at once.
type Service struct {
	Limit   int
	Latency time.Duration

	inFlight, most, over atomic.Int32
	calls                atomic.Int64
}

// Call is one call to the service.
func (s *Service) Call(ctx context.Context) error {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	if n > int32(s.Limit) {
		s.over.Add(1) // the partner would answer 429 Too Many Requests
	}
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	s.calls.Add(1)
	select {
	case <-time.After(s.Latency):
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Limited calls the service holding a permit of the semaphore "partner-api"
// with the service's limit: at most Limit calls at once, over every client
// of the backend. A caller waits up to a minute for a permit.
func Limited(ctx context.Context, locks *xsync.Client, svc *Service) error {
	return locks.Semaphore("partner-api", svc.Limit).Run(ctx, svc.Call,
		xsync.WithTTL(10*svc.Latency+time.Second), // longer than a call takes
		xsync.WithWait(time.Minute))
}

func main() {
	url := flag.String("url", "mem://", "lock backend URL (mem://, redis://, etcd://; not redlock://, which has no semaphore)")
	workers := flag.Int("workers", 6, "workers (replicas), each with its own connection")
	calls := flag.Int("calls", 10, "calls per worker")
	limit := flag.Int("limit", 3, "calls the service takes at once")
	latency := flag.Duration("latency", 50*time.Millisecond, "how long a call takes")
	flag.Parse()
	ctx := context.Background()
	svc := &Service{Limit: *limit, Latency: *latency}

	// The in-memory backend lives in one process: every worker must share
	// one Locker. Network backends get one connection per worker.
	shared := *url == "mem://"
	var one xsync.Locker
	if shared {
		l, closer, err := xsync.Open(ctx, *url)
		if err != nil {
			log.Fatal(err)
		}
		defer closer.Close()
		one = l
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, *workers)
	for w := range *workers {
		l := one
		if !shared {
			var closer interface{ Close() error }
			var err error
			l, closer, err = xsync.Open(ctx, *url)
			if err != nil {
				log.Fatal(err)
			}
			defer closer.Close()
		}
		locks := xsync.NewClient(l, xsync.WithName(fmt.Sprint("worker-", w)))
		wg.Go(func() {
			for range *calls {
				if err := Limited(ctx, locks, svc); err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		log.Fatal(err)
	}
	took := time.Since(start)
	fmt.Printf("%d calls by %d workers in %v: at most %d at once (limit %d); %.1f calls/s, %.1f/s at the limit's pace\n",
		svc.calls.Load(), *workers, took.Round(time.Millisecond), svc.most.Load(), *limit,
		float64(svc.calls.Load())/took.Seconds(), float64(*limit)/latency.Seconds())
	if svc.over.Load() > 0 {
		log.Fatalf("%d calls over the limit", svc.over.Load())
	}
	if svc.calls.Load() != int64(*workers**calls) {
		log.Fatalf("%d calls made; want %d", svc.calls.Load(), *workers**calls)
	}
}
