package postgres

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/pgsql"
)

// Multi implements [backend.MultiLocker]: the mutex rows of keys, taken
// under one token in one statement, all or none.
func (l *Locker) Multi(keys []string) backend.Lock {
	ks := make([][]byte, len(keys))
	for i, k := range keys {
		ks[i] = l.key(k)
	}
	// Rows are locked in one order by every transaction: no deadlock.
	slices.SortFunc(ks, bytes.Compare)
	return multi{l, ks}
}

type multi struct {
	l    *Locker
	keys [][]byte
}

var (
	_ backend.Refresher     = multi{}
	_ backend.Watcher       = multi{}
	_ backend.Inspector     = multi{}
	_ backend.ForceReleaser = multi{}
)

// Acquire is one statement: an INSERT ... ON CONFLICT DO UPDATE of every
// key's row under one new token, which fails (and so writes nothing)
// unless it took every key: one round trip, and no row stays locked while
// the client is away.
func (m multi) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	l := m.l
	a := attempt()
	var tok int64
	err := l.pool.QueryRow(ctx, l.sql.MultiAcquire, m.keys, micros(r.TTL), r.Owner, a).Scan(&tok)
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == pgsql.MultiBusy:
		return 0, nil
	case err != nil:
		if unknown(err) {
			l.undo(ctx, l.sql.Undo, kindMutex, m.keys, a)
		}
		return 0, l.fail(ctx, "acquire", err)
	}
	l.granted(r.TTL)
	return tok, nil
}

// Release deletes the rows token still holds, and says true if that was
// every key.
func (m multi) Release(ctx context.Context, token int64) (bool, error) {
	rows, err := m.l.pool.Query(ctx, m.l.sql.MultiRelease, m.keys, token)
	if err != nil {
		return false, m.l.fail(ctx, "release", err)
	}
	live := 0
	for rows.Next() {
		var ok bool
		if err := rows.Scan(&ok, nil); err != nil {
			rows.Close()
			return false, m.l.fail(ctx, "release", err)
		}
		if ok {
			live++
		}
	}
	if err := rows.Err(); err != nil {
		return false, m.l.fail(ctx, "release", err)
	}
	return live == len(m.keys), nil
}

// Refresh extends the rows token holds, and says true if that was every
// key.
func (m multi) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	tag, err := m.l.pool.Exec(ctx, m.l.sql.MultiRefresh, m.keys, token, micros(ttl))
	if err != nil {
		return false, m.l.fail(ctx, "refresh", err)
	}
	m.l.granted(ttl)
	return tag.RowsAffected() == int64(len(m.keys)), nil
}

// Inspect lists the holders of the keys (one per token).
func (m multi) Inspect(ctx context.Context) (backend.Info, error) {
	rows, err := m.l.pool.Query(ctx, m.l.sql.MultiState, m.keys)
	if err != nil {
		return backend.Info{}, m.l.fail(ctx, "inspect", err)
	}
	var info backend.Info
	seen := map[int64]bool{}
	for rows.Next() {
		var key []byte
		var h backend.Holder
		var us int64
		if err := rows.Scan(&key, &h.Token, &us, &h.Owner); err != nil {
			rows.Close()
			return backend.Info{}, m.l.fail(ctx, "inspect", err)
		}
		if !seen[h.Token] {
			seen[h.Token] = true
			h.TTL = time.Duration(us) * time.Microsecond
			info.Holders = append(info.Holders, h)
		}
	}
	if err := rows.Err(); err != nil {
		return backend.Info{}, m.l.fail(ctx, "inspect", err)
	}
	slices.SortFunc(info.Holders, func(a, b backend.Holder) int { return cmp.Compare(a.Token, b.Token) })
	return info, nil
}

// ForceRelease deletes the keys' rows whoever holds them.
func (m multi) ForceRelease(ctx context.Context) (bool, error) {
	rows, err := m.l.pool.Query(ctx, m.l.sql.MultiForce, m.keys)
	if err != nil {
		return false, m.l.fail(ctx, "force-release", err)
	}
	freed := false
	for rows.Next() {
		var ok bool
		if err := rows.Scan(&ok, nil); err != nil {
			rows.Close()
			return false, m.l.fail(ctx, "force-release", err)
		}
		freed = freed || ok
	}
	if err := rows.Err(); err != nil {
		return false, m.l.fail(ctx, "force-release", err)
	}
	return freed, nil
}

// Watch wakes the waiter on a release of any of the keys, at once if all
// are free, and when the earliest holder's TTL is due.
func (m multi) Watch(ctx context.Context, _ string, _ time.Duration) (<-chan struct{}, func(), error) {
	return m.l.watchMany(ctx, kindMutex, m.keys, func(ctx context.Context) (bool, time.Duration, error) {
		info, err := m.Inspect(ctx)
		if err != nil || len(info.Holders) == 0 {
			return err == nil, 0, err
		}
		next := info.Holders[0].TTL
		for _, h := range info.Holders {
			next = min(next, h.TTL)
		}
		return false, next, nil
	})
}
