package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xsync-go/xsync/backend"
)

// Semaphore implements [backend.Semaphorer]: one row of kind "s" whose
// holders (jsonb) are the permits. Permits are not queued.
func (l *Locker) Semaphore(key string, limit int) backend.Lock {
	return semaphore{group{l, kindSemaphore, l.key(key)}, limit}
}

// RWLock implements [backend.RWLocker]: one row of kind "r" whose holders
// are the readers or the writer, and whose marks are the waiting writers'
// (each alive for its keep time, renewed by the writer's refused attempts),
// which keep new readers out.
func (l *Locker) RWLock(key string) (read, write backend.Lock) {
	g := group{l, kindRW, l.key(key)}
	return reader{g}, writer{g}
}

// group is what the row of a semaphore or a read-write lock shares.
type group struct {
	l    *Locker
	kind string
	key  []byte
}

type (
	semaphore struct {
		group
		limit int
	}
	reader struct{ group }
	writer struct{ group }
)

var (
	_ backend.Refresher     = group{}
	_ backend.Inspector     = group{}
	_ backend.ForceReleaser = group{}
	_ backend.Watcher       = semaphore{}
	_ backend.Watcher       = reader{}
	_ backend.Watcher       = writer{}
)

// holder is one element of a row's holders.
type holder struct {
	Token   int64  `json:"t"`
	Expires int64  `json:"e"` // µs since the epoch, on the server's clock
	Owner   string `json:"o"`
	Writer  bool   `json:"w"`
}

// state is what a group's row holds now: its live holders and marks.
type state struct {
	holders []holder
	marks   map[string]int64
	now     int64 // µs since the epoch, on the server's clock
}

// next is how long until the earliest holder or mark expires (0 if none).
func (s state) next() time.Duration {
	var first int64
	for _, h := range s.holders {
		if first == 0 || h.Expires < first {
			first = h.Expires
		}
	}
	for _, e := range s.marks {
		if first == 0 || e < first {
			first = e
		}
	}
	if first == 0 {
		return 0
	}
	return time.Duration(first-s.now) * time.Microsecond
}

func (s state) writer() bool {
	return slices.ContainsFunc(s.holders, func(h holder) bool { return h.Writer })
}

func (g group) read(ctx context.Context) (state, error) {
	var hs, ms []byte
	var st state
	err := g.l.pool.QueryRow(ctx, g.l.sql.GroupState, g.kind, g.key).Scan(&hs, &ms, &st.now)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return state{}, nil
	case err != nil:
		return state{}, err
	}
	if err := json.Unmarshal(hs, &st.holders); err != nil {
		return state{}, err
	}
	if err := json.Unmarshal(ms, &st.marks); err != nil {
		return state{}, err
	}
	return st, nil
}

// take runs one acquire statement of the group with the attempt's args
// after the key; it returns the token, or 0 if refused.
func (g group) take(ctx context.Context, sql string, ttl time.Duration, a int64, args ...any) (int64, error) {
	var tok int64
	err := g.l.pool.QueryRow(ctx, sql, args...).Scan(&tok)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		if unknown(err) {
			g.l.undo(ctx, g.l.sql.GroupUndo, g.kind, g.key, a)
		}
		return 0, g.l.fail(ctx, "acquire", err)
	}
	g.l.granted(ttl)
	return tok, nil
}

// Acquire takes a permit if fewer than limit are held.
func (s semaphore) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	a := attempt()
	return s.take(ctx, s.l.sql.SemAcquire, r.TTL, a, s.key, micros(r.TTL), r.Owner, a, s.limit)
}

// Acquire takes a read lock if no writer holds the lock or waits for it.
func (r reader) Acquire(ctx context.Context, req backend.Request) (int64, error) {
	a := attempt()
	return r.take(ctx, r.l.sql.ReadAcquire, req.TTL, a, r.key, micros(req.TTL), req.Owner, a)
}

// Acquire takes the write lock if nobody holds the lock; the grant removes
// the waiter's mark, and a refusal renews it for req.Keep.
func (w writer) Acquire(ctx context.Context, req backend.Request) (int64, error) {
	l := w.l
	a := attempt()
	var got, tok int64
	err := l.pool.QueryRow(ctx, l.sql.WriteAcquire, w.key, micros(req.TTL), req.Owner, a, req.Waiter, micros(req.Keep)).Scan(&got, &tok)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		if unknown(err) {
			l.undo(ctx, l.sql.GroupUndo, w.kind, w.key, a)
		}
		return 0, l.fail(ctx, "acquire", err)
	}
	l.granted(max(req.TTL, req.Keep))
	if got != a {
		return 0, nil // refused; the mark was renewed
	}
	return tok, nil
}

// Release removes token's holder and notifies the waiters.
func (g group) Release(ctx context.Context, token int64) (bool, error) {
	tag, err := g.l.pool.Exec(ctx, g.l.sql.GroupRelease, g.kind, g.key, token)
	if err != nil {
		return false, g.l.fail(ctx, "release", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Refresh sets token's holder's expiry; the token stays.
func (g group) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	tag, err := g.l.pool.Exec(ctx, g.l.sql.GroupRefresh, g.kind, g.key, token, micros(ttl))
	if err != nil {
		return false, g.l.fail(ctx, "refresh", err)
	}
	if tag.RowsAffected() == 1 {
		g.l.granted(ttl)
		return true, nil
	}
	return false, nil
}

// Inspect reads the live holders, in token order, and the waiting writers.
func (g group) Inspect(ctx context.Context) (backend.Info, error) {
	st, err := g.read(ctx)
	if err != nil {
		return backend.Info{}, g.l.fail(ctx, "inspect", err)
	}
	return st.info(), nil
}

func (st state) info() backend.Info {
	info := backend.Info{Waiting: len(st.marks)}
	for _, h := range st.holders {
		info.Holders = append(info.Holders, backend.Holder{Token: h.Token, TTL: time.Duration(h.Expires-st.now) * time.Microsecond, Owner: h.Owner, Write: h.Writer})
	}
	slices.SortFunc(info.Holders, func(a, b backend.Holder) int { return cmp.Compare(a.Token, b.Token) })
	return info
}

// ForceRelease drops every holder and notifies the waiters.
func (g group) ForceRelease(ctx context.Context) (bool, error) {
	tag, err := g.l.pool.Exec(ctx, g.l.sql.GroupForce, g.kind, g.key)
	if err != nil {
		return false, g.l.fail(ctx, "force-release", err)
	}
	return tag.RowsAffected() == 1, nil
}

// watchGroup watches the group, free saying when an attempt may succeed.
func (g group) watchGroup(ctx context.Context, free func(state) bool) (<-chan struct{}, func(), error) {
	return g.l.watch(ctx, g.kind, g.key, func(ctx context.Context) (bool, time.Duration, error) {
		st, err := g.read(ctx)
		if err != nil {
			return false, 0, err
		}
		return free(st), st.next(), nil
	})
}

// Watch wakes the waiter at once if a permit is free, on every release,
// and at each holder's expiry.
func (s semaphore) Watch(ctx context.Context, _ string, _ time.Duration) (<-chan struct{}, func(), error) {
	return s.watchGroup(ctx, func(st state) bool { return len(st.holders) < s.limit })
}

// Watch wakes a reader at once if no writer holds or waits, on every
// release and expiry, and when a waiting writer leaves.
func (r reader) Watch(ctx context.Context, _ string, _ time.Duration) (<-chan struct{}, func(), error) {
	return r.watchGroup(ctx, func(st state) bool { return !st.writer() && len(st.marks) == 0 })
}

// Watch sets waiter's mark, which keeps new readers out for keep (or until
// the waiter's next refused attempt renews it), and wakes the writer at
// once if nobody holds the lock, on every release, and at each expiry.
// stop removes the mark and wakes the readers it kept out.
func (w writer) Watch(ctx context.Context, waiter string, keep time.Duration) (<-chan struct{}, func(), error) {
	l := w.l
	ready, stop, err := w.watchGroup(ctx, func(st state) bool { return len(st.holders) == 0 })
	if err != nil {
		return nil, nil, err
	}
	unmark := func() { l.undo(ctx, l.sql.WriteUnmark, w.key, waiter) }
	if _, err := l.pool.Exec(ctx, l.sql.WriteMark, w.key, waiter, micros(keep)); err != nil {
		stop()
		if unknown(err) {
			// Cut short (the core bounds a watch's set-up): the mark may
			// have been set, and nobody would take it away (the core's
			// next watch has another name): it would keep readers out for
			// keep.
			unmark()
		}
		return nil, nil, l.fail(ctx, "watch", err)
	}
	l.granted(keep)
	return ready, func() {
		stop()
		unmark()
	}, nil
}
