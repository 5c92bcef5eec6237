package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotHeld is what [Locker.Guard] returns when the token no longer holds
// the lock: the caller's transaction must not write what the lock protects
// (roll it back).
var ErrNotHeld = errors.New("postgres: the lock is not held by this token")

// Querier runs a query: a pgx.Tx (the caller's transaction), a *pgx.Conn
// or a *pgxpool.Pool.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Guard fences writes in the caller's own transaction tx (in the same
// database as the lock table) with the lock of key held by token (a
// lease's Token, taken through this Locker's table and prefix): it returns
// nil if token holds key's mutex now, and then takes a FOR SHARE row lock
// on the lock's row, which no release, takeover or renewal can pass until
// tx ends. Writes tx makes after Guard returned nil therefore commit only
// while token holds the lock; a stale holder gets [ErrNotHeld] inside its
// own transaction instead of overwriting a newer holder's work.
//
// Call it after the transaction's other row locks where possible, and keep
// the transaction short: the holder's own renewal waits for it too. Under
// REPEATABLE READ or SERIALIZABLE, a lock row changed since tx's snapshot
// makes Guard fail with a serialization error (retry the transaction), so
// it is never wrongly nil. Guard needs SELECT and UPDATE on the table (a
// row lock), which the Locker's role has anyway.
func (l *Locker) Guard(ctx context.Context, tx Querier, key string, token int64) error {
	return l.guard(ctx, tx, kindMutex, l.key(key), token)
}

// GuardElection is [Locker.Guard] for the term of a leader of the election
// name: token is the term's epoch.
func (l *Locker) GuardElection(ctx context.Context, tx Querier, name string, epoch int64) error {
	return l.guard(ctx, tx, kindElection, l.key(name), epoch)
}

func (l *Locker) guard(ctx context.Context, tx Querier, kind string, key []byte, token int64) error {
	if token <= 0 {
		return ErrNotHeld
	}
	var one int
	err := tx.QueryRow(ctx, l.sql.Guard, kind, key, token).Scan(&one)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotHeld
	case err != nil:
		return fmt.Errorf("postgres: guard: %w", classify(err))
	}
	return nil
}

// GuardSQL returns the statement Guard runs, for joining it to a write of
// one's own (as a CTE, say): it returns one row if the lock is held, and
// takes the row lock. Its parameters are $1 the kind ("m" for a mutex,
// "e" for an election), $2 the key as bytea with the Locker's prefix
// before it, $3 the token.
func (l *Locker) GuardSQL() string { return l.sql.Guard }

// TryLockTx takes the transaction-scoped advisory lock of key in tx
// (pg_try_advisory_xact_lock): true if taken, false if another
// transaction holds it. The lock lasts until tx ends (commit or
// rollback), so it works through a pooler in transaction mode. It has no
// token: it cannot fence (a write outside tx knows nothing of it), and
// keys are hashed to 64 bits (two keys may, very rarely, share a lock).
// It does not use the lock table.
func (l *Locker) TryLockTx(ctx context.Context, tx Querier, key string) (bool, error) {
	var ok bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, l.xactKey(key)).Scan(&ok); err != nil {
		return false, fmt.Errorf("postgres: advisory lock: %w", classify(err))
	}
	return ok, nil
}

// LockTx is TryLockTx that waits, until the lock is free or ctx ends (the
// statement is cancelled then; the transaction is aborted).
func (l *Locker) LockTx(ctx context.Context, tx Querier, key string) error {
	var s string
	err := tx.QueryRow(ctx, `SELECT pg_advisory_xact_lock($1)::text`, l.xactKey(key)).Scan(&s)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "57014" && ctx.Err() != nil { // query_canceled
			return fmt.Errorf("postgres: advisory lock: %w", ctx.Err())
		}
		return fmt.Errorf("postgres: advisory lock: %w", classify(err))
	}
	return nil
}

func (l *Locker) xactKey(key string) int64 {
	return advisoryKey("xsync:" + l.cfg.channel() + ":" + l.cfg.prefix + key)
}
