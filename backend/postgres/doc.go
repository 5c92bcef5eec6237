// Package postgres is the xsync backend for PostgreSQL, on pgx v5: locks
// are rows of a lease table, not session state, so they work through any
// pool and behind a pooler in transaction mode, and writes in the same
// database can be fenced inside the caller's own transaction ([Guard]).
//
//	pool, _ := pgxpool.New(ctx, "postgres://app@db/app")
//	if err := postgres.Migrate(ctx, pool); err != nil { ... } // once, at deploy
//	c := xsync.NewClient(postgres.New(pool))
//
// # The table
//
// [Migrate] runs this DDL (the default names; [Schema] gives it for
// others), in a transaction under an advisory lock of its own; a Locker
// never runs DDL:
//
//	CREATE TABLE IF NOT EXISTS "public"."xsync_locks" (
//	    kind    text        NOT NULL,
//	    key     bytea       NOT NULL,
//	    token   bigint      NOT NULL,
//	    expires timestamptz NOT NULL,
//	    owner   text        NOT NULL DEFAULT '',
//	    attempt bigint      NOT NULL DEFAULT 0,
//	    holders jsonb       NOT NULL DEFAULT '[]',
//	    marks   jsonb       NOT NULL DEFAULT '{}',
//	    PRIMARY KEY (kind, key)
//	);
//	CREATE INDEX IF NOT EXISTS "xsync_locks_expires" ON "public"."xsync_locks" (expires);
//	CREATE SEQUENCE IF NOT EXISTS "public"."xsync_locks_token" AS bigint CACHE 1;
//
// A mutex (kind "m") or an election ("e") is one row whose token, expires
// and owner are its holder's; each of its queued waiters has a row of its
// own, its place (kind "qm" or "qe"; the key is the lock's key after its
// length, then the place's number from the sequence, in arrival order);
// a multi-key lock is the mutex rows of its keys under one token. A
// semaphore ("s") or a read-write lock ("r") is one row whose holders
// (jsonb) are its permits, readers or writer, and whose marks are its
// waiting writers. Keys are bytes (any key works: NUL, invalid UTF-8, 64
// KiB).
//
// The role the application connects as needs exactly these grants, and
// nothing else (no DDL, no function, no superuser):
//
//	GRANT SELECT, INSERT, UPDATE, DELETE ON "public"."xsync_locks" TO app;
//	GRANT USAGE ON SEQUENCE "public"."xsync_locks_token" TO app;
//
// (plus USAGE on the schema if it is not public). LISTEN and NOTIFY need
// no grant.
//
// # What is guaranteed
//
// Every operation is one statement in autocommit, one round trip:
// acquire (INSERT ... ON CONFLICT DO UPDATE of a missing or expired row),
// release (UPDATE of the row where the token still holds), refresh (UPDATE
// of the expiry where the token still holds). A multi-key acquire is one
// statement too, which fails (and so writes nothing) unless it took every
// key. No operation leaves a transaction open for the client to end: a
// client that stalls (a pause, a network that stops delivering its
// replies) keeps no row or table locked meanwhile.
// A release keeps the row (its expiry set to -infinity) for the sweeper,
// which leaves it while places of its waiters live. Concurrent statements
// on one lock are serialized by its row lock, and PostgreSQL re-evaluates
// each against the row's latest version, so two holders can never both be
// granted where the lock allows one. (A waiter's place is read in the
// statement's snapshot: a place that changed meanwhile can cost a waiter
// its turn, never exclusion.)
//
// Expiry is decided by the server's clock alone (now(), the start of the
// statement: a grant that waited for a row lock expires no later than its
// holder counted from just before sending). Clients' clocks do not matter.
//
// Tokens come from the table's sequence (CACHE 1): for one key every
// acquisition of a mutex, write lock, multi-key lock or term has a
// strictly larger token than every earlier one, across clients, across
// restarts of the server (a sequence never goes back, and values taken by
// refused or rolled-back attempts are skipped, never reused), and after
// idle rows were deleted. A renewal keeps the token: renewals are
// idempotent and a takeover needs only the TTL to pass.
//
// Expired rows are deleted by a sweeper (one DELETE of at most 1000 rows,
// a timer, no goroutine while idle) of each Locker, about 100ms after the
// latest expiry that Locker granted; a sweep deletes every expired row of
// the table, so rows left by a process that died go at the next sweep of
// any Locker. Close stops it. A statement draws its token before it waits
// for a row's lock, so a row deleted meanwhile (after a later holder's
// grant and release) would let it insert a new row under its older token.
// A sweep therefore locks the table in SHARE ROW EXCLUSIVE mode first: it
// waits for the write statements in flight, and new ones wait for it,
// until it commits (a stall of the table's writes for about one DELETE).
// It waits at most 50ms for the lock, and otherwise tries again a second
// later. The lock, the delete and the commit go in one message, which the
// server runs and commits on its own: a Locker that stalls in a sweep (a
// pause, a network that stops delivering its replies) keeps no other
// client's write waiting.
//
// # Waiting: LISTEN/NOTIFY
//
// A release, a force release and a waiting writer's leaving NOTIFY the
// table's channel ("xsync.<schema>.<table>") with the lock's kind and the
// MD5 of its key; a mutex's (or an election's) release and a waiter's
// leaving add the name of the waiter whose turn it is then. Each Locker listens on one dedicated connection of its
// own (made with the pool's configuration, outside the pool) shared by
// all its waiters; it opens with the first waiter and closes [Idle] after
// the last. A waiter also wakes when the holder's TTL is due. If the
// listening connection breaks, every waiter is woken (a notification may
// have been lost) and it reconnects.
//
// A mutex's (and an election's) waiters queue, first come first served: a
// waiter's place (a row of its own, alive for its keep time, renewed by a
// refused attempt once a third of that has passed, queued again at the
// end by a refused attempt if it expired all the same, deleted when it
// gets the lock or gives up) goes first
// in line, and an attempt by anyone else is refused while a place is
// ahead of it, also an attempt of a multi-key lock on that key. A waiter
// whose process died holds the others back for its keep time at most.
// A release wakes only the first in line (the notification names it),
// so a handoff costs one attempt however many wait; the statements read
// the first place alone (by the primary key's index), a waiter's watch
// reads the first place and the one just ahead of its own, and a renewal
// writes one place, so a handoff's cost does not grow with the number of
// waiters. A release with no live place queued, a multi-key release and
// an undone attempt wake every waiter of the key.
//
// Rolling upgrades: Lockers of versions before places were rows kept the
// queue in the lock's row (its holders column), which these Lockers do
// not read, and the older ones do not read places: while both run, the
// lock stays exclusive, but the older Lockers' waiters and the newer
// ones' do not keep each other's order. (Lockers of versions before the
// release named a waiter listen for the lock's name alone: their waiters
// miss the newer Lockers' releases and try at their retry interval or the
// holder's TTL instead.) The table and its grants are unchanged.
//
// Semaphore permits are not queued. A waiting writer of a read-write lock
// keeps new readers out for its keep time, renewed by its refused
// attempts, and removed when it gets the lock or gives up.
//
// # Poolers
//
// Behind PgBouncer (or any pooler) in transaction mode:
//
//   - every operation works unchanged: none needs a session;
//   - give pgx default_query_exec_mode=exec (or simple_protocol) in the
//     URL, as any pgx client there needs (PgBouncer before 1.21 keeps no
//     prepared statement across transactions);
//   - use [WithoutListen] (URL: listen=false): a LISTEN on a pooled server
//     connection does not last. Waiters then try again at the caller's
//     retry interval (xsync.WithRetryInterval) and at the holder's TTL. Or
//     give the Locker a pool straight to the server for LISTEN's sake.
//
// [Locker.TryLockTx] and [Locker.LockTx] take pg_advisory_xact_lock
// locks, which last as long as the caller's transaction and so work
// through a pooler in transaction mode too. They have no token (they
// cannot fence), do not expire, and do not use the table. Session
// advisory locks are not offered: through a pooler they stay on a server
// connection another client gets next.
//
// # Fencing inside your transaction
//
// [Locker.Guard] makes writes in the caller's own transaction conditional
// on a lock still being held by a token: it checks the lock's row and takes
// a FOR SHARE row lock on it, so no release, takeover or renewal of that
// lock passes until the transaction ends:
//
//	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
//		if err := locker.Guard(ctx, tx, "order:42", int64(lease.Token())); err != nil {
//			return err // postgres.ErrNotHeld: this holder is stale; write nothing
//		}
//		_, err := tx.Exec(ctx, `UPDATE orders SET paid = true WHERE id = 42`)
//		return err
//	})
//
// A stale holder (a process paused past its TTL, say) thus fails inside
// its own transaction instead of overwriting the new holder's work.
// [Locker.GuardSQL] gives the statement, to join to one's own SQL.
//
// # Isolation levels
//
// The Locker runs its statements on connections of its pool, each in its
// own autocommit transaction at the server's default isolation (READ
// COMMITTED): a caller's SERIALIZABLE or REPEATABLE READ transaction never
// contains them and does not change them. Guard runs inside the caller's
// transaction: under REPEATABLE READ or SERIALIZABLE, a lock row changed
// since the transaction's snapshot makes it fail with a serialization error
// (retry the transaction), never pass wrongly.
//
// # Faults
//
// A paused, stopped or unreachable server: calls fail (wrapping
// backend.ErrUnavailable where the connection failed), and the core ends
// each hold at its deadline; the rows keep their expiry on the server's
// clock, so no other holder gets a lock before its TTL has passed there.
// A restart, also after kill -9, keeps the table and the sequence (a lock
// held across it stays held until its TTL), as long as the server runs
// with synchronous_commit on (the default) and fsync on (or only its
// process died, not the machine). With synchronous_commit off, a crash
// loses the last commits: grants, releases and sequence values, so a
// token can repeat and a lock can be granted twice, as in a failover to
// an asynchronous replica (below). pg_terminate_backend of the Locker's
// connections fails the calls in flight; the pool reconnects; the listening connection reconnects and wakes its waiters.
// An acquire whose outcome is unknown (its connection broke, its context
// ended) is undone by its attempt number, on a detached context bounded
// by two seconds; if that fails too, the row is held until its TTL.
//
// High availability: a failover to an asynchronous replica can lose the
// latest grants, releases and sequence values (the transactions not yet
// replicated): a lock may be granted twice around a failover, and a
// token may repeat. A resource that checks tokens in the same database
// fails over with them (the lost writes are lost together); a resource
// elsewhere may see a token again. With synchronous replication
// (synchronous_commit = on or remote_apply, a synchronous standby) a
// failover loses no committed grant, and none of this can happen.
//
// # URLs
//
//	postgres://[user[:password]@]host[:port][/database][?options]
//	postgresql://...
//
// The options are pgx's (its connection and pool options, sslmode,
// sslrootcert and the other libpq TLS options, server settings) and ours:
// table, schema, prefix, listen=false. A password never appears in an
// error (pgx masks it).
package postgres
