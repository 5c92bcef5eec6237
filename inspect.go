package xsync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// Info is what an operator's inspection finds about one lock.
type Info struct {
	Kind  string // "mutex", "semaphore" or "rwlock"
	Key   string
	Held  bool          // somebody holds it
	Token Item          // the first holder's token (0 if not held)
	TTL   time.Duration // the first holder's time left, on the server's clock
	Owner string        // the first holder's owner metadata, if the backend stores it
	// Holders are every holder: a mutex's one (a key set's holder shows
	// on each of its keys), a semaphore's permits, a read-write lock's
	// readers or writer; in the order they got it where the backend can
	// tell.
	Holders []Holder
	// Waiting is how many waiters keep a place: a mutex's queued
	// waiters, a read-write lock's waiting writers (0 on backends
	// without places).
	Waiting int
	// Free is a semaphore's free permits by the limit of the handle that
	// inspected it ([Semaphore.Inspect]); 0 otherwise.
	Free int
}

// Holder is one holder of a lock.
type Holder struct {
	Token Item
	TTL   time.Duration // its time left, on the server's clock
	Owner string        // its owner metadata, if the backend stores it
	Write bool          // a read-write lock's writer
}

// info turns what the backend read into an Info.
func info(kind, key string, bi backend.Info) Info {
	in := Info{Kind: kind, Key: key, Waiting: bi.Waiting}
	for _, h := range bi.Holders {
		in.Holders = append(in.Holders, Holder{Token: Item(h.Token), TTL: h.TTL, Owner: h.Owner, Write: h.Write})
	}
	if len(in.Holders) > 0 {
		first := in.Holders[0]
		in.Held, in.Token, in.TTL, in.Owner = true, first.Token, first.TTL, first.Owner
	}
	return in
}

// inspect reads t's state for an operator.
func (c *Client) inspect(ctx context.Context, t *target, kind string) (Info, error) {
	in, ok := t.value().(backend.Inspector)
	if !ok {
		return Info{}, fmt.Errorf("xsync: inspect: %s cannot inspect a %s: %w", c.name, kind, errors.ErrUnsupported)
	}
	bi, err := in.Inspect(ctx)
	if err != nil {
		return Info{}, fmt.Errorf("xsync: inspect %s %s on %s: %w", kind, keyString(t.name), c.name, err)
	}
	return info(kind, t.name, bi), nil
}

// forceRelease frees t whoever holds it, for an operator.
func (c *Client) forceRelease(ctx context.Context, t *target, kind string) (bool, error) {
	fr, ok := t.value().(backend.ForceReleaser)
	if !ok {
		return false, fmt.Errorf("xsync: force release: %s cannot force a %s free: %w", c.name, kind, errors.ErrUnsupported)
	}
	freed, err := fr.ForceRelease(ctx)
	if err != nil {
		return false, fmt.Errorf("xsync: force release %s %s on %s: %w", kind, keyString(t.name), c.name, err)
	}
	return freed, nil
}

// Inspect reports whether key's mutex is held, by which token, for how
// long still, by whom (where the backend stores owner metadata), and how
// many waiters queue for it. It changes nothing. It returns an error
// matching errors.ErrUnsupported if the backend cannot inspect locks.
func (c *Client) Inspect(ctx context.Context, key string) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, err
	}
	t := c.mutex(key)
	return c.inspect(ctx, &t, "mutex")
}

// ForceRelease frees key's mutex whoever holds it: an operator's action
// for a lock whose holder is stuck. Waiters are woken as by a release,
// and the fencing counter is kept, so the next holder's token is still
// larger (the stuck holder's writes stay fenced off). It returns whether
// a lock was held, and an error matching errors.ErrUnsupported if the
// backend cannot force a release.
func (c *Client) ForceRelease(ctx context.Context, key string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	t := c.mutex(key)
	return c.forceRelease(ctx, &t, "mutex")
}

// Inspect reports the semaphore's holders (one per permit held) and its
// free permits by this handle's limit. It changes nothing.
func (s *Semaphore) Inspect(ctx context.Context) (Info, error) {
	t, err := s.target()
	if err != nil {
		return Info{}, err
	}
	in, err := s.c.inspect(ctx, &t, "semaphore")
	if err != nil {
		return Info{}, err
	}
	in.Free = max(s.limit-len(in.Holders), 0)
	return in, nil
}

// ForceRelease frees every permit of the semaphore, whoever holds them,
// and wakes its waiters: an operator's action. It reports whether any
// permit was held.
func (s *Semaphore) ForceRelease(ctx context.Context) (bool, error) {
	t, err := s.target()
	if err != nil {
		return false, err
	}
	return s.c.forceRelease(ctx, &t, "semaphore")
}

// Inspect reports the lock's readers or writer (Holder.Write) and how many
// writers wait. It changes nothing.
func (m *RWLock) Inspect(ctx context.Context) (Info, error) {
	t, err := m.target(true)
	if err != nil {
		return Info{}, err
	}
	return m.c.inspect(ctx, &t, "rwlock")
}

// ForceRelease frees the lock, whoever holds it (every reader, or the
// writer), and wakes its waiters: an operator's action. Waiting writers
// keep their places. It reports whether anything was held.
func (m *RWLock) ForceRelease(ctx context.Context) (bool, error) {
	t, err := m.target(true)
	if err != nil {
		return false, err
	}
	return m.c.forceRelease(ctx, &t, "rwlock")
}

// MaxList is the most locks one [Client.List] call returns.
const MaxList = 1000

// List returns, a page at a time, the locks of every kind that are held or
// waited for and whose keys begin with prefix ("" for all), with what
// [Client.Inspect] tells of each: at most limit locks (1 to [MaxList])
// from cursor on ("" for the first page), and the cursor of the next page
// ("" after the last). It changes nothing. A page may hold fewer locks
// than limit, none even, while next is not ""; a lock that changes while
// the pages are read may be listed twice or not at all, and each Info is
// as it was when that lock was read. A key set shows as the mutexes of
// its keys. It returns an error matching errors.ErrUnsupported if the
// backend cannot list locks.
func (c *Client) List(ctx context.Context, prefix, cursor string, limit int) (locks []Info, next string, err error) {
	if limit < 1 || limit > MaxList {
		return nil, "", fmt.Errorf("%w: list limit %d: want 1 to MaxList (%d)", ErrInvalid, limit, MaxList)
	}
	if len(prefix) > MaxKeyLen {
		return nil, "", fmt.Errorf("%w: list prefix of %d bytes: at most MaxKeyLen (%d)", ErrInvalid, len(prefix), MaxKeyLen)
	}
	li, ok := c.l.(backend.Lister)
	if !ok {
		return nil, "", fmt.Errorf("xsync: list: %s cannot list locks: %w", c.name, errors.ErrUnsupported)
	}
	found, next, err := li.List(ctx, prefix, cursor, limit)
	if err != nil {
		return nil, "", fmt.Errorf("xsync: list %s on %s: %w", keyString(prefix), c.name, err)
	}
	for _, f := range found {
		locks = append(locks, info(f.Kind, f.Key, f.Info))
	}
	return locks, next, nil
}
