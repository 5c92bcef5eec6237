// Command payments is a service that takes at most one payment per order,
// built on the handle API: the service gets an *xsync.Client (injected,
// as a *sql.DB is), not a backend name. Its tests (payments_test.go) run
// in parallel on the memory backend with a manual clock: they make a lock
// expire in the middle of a charge, and a waiter take over an abandoned
// lock, without sleeping.
//
//	go run ./examples/payments                               # in-memory backend
//	go run ./examples/payments -url redis://localhost:6379
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/xsync-go/xsync"
	_ "github.com/xsync-go/xsync/backend/etcd"     // etcd://
	_ "github.com/xsync-go/xsync/backend/memory"   // mem://
	_ "github.com/xsync-go/xsync/backend/postgres" // postgres://, postgresql://
	_ "github.com/xsync-go/xsync/backend/redis"    // redis://, rediss://
	_ "github.com/xsync-go/xsync/backend/redlock"  // redlock://
)

// ErrAlreadyPaid means the order has been paid.
var ErrAlreadyPaid = errors.New("payments: order already paid")

// Payments takes payments, at most one per order, across replicas.
type Payments struct {
	locks *xsync.Client

	mu    sync.Mutex
	paid  map[string]bool
	fence map[string]xsync.Item // per order, the largest token a write carried
}

// NewPayments returns a service that locks with locks.
func NewPayments(locks *xsync.Client) *Payments {
	return &Payments{locks: locks, paid: map[string]bool{}, fence: map[string]xsync.Item{}}
}

// Pay charges the order once: a second Pay for the same order gets
// ErrAlreadyPaid, a concurrent one xsync.ErrMissingLock (busy: retry
// later). If the lock is lost during the charge, Pay returns an error
// matching xsync.ErrLockLost and records nothing.
func (p *Payments) Pay(ctx context.Context, order string, charge func(ctx context.Context) error) error {
	return p.locks.Run(ctx, "pay:"+order, func(ctx context.Context) error {
		token := xsync.ItemFromContext(ctx)
		if p.isPaid(order) {
			return ErrAlreadyPaid
		}
		if err := charge(ctx); err != nil {
			return err
		}
		if err := context.Cause(ctx); err != nil {
			return err // lost during the charge: do not record under a lock we no longer hold
		}
		return p.record(order, token)
	}, xsync.WithTTL(30*time.Second), xsync.WithOwner("payments"))
}

func (p *Payments) isPaid(order string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paid[order]
}

// record writes the payment, fenced: a write with an older token than one
// already seen is refused (as UPDATE ... WHERE fence < $token would).
func (p *Payments) record(order string, token xsync.Item) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if token < p.fence[order] {
		return fmt.Errorf("payments: stale token %d for order %s", token, order)
	}
	p.fence[order] = token
	p.paid[order] = true
	return nil
}

func main() {
	url := flag.String("url", "mem://", "lock backend URL")
	flag.Parse()
	ctx := context.Background()
	l, closer, err := xsync.Open(ctx, *url)
	if err != nil {
		log.Fatal(err)
	}
	defer closer.Close()
	p := NewPayments(xsync.NewClient(l, xsync.WithName("payments")))
	var wg sync.WaitGroup
	results := make([]error, 5)
	for i := range results {
		wg.Go(func() {
			results[i] = p.Pay(ctx, "order-1", func(context.Context) error {
				time.Sleep(50 * time.Millisecond) // the payment provider
				return nil
			})
		})
	}
	wg.Wait()
	paid := 0
	for i, err := range results {
		switch {
		case err == nil:
			paid++
			fmt.Printf("request %d: paid\n", i)
		case xsync.IsMissingLockErr(err):
			fmt.Printf("request %d: busy (another request holds the order)\n", i)
		default:
			fmt.Printf("request %d: %v\n", i, err)
		}
	}
	fmt.Printf("payments taken: %d\n", paid)
	if paid != 1 {
		log.Fatalf("want exactly one payment, got %d", paid)
	}
}
