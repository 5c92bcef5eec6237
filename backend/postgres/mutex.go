package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xsync-go/xsync/backend"
)

// Kinds, as stored in the table's kind column.
const (
	kindMutex     = "m"
	kindSemaphore = "s"
	kindRW        = "r"
	kindElection  = "e"
)

// Mutex implements [backend.Mutexer]: the mutex of key, one row of kind
// "m", with every ability. Its waiters do not queue.
func (l *Locker) Mutex(key string) backend.Lock { return row{l, kindMutex, l.key(key)} }

// Election implements [backend.Electioner]: the election of name, one row
// of kind "e" whose holder is the leader and whose owner is the leader's
// identity. Grants are notified too, for observers.
func (l *Locker) Election(name string) backend.Lock {
	return election{row{l, kindElection, l.key(name)}}
}

// row is a lock that is one row: a mutex or an election.
type row struct {
	l    *Locker
	kind string
	key  []byte
}

type election struct{ row }

var (
	_ backend.Refresher     = row{}
	_ backend.Watcher       = row{}
	_ backend.Inspector     = row{}
	_ backend.ForceReleaser = row{}
	_ backend.Notifier      = election{}
)

// Acquire is one INSERT ... ON CONFLICT DO UPDATE that takes the row if it
// is missing or expired, with a new token from the sequence.
func (m row) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	return m.acquire(ctx, r, m.l.sql.acquire)
}

func (m row) acquire(ctx context.Context, r backend.Request, sql string) (int64, error) {
	l := m.l
	a := attempt()
	var tok int64
	err := l.pool.QueryRow(ctx, sql, m.kind, m.key, micros(r.TTL), r.Owner, a).Scan(append([]any{&tok}, scanRest(sql == l.sql.acquireNotify)...)...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		if unknown(err) {
			l.undo(ctx, l.sql.undo, m.kind, [][]byte{m.key}, a)
		}
		return 0, l.fail(ctx, "acquire", err)
	}
	l.granted(r.TTL)
	return tok, nil
}

// scanRest skips the notification's void column where there is one.
func scanRest(notify bool) []any {
	if notify {
		return []any{nil}
	}
	return nil
}

// Acquire of an election notifies observers of the grant.
func (e election) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	return e.acquire(ctx, r, e.l.sql.acquireNotify)
}

// Release is one DELETE of the row if token holds it; it notifies the
// waiters.
func (m row) Release(ctx context.Context, token int64) (bool, error) {
	var live bool
	err := m.l.pool.QueryRow(ctx, m.l.sql.release, m.kind, m.key, token).Scan(&live, nil)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, m.l.fail(ctx, "release", err)
	}
	return live, nil
}

// Refresh is one UPDATE of the row's expiry if token holds it; the token
// stays.
func (m row) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	tag, err := m.l.pool.Exec(ctx, m.l.sql.refresh, m.kind, m.key, token, micros(ttl))
	if err != nil {
		return false, m.l.fail(ctx, "refresh", err)
	}
	if tag.RowsAffected() == 1 {
		m.l.granted(ttl)
		return true, nil
	}
	return false, nil
}

// Inspect reads the row.
func (m row) Inspect(ctx context.Context) (backend.Info, error) {
	var h backend.Holder
	var us int64
	err := m.l.pool.QueryRow(ctx, m.l.sql.state, m.kind, m.key).Scan(&h.Token, &us, &h.Owner)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return backend.Info{}, nil
	case err != nil:
		return backend.Info{}, m.l.fail(ctx, "inspect", err)
	}
	h.TTL = time.Duration(us) * time.Microsecond
	return backend.Info{Holders: []backend.Holder{h}}, nil
}

// ForceRelease deletes the row whoever holds it and notifies the waiters;
// the sequence goes on.
func (m row) ForceRelease(ctx context.Context) (bool, error) {
	var live bool
	err := m.l.pool.QueryRow(ctx, m.l.sql.force, m.kind, m.key).Scan(&live, nil)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, m.l.fail(ctx, "force-release", err)
	}
	return live, nil
}

// Watch wakes the waiter on every release (NOTIFY), at once if the row is
// free, and when the holder's TTL is due. Waiters do not queue.
func (m row) Watch(ctx context.Context, _ string, _ time.Duration) (<-chan struct{}, func(), error) {
	return m.l.watch(ctx, m.kind, m.key, func(ctx context.Context) (bool, time.Duration, error) {
		info, err := m.Inspect(ctx)
		if err != nil || len(info.Holders) == 0 {
			return err == nil, 0, err
		}
		return false, info.Holders[0].TTL, nil
	})
}

// Changes tells an observer of every grant, release and force release
// (NOTIFY); expiries are found by the core's reads at the leader's TTL.
func (e election) Changes(ctx context.Context) (<-chan struct{}, func(), error) {
	return e.l.changes(ctx, e.kind, e.key)
}
