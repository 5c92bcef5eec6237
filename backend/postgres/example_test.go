package postgres_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend/postgres"
)

// A payment is written only while its order's lock is held: a holder that
// stalled past its TTL (and lost the lock) gets ErrNotHeld inside its own
// transaction, which then writes nothing.
func ExampleLocker_Guard() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@db/app")
	if err != nil {
		log.Fatal(err)
	}
	if err := postgres.Migrate(ctx, pool); err != nil { // once, at deploy
		log.Fatal(err)
	}
	locker := postgres.New(pool)
	locks := xsync.NewClient(locker)

	lease, err := locks.Acquire(ctx, "order:42", xsync.WithTTL(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Release(ctx)
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := locker.Guard(ctx, tx, "order:42", int64(lease.Token())); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE orders SET paid = true WHERE id = 42`)
		return err
	})
	if errors.Is(err, postgres.ErrNotHeld) {
		log.Print("lost the lock before writing: nothing written")
	}
}
