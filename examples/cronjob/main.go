// Command cronjob runs a periodic job at most once per period across
// replicas: the "only one replica runs this cron job" case. Every replica
// ticks on its own schedule (their clocks and start times differ by a few
// hundred milliseconds); each tick tries the job's lock without waiting,
// and the lock is kept until at least most of a period after it was
// taken (xsync.WithHoldAtLeast, ShedLock's lockAtLeastFor), even though
// the job itself is quick. Without it, a replica that ticks after the
// first one has finished would run the job again.
//
//	go run ./examples/cronjob                       # two replicas, in-memory backend
//	go run ./examples/cronjob -url redis://localhost:6379 -skew 300ms
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
	_ "github.com/xsync-go/xsync/backend/redlock"  // redlock://
)

// Job is a periodic job guarded by a lock.
type Job struct {
	Name   string
	Period time.Duration
	Run    func(ctx context.Context) error
}

// Tick is what a replica does on each tick of its schedule: run the job
// unless another replica has run it during this period. It reports
// whether this replica ran it.
func Tick(ctx context.Context, locks *xsync.Client, job Job) (bool, error) {
	err := locks.Run(ctx, "cron:"+job.Name, job.Run,
		xsync.WithTTL(job.Period/2),         // longer than the job may take
		xsync.WithHoldAtLeast(job.Period/2), // keeps the other replicas' ticks of this period out
	)
	switch {
	case xsync.IsMissingLockErr(err):
		return false, nil // another replica has it, or had it this period
	case err != nil:
		return false, err
	}
	return true, nil
}

func main() {
	url := flag.String("url", "mem://", "lock backend URL")
	period := flag.Duration("period", 2*time.Second, "the job's period")
	periods := flag.Int("periods", 3, "how many periods to run")
	skew := flag.Duration("skew", 300*time.Millisecond, "how much later the second replica ticks")
	flag.Parse()
	ctx := context.Background()
	l, closer, err := xsync.Open(ctx, *url)
	if err != nil {
		log.Fatal(err)
	}
	defer closer.Close()
	var runs atomic.Int32
	job := Job{Name: "daily-report", Period: *period, Run: func(context.Context) error {
		runs.Add(1)
		return nil
	}}
	var wg sync.WaitGroup
	for r, offset := range []time.Duration{0, *skew} {
		locks := xsync.NewClient(l, xsync.WithName(fmt.Sprint("replica-", r))) // each replica its own client
		wg.Go(func() {
			time.Sleep(offset) // this replica's schedule starts later
			for p := range *periods {
				ran, err := Tick(ctx, locks, job)
				switch {
				case err != nil:
					log.Printf("replica %d, period %d: %v", r, p, err)
				case ran:
					fmt.Printf("replica %d ran the job in period %d\n", r, p)
				}
				time.Sleep(*period)
			}
		})
	}
	wg.Wait()
	fmt.Printf("runs: %d in %d periods\n", runs.Load(), *periods)
	if int(runs.Load()) != *periods {
		log.Fatalf("want one run per period")
	}
}
