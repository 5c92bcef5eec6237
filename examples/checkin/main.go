// Command checkin is the daily check-in: a user may check in once a
// day and is awarded points for it. Many duplicate requests for the same
// user and day arrive at once (double clicks, two devices, client
// retries); exactly one of them must award the points.
//
// The lock makes the read-check-write on the ledger atomic across
// requests: inside it, a request checks whether the user already checked
// in today and, if not, records the check-in and awards the points. The
// ledger also keeps the largest fencing token it has seen and rejects
// writes carrying a smaller one, so a request whose lock expired while it
// was stalled cannot write late.
//
//	go run ./examples/checkin                              # in-memory backend
//	go run ./examples/checkin -url redis://localhost:6379  # one Redis
//	go run ./examples/checkin -url redlock://r1:6379,r2:6379,r3:6379
//	go run ./examples/checkin -url etcd://localhost:2379
//	go run ./examples/checkin -requests 500 -user 7
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
	_ "github.com/xsync-go/xsync/backend/etcd"     // etcd://
	_ "github.com/xsync-go/xsync/backend/memory"   // mem://
	_ "github.com/xsync-go/xsync/backend/postgres" // postgres://, postgresql://
	_ "github.com/xsync-go/xsync/backend/redis"    // redis://, rediss://
	_ "github.com/xsync-go/xsync/backend/redlock"  // redlock://
)

func main() {
	lockURL := flag.String("url", "mem://", "lock backend URL: mem://, redis://host:port, rediss://..., redlock://h1,h2,h3, etcd://h1:2379,...")
	requests := flag.Int("requests", 100, "concurrent duplicate check-in requests")
	user := flag.Int("user", 42, "user id")
	flag.Parse()

	ctx := context.Background()
	l, closer, err := xsync.Open(ctx, *lockURL)
	if err != nil {
		log.Fatal(err)
	}
	defer closer.Close()
	locks := xsync.NewClient(l) // a service keeps one, as it keeps a *sql.DB

	ledger := newLedger()
	day := time.Now().Format("20060102")
	// A fresh key per run: a shared server remembers earlier runs' locks.
	run := time.Now().UnixNano()

	var awarded, already, busy, failed atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range *requests {
		wg.Go(func() {
			<-start
			switch err := checkIn(ctx, locks, ledger, *user, fmt.Sprintf("%s:%d", day, run)); {
			case err == nil:
				awarded.Add(1)
			case errors.Is(err, errAlreadyCheckedIn):
				already.Add(1)
			case xsync.IsMissingLockErr(err):
				busy.Add(1) // a concurrent duplicate holds the lock
			default:
				failed.Add(1)
				log.Print(err)
			}
		})
	}
	close(start)
	wg.Wait()

	fmt.Printf("%d concurrent check-in requests for user %d on %s (backend %s):\n", *requests, *user, day, strings.SplitN(*lockURL, ":", 2)[0])
	fmt.Printf("  awarded:                    %d\n", awarded.Load())
	fmt.Printf("  rejected, lock busy:        %d\n", busy.Load())
	fmt.Printf("  rejected, already checked:  %d\n", already.Load())
	fmt.Printf("  failed:                     %d\n", failed.Load())
	fmt.Printf("user %d has %d points\n", *user, ledger.points(*user))
	if awarded.Load() != 1 || failed.Load() != 0 {
		fmt.Println("FAIL: want exactly one award and no failure")
		closer.Close()
		os.Exit(1)
	}
	fmt.Println("OK: exactly one award")
}

var errAlreadyCheckedIn = errors.New("already checked in today")

// checkIn is the application code: lock the user's day, then check and
// write under the lock, passing the fencing token with the write.
func checkIn(ctx context.Context, locks *xsync.Client, l *ledger, uid int, day string) error {
	key := fmt.Sprintf("checkin:%d:%s", uid, day)
	return locks.Run(ctx, key, func(ctx context.Context) error {
		if l.checkedIn(uid, day) {
			return errAlreadyCheckedIn
		}
		return l.award(ctx, uid, day, 10, int64(xsync.ItemFromContext(ctx)))
	},
		xsync.WithTTL(3*time.Second), // the request's own timeout
		// Wait a little for a concurrent duplicate to finish: it then
		// finds the check-in done. (On Redlock this also breaks split
		// votes, where simultaneous requests each got a minority of the
		// nodes.)
		xsync.WithWait(500*time.Millisecond), xsync.WithRetryInterval(100*time.Millisecond))
}

// ledger stands in for the application's database.
type ledger struct {
	mu      sync.Mutex
	fence   map[string]int64 // largest fencing token seen per lock key
	checks  map[string]bool
	balance map[int]int
}

func newLedger() *ledger {
	return &ledger{fence: map[string]int64{}, checks: map[string]bool{}, balance: map[int]int{}}
}

func (l *ledger) checkedIn(uid int, day string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checks[fmt.Sprint(uid, day)]
}

// award records the check-in unless a newer lock holder has written
// already: in SQL, UPDATE ... WHERE fence < $token.
func (l *ledger) award(ctx context.Context, uid int, day string, points int, token int64) error {
	if err := ctx.Err(); err != nil { // the lock expired or was lost
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := fmt.Sprint(uid, day)
	if token <= l.fence[k] {
		return fmt.Errorf("stale fencing token %d (seen %d)", token, l.fence[k])
	}
	l.fence[k] = token
	l.checks[k] = true
	l.balance[uid] += points
	return nil
}

func (l *ledger) points(uid int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.balance[uid]
}
