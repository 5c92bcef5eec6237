package xsync_test

import (
	"context"
	"fmt"
	"time"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend/memory"
)

// The seed's daily check-in: one reward per user per day, however many
// duplicate requests arrive at once.
func Example() {
	// In main: xsync.Register("default", memory.New()), or a Redis or
	// etcd backend built from the application's client. A test swaps a
	// backend in for its own length instead:
	restore := xsync.Swap("default", memory.New())
	defer restore()
	ctx := context.Background()

	checkIn := func(uid int) error {
		key := fmt.Sprintf("checkin:%d:%s", uid, "20261126")
		return xsync.New("default", key).Run(ctx, func(ctx context.Context) error {
			fmt.Println("user", uid, "checked in: +10 points")
			// A duplicate arriving now finds the lock held.
			err := xsync.New("default", key).Run(ctx, func(context.Context) error { return nil })
			fmt.Println("duplicate request:", err)
			return nil
		})
	}
	if err := checkIn(42); err != nil {
		fmt.Println("error:", err)
	}
	// Output:
	// user 42 checked in: +10 points
	// duplicate request: xsync: missing lock: "checkin:42:20261126" is held
}

func ExampleAsync_Run() {
	restore := xsync.Swap("default", memory.New())
	defer restore()
	ctx := context.Background()

	a := xsync.New("default", "order:1001:pay")
	_ = a.SetExp(5 * time.Second)           // size the TTL to the work
	_ = a.SetRetry(3, 200*time.Millisecond) // wait a little for a busy lock
	err := a.Run(ctx, func(ctx context.Context) error {
		item := xsync.ItemFromContext(ctx) // the fencing token
		fmt.Println("paying with fencing token", int64(item))
		return nil
	})
	fmt.Println("err:", err)
	// Output:
	// paying with fencing token 1
	// err: <nil>
}

func ExampleLock() {
	restore := xsync.Swap("default", memory.New())
	defer restore()
	ctx := context.Background()

	item, err := xsync.Lock(ctx, "default", "cron:daily-report", 60)
	if err != nil {
		fmt.Println("backend failed:", err)
		return
	}
	if !item.HasLock() {
		fmt.Println("another replica runs the job")
		return
	}
	defer item.Unlock(ctx, "default", "cron:daily-report")

	second, _ := xsync.Lock(ctx, "default", "cron:daily-report", 60)
	fmt.Println("first has lock:", item.HasLock(), "second has lock:", second.HasLock())
	// Output:
	// first has lock: true second has lock: false
}

func ExampleItem_Unlock() {
	restore := xsync.Swap("default", memory.New())
	defer restore()
	ctx := context.Background()

	item, _ := xsync.Lock(ctx, "default", "k", 10)
	ok, err := item.Unlock(ctx, "default", "k")
	fmt.Println("released:", ok, err)
	ok, err = item.Unlock(ctx, "default", "k")
	fmt.Println("released again:", ok, err)
	ok, err = xsync.Item(0).Unlock(ctx, "default", "k")
	fmt.Println("zero item:", ok, err)
	// Output:
	// released: true <nil>
	// released again: false <nil>
	// zero item: false <nil>
}

func ExampleIsMissingLockErr() {
	restore := xsync.Swap("default", memory.New())
	defer restore()
	ctx := context.Background()

	holder, _ := xsync.Lock(ctx, "default", "checkin:7:20261126", 10)
	defer holder.Unlock(ctx, "default", "checkin:7:20261126")

	err := xsync.New("default", "checkin:7:20261126").Run(ctx, func(context.Context) error { return nil })
	switch {
	case xsync.IsMissingLockErr(err):
		fmt.Println("busy, please retry")
	case err != nil:
		fmt.Println("error:", err)
	}
	// Output:
	// busy, please retry
}
