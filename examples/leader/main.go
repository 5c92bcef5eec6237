// Command leader runs a job on exactly one of three replicas: each
// replica runs xsync's Election.Lead, and only the leader's worker writes
// to a store, each write carrying the term's epoch, which the store checks
// (it rejects an epoch smaller than one it has seen). Then the leader
// "crashes": its connection to the lock backend dies, so it can neither
// renew nor resign. Its term ends at its deadline (the worker's context
// ends), and a standby leads once the term's TTL has passed on the server.
// The crashed leader's worker, which stalled and missed its context's end,
// tries one last write: the store rejects it, fenced off by the new epoch.
//
//	go run ./examples/leader                          # in-memory backend
//	go run ./examples/leader -url redis://localhost:6379
//	go run ./examples/leader -url etcd://localhost:2379
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	_ "github.com/xsync-go/xsync/backend/etcd"     // etcd://
	"github.com/xsync-go/xsync/backend/memory"     // mem://
	_ "github.com/xsync-go/xsync/backend/postgres" // postgres://, postgresql://
	_ "github.com/xsync-go/xsync/backend/redis"    // redis://, rediss://
	_ "github.com/xsync-go/xsync/backend/redlock"  // redlock://
)

// Store stands in for the database the leader writes to: it remembers the
// largest epoch it has seen and rejects writes with a smaller one.
type Store struct {
	mu       sync.Mutex
	epoch    xsync.Item
	writes   map[string]int
	rejected int
}

// Write records one write by replica at epoch.
func (s *Store) Write(replica string, epoch xsync.Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch < s.epoch {
		s.rejected++
		return fmt.Errorf("stale epoch %d < %d", epoch, s.epoch)
	}
	s.epoch = epoch
	s.writes[replica]++
	return nil
}

// crashable is a replica's connection to the lock backend: once crashed,
// every call fails, as if the process were gone.
type crashable struct {
	backend.Locker
	crashed atomic.Bool
}

var errCrashed = errors.New("the replica crashed")

func (c *crashable) Acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	if c.crashed.Load() {
		return 0, errCrashed
	}
	return c.Locker.Acquire(ctx, key, ttl)
}

func (c *crashable) Release(ctx context.Context, key string, token int64) (bool, error) {
	if c.crashed.Load() {
		return false, errCrashed
	}
	return c.Locker.Release(ctx, key, token)
}

// Election hands out the backend's election, every call of which fails
// once the replica crashed.
func (c *crashable) Election(name string) backend.Lock {
	return &crashableLock{c, c.Locker.(backend.Electioner).Election(name)}
}

type crashableLock struct {
	c *crashable
	l backend.Lock
}

func (k *crashableLock) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	if k.c.crashed.Load() {
		return 0, errCrashed
	}
	return k.l.Acquire(ctx, r)
}

func (k *crashableLock) Release(ctx context.Context, token int64) (bool, error) {
	if k.c.crashed.Load() {
		return false, errCrashed
	}
	return k.l.Release(ctx, token)
}

func (k *crashableLock) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	if k.c.crashed.Load() {
		return false, errCrashed
	}
	return k.l.(backend.Refresher).Refresh(ctx, token, ttl)
}

func (k *crashableLock) Watch(ctx context.Context, waiter string, keep time.Duration) (<-chan struct{}, func(), error) {
	if k.c.crashed.Load() {
		return nil, nil, errCrashed
	}
	return k.l.(backend.Watcher).Watch(ctx, waiter, keep)
}

func (k *crashableLock) Inspect(ctx context.Context) (backend.Info, error) {
	return k.l.(backend.Inspector).Inspect(ctx)
}

func main() {
	lockURL := flag.String("url", "mem://", "lock backend URL: mem://, redis://host:port, redlock://h1,h2,h3, etcd://h1:2379")
	ttl := flag.Duration("ttl", 2*time.Second, "term TTL")
	grace := 100 * time.Millisecond
	flag.Parse()
	ctx := context.Background()

	// Each replica has a connection of its own; on mem:// they share the
	// one in-memory backend, as replicas share a server.
	var shared backend.Locker
	if *lockURL == "mem://" {
		shared = memory.New()
	}
	name := fmt.Sprintf("nightly-report:%d", time.Now().UnixNano()) // a fresh election per run
	store := &Store{writes: map[string]int{}}
	type replica struct {
		name   string
		conn   *crashable
		cancel context.CancelFunc
		done   chan error
	}
	var (
		replicas  []*replica
		lastMu    sync.Mutex
		last      context.Context // the context of the latest leader's worker
		overlaps  atomic.Int32
		leader    = make(chan *replica, 8) // each new leader, after its first write
		tookOver  = make(chan struct{})    // closed once the next leader wrote
		lateWrite = make(chan struct{})    // closed once the crashed leader tried
	)
	for i := range 3 {
		l := shared
		if l == nil {
			var closer interface{ Close() error }
			var err error
			l, closer, err = xsync.Open(ctx, *lockURL)
			if err != nil {
				log.Fatal(err)
			}
			defer closer.Close()
		}
		r := &replica{name: fmt.Sprintf("replica-%d", i+1), conn: &crashable{Locker: l}, done: make(chan error, 1)}
		rctx, cancel := context.WithCancel(ctx)
		r.cancel = cancel
		replicas = append(replicas, r)
		locks := xsync.NewClient(r.conn, xsync.WithName(r.name))
		go func() {
			r.done <- locks.Election(name).Lead(rctx, func(ctx context.Context) error {
				// The previous leader's context ends when its term's
				// deadline passes, and on the server a standby may lead
				// from that very instant: allow the old worker the few
				// milliseconds it takes to see its context end.
				lastMu.Lock()
				prev := last
				last = ctx
				lastMu.Unlock()
				if prev != nil {
					select {
					case <-prev.Done():
					case <-time.After(grace):
						overlaps.Add(1)
					}
				}
				epoch := xsync.ItemFromContext(ctx)
				fmt.Printf("%s leads (epoch %d)\n", r.name, epoch)
				announced := false
				for {
					if err := store.Write(r.name, epoch); err != nil {
						fmt.Printf("%s: write rejected: %v\n", r.name, err)
					}
					if !announced {
						leader <- r // after its first write
						announced = true
					}
					select {
					case <-ctx.Done():
						if r.conn.crashed.Load() {
							// A stalled process that missed its context's end
							// writes once more, late: fencing stops it.
							<-tookOver
							err := store.Write(r.name, epoch)
							fmt.Printf("%s (crashed) writes late with epoch %d: %v\n", r.name, epoch, errOr(err))
							close(lateWrite)
						}
						return nil
					case <-time.After(50 * time.Millisecond):
					}
				}
			}, xsync.WithTTL(*ttl), xsync.WithOwner(r.name))
		}()
	}

	first := <-leader
	time.Sleep(300 * time.Millisecond) // the leader works a while
	fmt.Printf("%s crashes\n", first.name)
	crashed := time.Now()
	first.conn.crashed.Store(true)
	next := <-leader
	took := time.Since(crashed)
	fmt.Printf("%s took over %v after the crash (TTL %v)\n", next.name, took.Round(time.Millisecond), *ttl)
	close(tookOver)
	<-lateWrite

	for _, r := range replicas {
		r.cancel()
	}
	for _, r := range replicas {
		if err := <-r.done; err != nil && !errors.Is(err, context.Canceled) {
			log.Printf("%s: %v", r.name, err)
		}
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	fmt.Printf("writes: %v; stale writes rejected: %d; leaders overlapping by more than %v: %d\n", store.writes, store.rejected, grace, overlaps.Load())
	fenced := store.rejected > 0 || strings.HasPrefix(*lockURL, "redlock:") // Redlock's epochs do not fence
	if next == first || overlaps.Load() != 0 || !fenced || took > *ttl+3*time.Second {
		fmt.Println("FAIL: want one leader at a time, a standby taking over within the TTL and a few seconds, and the stale write rejected")
		os.Exit(1)
	}
	fmt.Println("OK: one leader at a time; the standby took over; the crashed leader's late write was fenced off")
}

func errOr(err error) string {
	if err == nil {
		return "accepted"
	}
	return "rejected: " + err.Error()
}
