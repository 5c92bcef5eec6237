package benchmarks

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/xsync-go/xsync"
	xpg "github.com/xsync-go/xsync/backend/postgres"
	"github.com/xsync-go/xsync/internal/benchutil"
	"github.com/xsync-go/xsync/internal/itest"
	"github.com/xsync-go/xsync/internal/pgsql"
)

// statements counts the statements a pool sends (each one round trip in
// autocommit).
type statements struct{ n atomic.Int64 }

func (s *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	s.n.Add(1)
	return ctx
}
func (s *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// pgPool returns a pool of the server (with tracer, if not nil), closed
// when the benchmark ends.
func pgPool(b *testing.B, srv *itest.Postgres, tracer pgx.QueryTracer) *pgxpool.Pool {
	b.Helper()
	cfg, err := pgxpool.ParseConfig(srv.AdminURL())
	must(b, err)
	cfg.ConnConfig.Tracer = tracer
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	must(b, err)
	b.Cleanup(p.Close)
	return p
}

func startPostgres(b *testing.B) *itest.Postgres {
	srv := itest.StartPostgres(b)
	must(b, xpg.Migrate(context.Background(), pgPool(b, srv, nil)))
	return srv
}

// rawPair is one acquire and one release of key sent as the backend's own
// two statements, with nothing of xsync around them.
func rawPair(b *testing.B, p *pgxpool.Pool, key string) func() {
	sql := pgsql.New(`"public"."xsync_locks"`, `"public"."xsync_locks_token"`, "xsync.public.xsync_locks")
	ctx := context.Background()
	k := []byte("raw/" + key)
	return func() {
		var got, tok int64
		must(b, p.QueryRow(ctx, sql.Acquire, "m", k, int64(10_000_000), "", int64(7), "", int64(0), nil).Scan(&got, &tok, nil))
		tag, err := p.Exec(ctx, sql.Release, "m", k, tok)
		must(b, err)
		if tag.RowsAffected() != 1 {
			b.Fatal("raw release released nothing")
		}
	}
}

// advisoryPair is pg_try_advisory_lock and pg_advisory_unlock of key on
// one connection held for the whole run (a session lock: not what a pool
// or a pooler can do, the floor of what PostgreSQL can do).
func advisoryPair(b *testing.B, p *pgxpool.Pool, key int64) func() {
	ctx := context.Background()
	c, err := p.Acquire(ctx)
	must(b, err)
	b.Cleanup(c.Release)
	return func() {
		var ok bool
		must(b, c.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok))
		if !ok {
			b.Fatal("advisory lock held")
		}
		must(b, c.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, key).Scan(&ok))
	}
}

// uncontendedPostgres interleaves, op by op, xsync's acquire+release on
// PostgreSQL, the same two statements sent raw, and
// pg_try_advisory_lock/pg_advisory_unlock on one connection, and reports
// each mean, its cost in SELECT 1 round trips, its ratio to the raw pair,
// and the statements xsync sent per acquire+release.
func uncontendedPostgres(b *testing.B) {
	srv := startPostgres(b)
	var sent statements
	xp := pgPool(b, srv, &sent)
	name := unique("xsync-postgres")
	l := xpg.New(xp, xpg.WithPrefix(unique("p")+"/"))
	b.Cleanup(func() { l.Close() })
	b.Cleanup(xsync.Swap(name, l))
	p := pgPool(b, srv, nil)
	ctx := context.Background()
	lockUnlock := benchutil.LockUnlock(b, name, "k")
	var pairs int64
	means := benchutil.Interleave(b,
		benchutil.Op{Name: "xsync-postgres", Fn: func() { lockUnlock(); pairs++ }},
		benchutil.Op{Name: "pg-raw-pair", Fn: rawPair(b, p, "k")},
		benchutil.Op{Name: "pg-advisory-session", Fn: advisoryPair(b, p, 42)},
		benchutil.Op{Name: "select1", Fn: func() {
			var one int
			must(b, p.QueryRow(ctx, `SELECT 1`).Scan(&one))
		}},
	)
	report(b, means, "select1")
	b.ReportMetric(benchutil.Ratio(means["xsync-postgres"], means["pg-raw-pair"]), "xsync/raw")
	b.ReportMetric(benchutil.Ratio(means["xsync-postgres"], means["pg-advisory-session"]), "xsync/advisory")
	if pairs > 0 {
		b.ReportMetric(float64(sent.n.Load())/float64(pairs), "statements/pair")
	}
}

// postgresContenders are 8-client contenders on one key of srv: xsync
// (waiters queued, woken by NOTIFY), and pg_advisory_lock on a session of
// each client (PostgreSQL's own lock queue, the floor).
func postgresContenders(srv func() *itest.Postgres, prefix string) []contender {
	return []contender{
		xsyncContender("xsync-postgres", time.Second, func(b *testing.B, n string) {
			l := xpg.New(pgPool(b, srv(), nil), xpg.WithPrefix(prefix))
			b.Cleanup(func() { l.Close() })
			b.Cleanup(xsync.Swap(n, l))
		}),
		{"pg-advisory-session", func(b *testing.B) func(int) lockFunc {
			return func(int) lockFunc {
				c, err := pgPool(b, srv(), nil).Acquire(context.Background())
				must(b, err)
				b.Cleanup(c.Release)
				return func(ctx context.Context, work func()) error {
					if _, err := c.Exec(ctx, `SELECT pg_advisory_lock(43)`); err != nil {
						return err
					}
					work()
					_, err := c.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(43)`)
					return err
				}
			}
		}},
	}
}

// postgresLibs are the parallel distinct-key contenders on srv: xsync, the
// raw statement pair, and session advisory locks (a connection per
// goroutine).
func postgresLibs(srv func() *itest.Postgres) []parallelLib {
	return []parallelLib{
		{"xsync-postgres", func(b *testing.B) func(string) func() {
			n := unique("xsync-postgres")
			l := xpg.New(pgPool(b, srv(), nil), xpg.WithPrefix(unique("p")+"/"))
			b.Cleanup(func() { l.Close() })
			b.Cleanup(xsync.Swap(n, l))
			return func(key string) func() { return benchutil.LockUnlock(b, n, key) }
		}},
		{"pg-raw-pair", func(b *testing.B) func(string) func() {
			p := pgPool(b, srv(), nil)
			return func(key string) func() { return rawPair(b, p, key) }
		}},
		{"pg-advisory-session", func(b *testing.B) func(string) func() {
			p := pgPool(b, srv(), nil)
			var ids atomic.Int64
			return func(string) func() { return advisoryPair(b, p, 1000+ids.Add(1)) }
		}},
	}
}

// parallelLib is one library of BenchmarkParallelKeys: op builds one
// acquire+release of a key.
type parallelLib struct {
	name string
	op   func(b *testing.B) func(key string) func()
}

// lazyPostgres starts a migrated server on first use, for benchmarks run
// selectively.
func lazyPostgres(b *testing.B) func() *itest.Postgres {
	var srv *itest.Postgres
	return func() *itest.Postgres {
		if srv == nil {
			srv = startPostgres(b)
		}
		return srv
	}
}
