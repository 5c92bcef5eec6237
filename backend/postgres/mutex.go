package postgres

import (
	"context"
	"encoding/json"
	"time"

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
	return m.acquire(ctx, r, m.l.sql.Acquire)
}

func (m row) acquire(ctx context.Context, r backend.Request, sql string) (int64, error) {
	l := m.l
	a := attempt()
	var got, tok int64
	var requeued []byte
	dest := []any{&got, &tok, &requeued}
	if sql == l.sql.AcquireNotify {
		dest = append(dest, nil)
	}
	var at []byte // the waiter's place; nil (NULL) for none
	if r.Waiter != "" {
		at = l.place(r.Waiter)
	}
	err := l.pool.QueryRow(ctx, sql, m.kind, m.key, micros(r.TTL), r.Owner, a, r.Waiter, micros(r.Keep), at).Scan(dest...)
	if err != nil {
		if unknown(err) {
			l.undo(ctx, l.sql.Undo, m.kind, [][]byte{m.key}, a)
		}
		return 0, l.fail(ctx, "acquire", err)
	}
	if requeued != nil {
		l.movePlace(r.Waiter, requeued)
	}
	if got != a {
		if r.Waiter != "" {
			l.granted(r.Keep) // the place may have been renewed
		}
		return 0, nil
	}
	l.granted(r.TTL)
	return tok, nil
}

// place returns the key of waiter's place, nil if it has none.
func (l *Locker) place(waiter string) []byte {
	l.placeMu.Lock()
	defer l.placeMu.Unlock()
	return l.places[waiter]
}

// movePlace records waiter's new place, if it still waits.
func (l *Locker) movePlace(waiter string, key []byte) {
	l.placeMu.Lock()
	defer l.placeMu.Unlock()
	if _, ok := l.places[waiter]; ok {
		l.places[waiter] = key
	}
}

// Acquire of an election notifies observers of the grant.
func (e election) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	return e.acquire(ctx, r, e.l.sql.AcquireNotify)
}

// Release is one UPDATE that ends the row's hold if token holds it (the
// row stays for its queue, or for the sweeper); it notifies the waiters.
func (m row) Release(ctx context.Context, token int64) (bool, error) {
	tag, err := m.l.pool.Exec(ctx, m.l.sql.Release, m.kind, m.key, token)
	if err != nil {
		return false, m.l.fail(ctx, "release", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Refresh is one UPDATE of the row's expiry if token holds it; the token
// stays.
func (m row) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	tag, err := m.l.pool.Exec(ctx, m.l.sql.Refresh, m.kind, m.key, token, micros(ttl))
	if err != nil {
		return false, m.l.fail(ctx, "refresh", err)
	}
	if tag.RowsAffected() == 1 {
		m.l.granted(ttl)
		return true, nil
	}
	return false, nil
}

// Inspect reads the row and the places: its holder and its queue's length.
func (m row) Inspect(ctx context.Context) (backend.Info, error) {
	st, err := m.read(ctx, nil)
	if err != nil {
		return backend.Info{}, m.l.fail(ctx, "inspect", err)
	}
	info := backend.Info{Waiting: len(st.queue)}
	if st.ttl > 0 {
		info.Holders = []backend.Holder{st.holder}
	}
	return info, nil
}

// rowState is what a mutex's row holds now.
type rowState struct {
	holder backend.Holder
	ttl    time.Duration // 0 if nobody holds it
	queue  []place       // live places, in arrival order
	now    int64
}

// place is a queued waiter's place.
type place struct {
	Waiter  string `json:"w"`
	Expires int64  `json:"e"` // µs since the epoch, on the server's clock
}

// read reads the holder and live places: all of them with upTo nil; with
// upTo a waiter's place, the first and the one just ahead of it.
func (m row) read(ctx context.Context, upTo []byte) (rowState, error) {
	var st rowState
	var us int64
	var q []byte
	err := m.l.pool.QueryRow(ctx, m.l.sql.State, m.kind, m.key, upTo).Scan(&st.holder.Token, &us, &st.holder.Owner, &q, &st.now)
	if err != nil {
		return rowState{}, err
	}
	st.ttl = time.Duration(us) * time.Microsecond
	st.holder.TTL = st.ttl
	if err := json.Unmarshal(q, &st.queue); err != nil {
		return rowState{}, err
	}
	return st, nil
}

// ForceRelease ends the row's hold whoever holds it and notifies the
// waiters; the sequence goes on.
func (m row) ForceRelease(ctx context.Context) (bool, error) {
	tag, err := m.l.pool.Exec(ctx, m.l.sql.Force, m.kind, m.key)
	if err != nil {
		return false, m.l.fail(ctx, "force-release", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Watch queues waiter (a place alive for keep, renewed by a refused
// attempt once a third of keep has passed) and wakes it when a release
// names it (NOTIFY: a release names the first live place of the queue, so
// one waiter wakes per handoff, however many wait), and at once if its
// turn has come. When the holder's TTL is due, or the place just ahead or
// the first one is (a waiter that died: expiries notify nobody), a read
// tells whether its turn has come, and wakes it only then. stop leaves
// the queue and wakes the waiter whose turn it then is.
func (m row) Watch(ctx context.Context, waiter string, keep time.Duration) (<-chan struct{}, func(), error) {
	l := m.l
	// The place first: the watch's reads then see it, and read two places
	// (the first and the one just ahead), not the queue. A release that
	// names the waiter before the LISTEN is in effect is not lost: the
	// first read, after it, finds the lock free and the waiter first.
	leave := func() {}
	if waiter != "" {
		var at []byte
		if err := l.pool.QueryRow(ctx, l.sql.Join, m.kind, m.key, waiter, micros(keep)).Scan(&at); err != nil {
			return nil, nil, l.fail(ctx, "watch", err)
		}
		l.placeMu.Lock()
		if l.places == nil {
			l.places = map[string][]byte{}
		}
		l.places[waiter] = at
		l.placeMu.Unlock()
		l.granted(keep)
		leave = func() {
			l.placeMu.Lock()
			at := l.places[waiter]
			delete(l.places, waiter)
			l.placeMu.Unlock()
			uctx, cancel := context.WithTimeout(context.Background(), undoTimeout)
			defer cancel()
			_, _ = l.pool.Exec(uctx, l.sql.Leave, m.kind, m.key, at)
		}
	}
	ready, stop, err := l.watchAs(ctx, m.kind, [][]byte{m.key}, waiter, func(ctx context.Context) (bool, time.Duration, error) {
		var upTo []byte
		if waiter != "" {
			upTo = l.place(waiter)
		}
		st, err := m.read(ctx, upTo)
		if err != nil {
			return false, 0, err
		}
		next := st.ttl
		turn := true
		for _, p := range st.queue {
			if p.Waiter == waiter {
				break
			}
			turn = false
			if d := time.Duration(p.Expires-st.now) * time.Microsecond; next == 0 || d < next {
				next = d
			}
		}
		return st.ttl == 0 && turn, next, nil
	})
	if err != nil {
		leave()
		return nil, nil, err
	}
	return ready, func() {
		stop()
		leave()
	}, nil
}

// Changes tells an observer of every grant, release and force release
// (NOTIFY); expiries are found by the core's reads at the leader's TTL.
func (e election) Changes(ctx context.Context) (<-chan struct{}, func(), error) {
	return e.l.changes(ctx, e.kind, e.key)
}
