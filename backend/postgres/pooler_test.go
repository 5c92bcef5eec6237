package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	xpg "github.com/xsync-go/xsync/backend/postgres"
	"github.com/xsync-go/xsync/conformance"
	"github.com/xsync-go/xsync/internal/itest"
)

// bouncerQuery is what a pgx client behind PgBouncer in transaction mode
// needs (PgBouncer before 1.21 keeps no prepared statements across
// transactions): statements described and run unnamed.
const bouncerQuery = "default_query_exec_mode=exec"

// The whole suite passes through PgBouncer in transaction mode with a pool
// of 4 server connections shared by every subtest's clients: every
// operation is one autocommit statement (a multi-key acquire one
// transaction), so nothing needs a session. LISTEN, which a pooled
// connection does not keep, goes straight to the server
// (WithListenConfig).
func conformanceThroughPgBouncer(t *testing.T, srv *itest.Postgres, admin *pgxpool.Pool, bouncer *itest.PgBouncer) {
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		return &bouncerHarness{harness{srv: srv, admin: admin, prefix: newPrefix()}, bouncer}
	})
}

type bouncerHarness struct {
	harness
	bouncer *itest.PgBouncer
}

func (h *bouncerHarness) Locker(t *testing.T) backend.Locker {
	return newLocker(t, h.bouncer.URL("postgres", itest.PostgresPassword, bouncerQuery), xpg.WithPrefix(h.prefix), h.listen(t))
}

func (h *bouncerHarness) listen(t *testing.T) xpg.Option {
	cfg, err := pgx.ParseConfig(h.srv.AdminURL())
	require.NoError(t, err)
	return xpg.WithListenConfig(cfg)
}

func (h *bouncerHarness) Faulty(t *testing.T) (backend.Locker, conformance.Fault) {
	p := itest.NewProxy(t, h.bouncer.Endpoint())
	return newLocker(t, itest.PostgresURLAt(p.Addr(), "postgres", itest.PostgresPassword, bouncerQuery),
		xpg.WithPrefix(h.prefix), h.listen(t)), p
}

// Without LISTEN (listen=false: the fallback where the pooler is all
// there is), a waiter still gets the lock after a release, by trying again
// at its retry interval.
func pollingThroughPgBouncer(t *testing.T, bouncer *itest.PgBouncer) {
	ctx := t.Context()
	s := itest.NewSecrets(t, itest.PostgresPassword)
	name := openURL(t, s, bouncer.URL("postgres", itest.PostgresPassword, bouncerQuery, "listen=false", "prefix="+newPrefix()))
	item, err := xsync.Lock(ctx, name, "k", 10)
	require.NoError(t, err)
	require.True(t, item.HasLock())
	got := make(chan error, 1)
	a := xsync.New(name, "k")
	require.NoError(t, a.SetRetry(100, 50*time.Millisecond))
	go func() { got <- a.Run(ctx, func(context.Context) error { return nil }) }()
	ok, err := item.Unlock(ctx, name, "k")
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, <-got, "the waiter got the lock by polling")
}

// Transaction-scoped advisory locks work through PgBouncer in transaction
// mode: the lock lives as long as the caller's transaction, on whichever
// server connection it ran, and is gone at commit.
func txLockThroughPgBouncer(t *testing.T, bouncer *itest.PgBouncer) {
	p := pool(t, bouncer.URL("postgres", itest.PostgresPassword, bouncerQuery))
	l := xpg.New(p, xpg.WithoutListen())
	ctx := t.Context()
	tx1, err := p.Begin(ctx)
	require.NoError(t, err)
	defer tx1.Rollback(context.Background())
	ok, err := l.TryLockTx(ctx, tx1, "job")
	require.NoError(t, err)
	require.True(t, ok)
	tx2, err := p.Begin(ctx)
	require.NoError(t, err)
	defer tx2.Rollback(context.Background())
	ok, err = l.TryLockTx(ctx, tx2, "job")
	require.NoError(t, err)
	assert.False(t, ok, "held by tx1")
	ok, err = l.TryLockTx(ctx, tx2, "other job")
	require.NoError(t, err)
	assert.True(t, ok, "another key")
	// A waiting LockTx ends with its context, as an error of that context.
	// (pgx closes the connection of a cancelled query: tx2 is gone.)
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = l.LockTx(wctx, tx2, "job")
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "%v", err)
	require.NoError(t, tx1.Commit(ctx))

	tx3, err := p.Begin(ctx)
	require.NoError(t, err)
	defer tx3.Rollback(ctx)
	require.NoError(t, l.LockTx(ctx, tx3, "job"), "free once tx1 committed")
}

// Guard fences a write in the caller's own transaction: a holder's write
// commits; a stale holder's transaction gets ErrNotHeld; and a takeover
// waits for a guarded transaction to end, so that no write of the old
// holder can commit after the new holder got the lock.
func testGuard(t *testing.T, srv *itest.Postgres, admin *pgxpool.Pool) {
	ctx := t.Context()
	_, err := admin.Exec(ctx, `CREATE TABLE accounts (id int PRIMARY KEY, balance int, fence bigint)`)
	require.NoError(t, err)
	_, err = admin.Exec(ctx, `INSERT INTO accounts VALUES (1, 0, 0)`)
	require.NoError(t, err)
	l := newLocker(t, srv.AdminURL())
	c := xsync.NewClient(l)
	p := pool(t, srv.AdminURL())

	write := func(lease *xsync.Lease) error {
		return pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
			if err := l.Guard(ctx, tx, "account:1", int64(lease.Token())); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance + 1, fence = $1 WHERE id = 1`, int64(lease.Token()))
			return err
		})
	}
	a, err := c.Acquire(ctx, "account:1", xsync.WithTTL(time.Second))
	require.NoError(t, err)
	require.NoError(t, write(a), "the holder writes")

	// a's TTL passes; b takes over; a's write is refused in a's own
	// transaction.
	<-a.Done()
	b, err := c.Acquire(ctx, "account:1", xsync.WithTTL(30*time.Second), xsync.WithWait(5*time.Second))
	require.NoError(t, err)
	require.ErrorIs(t, write(a), xpg.ErrNotHeld)
	require.NoError(t, write(b))
	var fence int64
	var balance int
	require.NoError(t, p.QueryRow(ctx, `SELECT balance, fence FROM accounts WHERE id = 1`).Scan(&balance, &fence))
	assert.Equal(t, 2, balance)
	assert.Equal(t, int64(b.Token()), fence)

	// A guarded transaction of b that is still open holds back an
	// operator's force release (and any takeover) until it ends.
	tx, err := p.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, l.Guard(ctx, tx, "account:1", int64(b.Token())))
	forced := make(chan error, 1)
	go func() {
		_, err := c.ForceRelease(context.Background(), "account:1")
		forced <- err
	}()
	waitForLockWait(t, admin)
	select {
	case err := <-forced:
		t.Fatalf("the force release did not wait for the guarded transaction: %v", err)
	default:
	}
	_, err = tx.Exec(ctx, `UPDATE accounts SET balance = balance + 1 WHERE id = 1`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	require.NoError(t, <-forced)
	require.ErrorIs(t, write(b), xpg.ErrNotHeld, "forced out")

	// Under SERIALIZABLE, a guard whose lock row changed after the
	// snapshot was taken fails rather than pass.
	d, err := c.Acquire(ctx, "account:1", xsync.WithTTL(30*time.Second))
	require.NoError(t, err)
	stx, err := p.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	require.NoError(t, err)
	defer stx.Rollback(ctx)
	_, err = stx.Exec(ctx, `SELECT 1 FROM accounts`) // the snapshot
	require.NoError(t, err)
	_, err = d.Release(ctx)
	require.NoError(t, err)
	_, err = c.Acquire(ctx, "account:1", xsync.WithTTL(30*time.Second))
	require.NoError(t, err)
	assert.Error(t, l.Guard(ctx, stx, "account:1", int64(d.Token())), "the released token")

	// A leader's term guards the same way, by its epoch.
	term, err := c.Election("billing").Campaign(ctx, xsync.WithTTL(30*time.Second))
	require.NoError(t, err)
	require.NoError(t, pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
		return l.GuardElection(ctx, tx, "billing", int64(term.Epoch()))
	}), "the leader")
	_, err = term.Resign(ctx)
	require.NoError(t, err)
	require.ErrorIs(t, pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
		return l.GuardElection(ctx, tx, "billing", int64(term.Epoch()))
	}), xpg.ErrNotHeld, "a resigned leader")
}

// waitForLockWait waits until some session waits for a row lock.
func waitForLockWait(t *testing.T, admin *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		require.NoError(t, admin.QueryRow(t.Context(),
			`SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'`).Scan(&n))
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no session waited for a lock within 10s")
}

// Migrate is idempotent and safe to run from many replicas at once, for
// any schema and table; a Locker of that table works.
func testMigrate(t *testing.T, srv *itest.Postgres, admin *pgxpool.Pool) {
	ctx := t.Context()
	_, err := admin.Exec(ctx, `CREATE SCHEMA locks`)
	require.NoError(t, err)
	opts := []xpg.Option{xpg.WithSchema("locks"), xpg.WithTable("app_locks")}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = xpg.Migrate(ctx, pool(t, srv.AdminURL()), opts...) })
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	require.NoError(t, xpg.Migrate(ctx, admin, opts...), "again")
	var n int
	require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'locks' AND tablename = 'app_locks'`).Scan(&n))
	require.Equal(t, 1, n)

	c := xsync.NewClient(newLocker(t, srv.AdminURL(), opts...))
	lease, err := c.Acquire(ctx, "k")
	require.NoError(t, err)
	require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM locks.app_locks`).Scan(&n))
	assert.Equal(t, 1, n)
	_, err = lease.Release(ctx)
	require.NoError(t, err)

	// A Locker on a table that was never migrated says so: it runs no DDL.
	missing := xsync.NewClient(newLocker(t, srv.AdminURL(), xpg.WithTable("never_migrated")))
	_, err = missing.Acquire(ctx, "k")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not exist")
	assert.False(t, xsync.IsMissingLockErr(err))

	// Bad names are refused before anything reaches the server.
	require.Error(t, xpg.Migrate(ctx, admin, xpg.WithTable(`x"; DROP TABLE accounts; --`)))
	require.Panics(t, func() { xpg.New(admin, xpg.WithSchema("a.b")) })
}
