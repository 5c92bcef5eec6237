package postgres_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync/backend"
	xpg "github.com/xsync-go/xsync/backend/postgres"
	"github.com/xsync-go/xsync/conformance"
	"github.com/xsync-go/xsync/internal/itest"
)

func TestMain(m *testing.M) { itest.Main(m) }

var prefixes atomic.Int64

// newPrefix gives every subtest's backend a namespace of its own in the
// shared table.
func newPrefix() string { return fmt.Sprintf("xsync-test-%d/", prefixes.Add(1)) }

// pool returns a pool of url, closed when the test ends.
func pool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// startMigrated starts a server with the lock table, and returns it and a
// superuser's pool.
func startMigrated(t testing.TB, opts ...itest.PostgresOption) (*itest.Postgres, *pgxpool.Pool) {
	t.Helper()
	srv := itest.StartPostgres(t, opts...)
	admin := pool(t, srv.AdminURL())
	if err := xpg.Migrate(t.Context(), admin); err != nil {
		t.Fatal(err)
	}
	return srv, admin
}

// newLocker returns a Locker of its own pool of url, closed when the test
// ends.
func newLocker(t testing.TB, url string, opts ...xpg.Option) *xpg.Locker {
	t.Helper()
	p := pool(t, url)
	l := xpg.New(p, opts...)
	t.Cleanup(func() { l.Close() })
	return l
}

// TestConformance runs the suite straight to the server, then through
// PgBouncer in transaction mode (with a pool of 4 server connections
// shared by every subtest's clients), on one server.
func TestConformance(t *testing.T) {
	srv, admin := startMigrated(t)
	t.Run("Direct", func(t *testing.T) {
		conformance.Run(t, func(t *testing.T) conformance.Harness {
			return &harness{srv: srv, admin: admin, prefix: newPrefix()}
		})
	})
	bouncer := itest.StartPgBouncer(t, srv, 4, "postgres", itest.PostgresPassword)
	t.Run("PgBouncer", func(t *testing.T) { conformanceThroughPgBouncer(t, srv, admin, bouncer) })
	t.Run("PollingThroughPgBouncer", func(t *testing.T) { pollingThroughPgBouncer(t, bouncer) })
	t.Run("TxLockThroughPgBouncer", func(t *testing.T) { txLockThroughPgBouncer(t, bouncer) })
}

// TestOnOneServer runs the tests of the package's own features on one
// server that speaks TLS (and plain TCP): containers are slow to start.
func TestOnOneServer(t *testing.T) {
	ca := itest.NewCA(t, "xsync-test-pg-ca")
	srv, admin := startMigrated(t, itest.WithPostgresTLS(ca))
	t.Run("TLSVerifyFull", func(t *testing.T) { testTLSVerifyFull(t, srv, ca) })
	t.Run("PasswordSCRAM", func(t *testing.T) { testPasswordSCRAM(t, srv, admin) })
	t.Run("LeastPrivilegeRole", func(t *testing.T) { testLeastPrivilegeRole(t, srv, admin) })
	t.Run("Guard", func(t *testing.T) { testGuard(t, srv, admin) })
	t.Run("Migrate", func(t *testing.T) { testMigrate(t, srv, admin) })
	t.Run("TokenAfterRowWait", func(t *testing.T) { testTokenAfterRowWait(t, srv, admin) })
	t.Run("WriterTokenAfterRowWait", func(t *testing.T) { testWriterTokenAfterRowWait(t, srv, admin) })
	t.Run("TokenAfterSweep", func(t *testing.T) { testTokenAfterSweep(t, srv, admin) })
	t.Run("RefusedWaiterRenewsWhenDue", func(t *testing.T) { testRefusedWaiterRenewsWhenDue(t, srv, admin) })
	t.Run("PlacesAreRows", func(t *testing.T) { testPlacesAreRows(t, srv, admin) })
	t.Run("PlaceWithoutRow", func(t *testing.T) { testPlaceWithoutRow(t, srv, admin) })
	t.Run("SweepKeepsRowWhilePlaces", func(t *testing.T) { testSweepKeepsRowWhilePlaces(t, srv, admin) })
	t.Run("TimerWakesOnlyOnTurn", func(t *testing.T) { testTimerWakesOnlyOnTurn(t, srv) })
	t.Run("StalledSweeperStallsNoWriter", func(t *testing.T) { testStalledSweeperStallsNoWriter(t, srv) })
	t.Run("StalledMultiStallsNoWriter", func(t *testing.T) { testStalledMultiStallsNoWriter(t, srv) })
}

// harness is one subtest's namespace (a key prefix) in the shared table.
type harness struct {
	srv    *itest.Postgres
	admin  *pgxpool.Pool
	prefix string
}

func (h *harness) Locker(t *testing.T) backend.Locker {
	return newLocker(t, h.srv.AdminURL(), xpg.WithPrefix(h.prefix))
}

func (h *harness) Limits() conformance.Limits {
	return conformance.Limits{
		FIFO: true,
		// The sweep runs about 100ms after the last expiry; one that
		// cannot lock the table within 50ms (write statements in flight,
		// as on a loaded machine) tries again a second later.
		SizeSettle:       2 * time.Second,
		IgnoreGoroutines: append([]string{"github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"}, xpg.IdleGoroutines...),
	}
}

// Size counts the rows of the namespace, expired or not, waiters' places
// too (their keys begin with their lock key's length): the sweeper must
// delete them.
func (h *harness) Size(t *testing.T) int {
	var n int
	err := h.admin.QueryRow(context.Background(),
		`SELECT count(*) FROM xsync_locks WHERE substr(key, 1, length($1::bytea)) = $1::bytea
		 OR kind LIKE 'q%' AND substr(key, 5, length($1::bytea)) = $1::bytea`, []byte(h.prefix)).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (h *harness) Faulty(t *testing.T) (backend.Locker, conformance.Fault) {
	p := itest.NewProxy(t, h.srv.Endpoint())
	return newLocker(t, itest.PostgresURLAt(p.Addr(), "postgres", itest.PostgresPassword), xpg.WithPrefix(h.prefix)), p
}

// testTokenAfterRowWait: a multi-key acquire draws its token, then takes
// its keys' rows one by one, waiting for each row's lock. If a mutex takes
// one of its keys meanwhile with a later token and releases it, the
// multi-key grant must not write its older token over that key: tokens on
// a key only grow. The mutex is played by a transaction of the test's own
// (it holds the row lock, then writes a later token and frees the key), so
// the order is certain.
func testTokenAfterRowWait(t *testing.T, srv *itest.Postgres, admin *pgxpool.Pool) {
	ctx := t.Context()
	prefix := newPrefix()
	l := newLocker(t, srv.AdminURL(), xpg.WithPrefix(prefix))
	req := backend.Request{TTL: time.Minute, Owner: "test"}

	takeAndRelease(t, l.Mutex("b"), req) // b's row exists, free

	// A later hold of b, taken and released while the multi-key acquire
	// waits for b's row.
	got, later := afterRowWait(t, admin, "m", prefix+"b", `expires = '-infinity'`, func() (int64, error) {
		return l.Multi([]string{"a", "b"}).Acquire(ctx, req)
	}, nil)
	if got != 0 {
		require.Greater(t, got, later, "the multi-key lock was granted under a token older than b's last holder's")
	}
	var now int64
	require.NoError(t, admin.QueryRow(ctx, `SELECT token FROM xsync_locks WHERE kind = 'm' AND key = $1`, []byte(prefix+"b")).Scan(&now))
	require.GreaterOrEqual(t, now, later, "b's token went backwards")
	require.Zero(t, got, "the attempt drew its token before the later hold: it must be refused")
}

// testTokenAfterSweep: a multi-key acquire draws its token, then waits
// for its first key's row. Meanwhile a mutex takes the second key with a
// later token and releases it, and the sweeper runs. Had it deleted the
// freed row, nothing on the server would remember the later token, and the
// multi-key grant would insert the key's row under its older one. The
// sweep must wait for the acquire instead (it gives up after its lock
// timeout, 55P03), and the acquire then finds b's row with the later
// token and is refused.
func testTokenAfterSweep(t *testing.T, srv *itest.Postgres, admin *pgxpool.Pool) {
	ctx := t.Context()
	prefix := newPrefix()
	l := newLocker(t, srv.AdminURL(), xpg.WithPrefix(prefix))
	req := backend.Request{TTL: time.Minute, Owner: "test"}
	takeAndRelease(t, l.Mutex("a"), req) // a's row exists, free

	var later int64
	got, _ := afterRowWait(t, admin, "m", prefix+"a", "", func() (int64, error) {
		return l.Multi([]string{"a", "b"}).Acquire(ctx, req)
	}, func() {
		later = takeAndRelease(t, l.Mutex("b"), req)
		_, err := xpg.SweepNow(ctx, l)
		var pe *pgconn.PgError
		require.True(t, errors.As(err, &pe) && pe.Code == "55P03",
			"the sweep did not wait for the acquire between its token and its rows (want its lock timeout, 55P03): %v", err)
	})
	if got != 0 {
		require.Greater(t, got, later, "the multi-key lock was granted under a token older than b's last holder's")
	}
	require.Zero(t, got, "b kept its later token: the attempt, whose token is older, must be refused")
	var now int64
	require.NoError(t, admin.QueryRow(ctx, `SELECT token FROM xsync_locks WHERE kind = 'm' AND key = $1`, []byte(prefix+"b")).Scan(&now))
	require.GreaterOrEqual(t, now, later, "b's token went backwards")
	// Once the acquire is over, the sweep runs.
	n, err := xpg.SweepNow(ctx, l)
	require.NoError(t, err)
	require.Positive(t, n)
}

// testWriterTokenAfterRowWait: a writer draws its token, then waits for
// the read-write lock's row. If another writer takes the lock meanwhile
// with a later token and releases it, the waiting writer must be refused:
// writers' tokens only grow. The other writer is played by a transaction
// of the test's own, as in testTokenAfterRowWait.
func testWriterTokenAfterRowWait(t *testing.T, srv *itest.Postgres, admin *pgxpool.Pool) {
	ctx := t.Context()
	prefix := newPrefix()
	l := newLocker(t, srv.AdminURL(), xpg.WithPrefix(prefix))
	_, w := l.RWLock("w")
	req := backend.Request{TTL: time.Minute, Owner: "test"}

	takeAndRelease(t, w, req) // w's row exists, free

	// A later writer, granted and gone while the first waits for the row.
	got, later := afterRowWait(t, admin, "r", prefix+"w", `holders = '[]'`, func() (int64, error) {
		return w.Acquire(ctx, req)
	}, nil)
	if got != 0 {
		require.Greater(t, got, later, "the writer was granted under a token older than the last writer's")
	}
	require.Zero(t, got, "the writer drew its token before the later writer: it must be refused")
	// Its next attempt draws a new token and gets the lock.
	require.Greater(t, takeAndRelease(t, w, req), later)
}

// testRefusedWaiterRenewsWhenDue: a queued waiter's refused attempt
// renews its place (a write of the place's row) only once a third of its
// keep has passed: an attempt soon after the last renewal leaves the place
// as it is, one after a third of keep sets a later deadline.
func testRefusedWaiterRenewsWhenDue(t *testing.T, srv *itest.Postgres, admin *pgxpool.Pool) {
	ctx := t.Context()
	prefix, m, _ := heldMutex(t, srv)
	const keep = 3 * time.Second // a renewal is due after 1s
	// w1 queues.
	_, stop, err := m.(backend.Watcher).Watch(ctx, "w1", keep)
	require.NoError(t, err)
	defer stop()
	place := func() int64 {
		t.Helper()
		var e int64
		require.NoError(t, admin.QueryRow(ctx, `SELECT (extract(epoch FROM expires) * 1000000)::int8 FROM xsync_locks
			WHERE kind = 'qm' AND owner = 'w1' AND substr(key, 1, length($1::bytea)) = $1::bytea`, placeKey(prefix+"k", 0)).Scan(&e))
		return e
	}
	queued := backend.Request{TTL: time.Minute, Waiter: "w1", Keep: keep}
	attempt := func() {
		t.Helper()
		tok, err := m.Acquire(ctx, queued)
		require.NoError(t, err)
		require.Zero(t, tok, "the key is held: the waiter is refused")
	}
	first := place()
	attempt()
	require.Equal(t, first, place(), "a renewal that was not due rewrote the place")
	time.Sleep(keep/3 + 50*time.Millisecond) // a third of keep must pass
	attempt()
	require.Greater(t, place(), first, "a renewal that was due left the place as it was")
}

// heldMutex returns a new prefix and its mutex "k" on a Locker of its own,
// held for a minute under held.
func heldMutex(t *testing.T, srv *itest.Postgres) (prefix string, m backend.Lock, held int64) {
	t.Helper()
	prefix = newPrefix()
	m = newLocker(t, srv.AdminURL(), xpg.WithPrefix(prefix)).Mutex("k")
	held, err := m.Acquire(t.Context(), backend.Request{TTL: time.Minute})
	require.NoError(t, err)
	require.Positive(t, held)
	return prefix, m, held
}

// placeKey returns the row key of key's waiter place number n, or with n
// 0 the prefix of them all.
func placeKey(key string, n int64) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(key)))
	b = append(b, key...)
	if n != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return b
}

// places returns the waiters of key's live places, in their order, and
// their numbers.
func places(t *testing.T, admin *pgxpool.Pool, key string) (waiters []string, numbers []int64) {
	t.Helper()
	prefix := placeKey(key, 0)
	rows, err := admin.Query(t.Context(), `SELECT owner, token, key FROM xsync_locks
		WHERE kind = 'qm' AND substr(key, 1, length($1::bytea)) = $1::bytea AND length(key) = length($1::bytea) + 8 AND expires > now() ORDER BY key`, prefix)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var w string
		var n int64
		var k []byte
		require.NoError(t, rows.Scan(&w, &n, &k))
		require.Equal(t, placeKey(key, n), k, "a place's key is its lock key's length, the key and its number")
		waiters, numbers = append(waiters, w), append(numbers, n)
	}
	require.NoError(t, rows.Err())
	return waiters, numbers
}

// testPlacesAreRows: a mutex's waiters queue in rows of their own (see
// internal/pgsql), in arrival order by number; the lock's row keeps no
// queue. A waiter whose place lapsed is queued again at the end by its
// next refused attempt; a grant deletes the waiter's place, and so does
// the waiter's leaving.
func testPlacesAreRows(t *testing.T, srv *itest.Postgres, admin *pgxpool.Pool) {
	ctx := t.Context()
	prefix, m, held := heldMutex(t, srv)
	const keep = 3 * time.Second
	_, stop1, err := m.(backend.Watcher).Watch(ctx, "w1", keep)
	require.NoError(t, err)
	defer stop1()
	_, stop2, err := m.(backend.Watcher).Watch(ctx, "w2", keep)
	require.NoError(t, err)
	defer stop2()

	ws, ns := places(t, admin, prefix+"k")
	require.Equal(t, []string{"w1", "w2"}, ws)
	require.Less(t, ns[0], ns[1])
	var queue string
	require.NoError(t, admin.QueryRow(ctx, `SELECT holders::text FROM xsync_locks WHERE kind = 'm' AND key = $1`, []byte(prefix+"k")).Scan(&queue))
	require.Equal(t, "[]", queue, "the lock's row keeps no queue")
	info, err := m.(backend.Inspector).Inspect(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, info.Waiting)

	// w1's place lapses (as if it had stalled for its keep): its next
	// refused attempt queues it again, behind w2.
	_, err = admin.Exec(ctx, `UPDATE xsync_locks SET expires = now() - interval '1 second' WHERE kind = 'qm' AND key = $1`, placeKey(prefix+"k", ns[0]))
	require.NoError(t, err)
	tok, err := m.Acquire(ctx, backend.Request{TTL: time.Minute, Waiter: "w1", Keep: keep})
	require.NoError(t, err)
	require.Zero(t, tok, "the key is held")
	ws, ns2 := places(t, admin, prefix+"k")
	require.Equal(t, []string{"w2", "w1"}, ws, "the lapsed place was not queued again at the end")
	require.Greater(t, ns2[1], ns[1])
	var lapsed int
	require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM xsync_locks WHERE kind = 'qm' AND key = $1`, placeKey(prefix+"k", ns[0])).Scan(&lapsed))
	require.Zero(t, lapsed, "the lapsed place's row was left behind")

	// Released, the lock goes to the first place's waiter, w2, not w1.
	ok, err := m.Release(ctx, held)
	require.NoError(t, err)
	require.True(t, ok)
	tok, err = m.Acquire(ctx, backend.Request{TTL: time.Minute, Waiter: "w1", Keep: keep})
	require.NoError(t, err)
	require.Zero(t, tok, "w1 took the lock ahead of w2")
	tok, err = m.Acquire(ctx, backend.Request{TTL: time.Minute, Waiter: "w2", Keep: keep})
	require.NoError(t, err)
	require.Positive(t, tok, "w2, first, was refused")
	ws, _ = places(t, admin, prefix+"k")
	require.Equal(t, []string{"w1"}, ws, "the grant left w2's place")
	stop1()
	ws, _ = places(t, admin, prefix+"k")
	require.Empty(t, ws, "leaving left w1's place")
}

// testPlaceWithoutRow: a waiter's place keeps its turn where the lock's
// row is missing (swept after the holder's expiry, before the waiter
// queued): a first attempt by anyone else, which would insert the row, is
// refused, a multi-key lock on the key too; the waiter's is granted.
func testPlaceWithoutRow(t *testing.T, srv *itest.Postgres, admin *pgxpool.Pool) {
	ctx := t.Context()
	prefix := newPrefix()
	l := newLocker(t, srv.AdminURL(), xpg.WithPrefix(prefix))
	m := l.Mutex("k")
	_, stop, err := m.(backend.Watcher).Watch(ctx, "w1", time.Minute)
	require.NoError(t, err)
	defer stop()
	var rows int
	require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM xsync_locks WHERE kind = 'm' AND key = $1`, []byte(prefix+"k")).Scan(&rows))
	require.Zero(t, rows, "queueing made the lock's row")

	tok, err := m.Acquire(ctx, backend.Request{TTL: time.Minute})
	require.NoError(t, err)
	require.Zero(t, tok, "an attempt without a place was granted ahead of w1's place")
	tok, err = l.Multi([]string{"j", "k"}).Acquire(ctx, backend.Request{TTL: time.Minute})
	require.NoError(t, err)
	require.Zero(t, tok, "a multi-key lock was granted ahead of w1's place")
	tok, err = m.Acquire(ctx, backend.Request{TTL: time.Minute, Waiter: "w1", Keep: time.Minute})
	require.NoError(t, err)
	require.Positive(t, tok, "w1, first, was refused")
}

// testSweepKeepsRowWhilePlaces: the sweeper keeps a released lock's row
// while a live place is queued for it, and deletes it once no place is
// live (here: the place lapsed, as a dead waiter's does), the place's row
// with it.
func testSweepKeepsRowWhilePlaces(t *testing.T, srv *itest.Postgres, admin *pgxpool.Pool) {
	ctx := t.Context()
	prefix := newPrefix()
	l := newLocker(t, srv.AdminURL(), xpg.WithPrefix(prefix))
	m := l.Mutex("k")
	takeAndRelease(t, m, backend.Request{TTL: time.Minute})
	_, stop, err := m.(backend.Watcher).Watch(ctx, "w1", time.Minute)
	require.NoError(t, err)
	defer stop()
	rows := func(kind string, key []byte) int {
		t.Helper()
		var n int
		require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM xsync_locks WHERE kind = $1 AND substr(key, 1, length($2::bytea)) = $2::bytea`, kind, key).Scan(&n))
		return n
	}

	_, err = xpg.SweepNow(ctx, l)
	require.NoError(t, err)
	require.Equal(t, 1, rows("m", []byte(prefix+"k")), "the sweeper deleted a released row while a place was live")
	require.Equal(t, 1, rows("qm", placeKey(prefix+"k", 0)), "the sweeper deleted a live place")

	_, err = admin.Exec(ctx, `UPDATE xsync_locks SET expires = now() - interval '1 second' WHERE kind = 'qm' AND substr(key, 1, length($1::bytea)) = $1::bytea`, placeKey(prefix+"k", 0))
	require.NoError(t, err)
	_, err = xpg.SweepNow(ctx, l)
	require.NoError(t, err)
	require.Zero(t, rows("m", []byte(prefix+"k")), "the sweeper kept a released row with no live place")
	require.Zero(t, rows("qm", placeKey(prefix+"k", 0)), "the sweeper kept a lapsed place")
}

// testTimerWakesOnlyOnTurn: when the holder's TTL runs out (an expiry
// notifies nobody), every waiter's timer reads the lock, and only the
// waiter whose turn it is wakes: w1, first in line, and not w2, behind
// w1's live place. w2 wakes when w1's release names it.
func testTimerWakesOnlyOnTurn(t *testing.T, srv *itest.Postgres) {
	ctx := t.Context()
	m := newLocker(t, srv.AdminURL(), xpg.WithPrefix(newPrefix())).Mutex("k")
	held, err := m.Acquire(ctx, backend.Request{TTL: time.Second})
	require.NoError(t, err)
	require.Positive(t, held)
	w := m.(backend.Watcher)
	ready1, stop1, err := w.Watch(ctx, "w1", time.Minute)
	require.NoError(t, err)
	defer stop1()
	ready2, stop2, err := w.Watch(ctx, "w2", time.Minute)
	require.NoError(t, err)
	defer stop2()

	select {
	case <-ready1:
	case <-ready2:
		t.Fatal("w2 woke ahead of w1")
	case <-time.After(10 * time.Second):
		t.Fatal("w1, first in line, did not wake when the holder's TTL ran out")
	}
	// Both timers were set for the holder's expiry; w2's read of the lock
	// then finds w1's place ahead. No event marks that read's outcome, so
	// the test gives it half a second (a slow read only makes this check
	// weaker, never fail wrongly).
	select {
	case <-ready2:
		t.Fatal("w2's timer woke it while w1's place was ahead")
	case <-time.After(500 * time.Millisecond):
	}

	tok, err := m.Acquire(ctx, backend.Request{TTL: time.Minute, Waiter: "w1", Keep: time.Minute})
	require.NoError(t, err)
	require.Positive(t, tok, "w1, first and woken, was refused")
	ok, err := m.Release(ctx, tok)
	require.NoError(t, err)
	require.True(t, ok)
	select {
	case <-ready2:
	case <-time.After(10 * time.Second):
		t.Fatal("w1's release did not wake w2, next in line")
	}
}

// testStalledSweeperStallsNoWriter: a sweep locks the whole table, so it
// must commit on the server, not when its client gets round to it. Had
// the sweep been a transaction that the client ends (BEGIN, the lock and
// delete, COMMIT: a round trip each), every write to the table would
// have waited until the stalled client's COMMIT came.
func testStalledSweeperStallsNoWriter(t *testing.T, srv *itest.Postgres) {
	stalledClientStallsNoWriter(t, srv, newPrefix(), func(ctx context.Context, l *xpg.Locker) error {
		_, err := xpg.SweepNow(ctx, l)
		return err
	})
}

// testStalledMultiStallsNoWriter: a multi-key acquire locks its keys'
// rows, so it too must end on the server: as a transaction that the
// client commits or rolls back, a stalled client would keep every attempt
// on those keys waiting (not refused) until it came back.
func testStalledMultiStallsNoWriter(t *testing.T, srv *itest.Postgres) {
	stalledClientStallsNoWriter(t, srv, newPrefix(), func(ctx context.Context, l *xpg.Locker) error {
		m := l.Multi([]string{"j", "k"})
		tok, err := m.Acquire(ctx, backend.Request{TTL: time.Minute})
		if err == nil && tok > 0 {
			_, err = m.Release(ctx, tok)
		}
		return err
	})
}

// stalledClientStallsNoWriter runs op on a Locker of prefix whose every
// reply is held for 2s (a stalled process, a
// network that delays one way), while another client takes and releases
// the mutex "k" of prefix over and over: none of its attempts may wait
// for the stalled client.
func stalledClientStallsNoWriter(t *testing.T, srv *itest.Postgres, prefix string, op func(context.Context, *xpg.Locker) error) {
	ctx := t.Context()
	p := itest.NewProxy(t, srv.Endpoint())
	stalled := newLocker(t, itest.PostgresURLAt(p.Addr(), "postgres", itest.PostgresPassword), xpg.WithPrefix(prefix))
	require.NoError(t, op(ctx, stalled)) // its pool connects before the stall
	other := newLocker(t, srv.AdminURL(), xpg.WithPrefix(prefix)).Mutex("k")
	takeAndRelease(t, other, backend.Request{TTL: time.Minute})

	const stall = 2 * time.Second
	p.Delay(stall)
	done := make(chan error, 1)
	go func() { done <- op(ctx, stalled) }()
	// Long enough for a client-ended transaction's replies (BEGIN's,
	// then its statements') and its end.
	var slowest time.Duration
	for end := time.Now().Add(2*stall + time.Second); time.Now().Before(end); {
		start := time.Now()
		tok, err := other.Acquire(ctx, backend.Request{TTL: time.Minute})
		require.NoError(t, err)
		if tok > 0 {
			_, err = other.Release(ctx, tok)
			require.NoError(t, err)
		}
		slowest = max(slowest, time.Since(start))
	}
	p.Heal()
	require.NoError(t, <-done)
	require.Less(t, slowest, stall/2, "an attempt waited for a stalled client")
}

// afterRowWait holds the row of kind and key in a transaction of its own,
// runs attempt until it waits for that row's lock (it has drawn its token
// by then), runs meanwhile (if not nil), gives the row a later token from
// the sequence with set (the rest of a later holder's grant and release;
// if set is not ""), commits, and returns attempt's token and the later
// one.
func afterRowWait(t *testing.T, admin *pgxpool.Pool, kind, key, set string, attempt func() (int64, error), meanwhile func()) (got, later int64) {
	t.Helper()
	ctx := t.Context()
	tx, err := admin.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(context.WithoutCancel(ctx))
	var pid int
	require.NoError(t, tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))
	_, err = tx.Exec(ctx, `SELECT 1 FROM xsync_locks WHERE kind = $1 AND key = $2 FOR UPDATE`, kind, []byte(key))
	require.NoError(t, err)

	type result struct {
		tok int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := attempt()
		done <- result{tok, err}
	}()
	require.Eventually(t, func() bool {
		var n int
		err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid))`, pid).Scan(&n)
		return err == nil && n == 1
	}, 30*time.Second, 10*time.Millisecond, "the attempt never waited for the row lock")
	if meanwhile != nil {
		meanwhile()
	}

	if set != "" {
		require.NoError(t, tx.QueryRow(ctx, `UPDATE xsync_locks SET token = nextval('"public"."xsync_locks_token"'), `+set+`
WHERE kind = $1 AND key = $2 RETURNING token`, kind, []byte(key)).Scan(&later))
	}
	require.NoError(t, tx.Commit(ctx))
	r := <-done
	require.NoError(t, r.err)
	return r.tok, later
}

// takeAndRelease takes lock, which must be free, releases it, and returns
// the token it was held with.
func takeAndRelease(t *testing.T, lock backend.Lock, req backend.Request) int64 {
	t.Helper()
	tok, err := lock.Acquire(t.Context(), req)
	require.NoError(t, err)
	require.NotZero(t, tok)
	ok, err := lock.Release(t.Context(), tok)
	require.NoError(t, err)
	require.True(t, ok)
	return tok
}
