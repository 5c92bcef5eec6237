package xsync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// Info is what [Client.Inspect] finds about a key.
type Info struct {
	Key   string
	Held  bool
	Token Item          // the holder's token (0 if not held)
	TTL   time.Duration // how long the lock has left, on the server's clock
	Owner string        // the holder's owner metadata, if the backend stores it
}

// Inspect reports whether key's mutex is held, by which token, for how
// long still, and by whom (where the backend stores owner metadata). It
// returns an error matching errors.ErrUnsupported if the backend cannot
// inspect locks.
func (c *Client) Inspect(ctx context.Context, key string) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, err
	}
	t := c.mutex(key)
	in, ok := t.value().(backend.Inspector)
	if !ok {
		return Info{}, fmt.Errorf("xsync: inspect: %s cannot inspect locks: %w", c.name, errors.ErrUnsupported)
	}
	bi, err := in.Inspect(ctx)
	if err != nil {
		return Info{}, fmt.Errorf("xsync: inspect %s on %s: %w", keyString(key), c.name, err)
	}
	if len(bi.Holders) == 0 {
		return Info{Key: key}, nil
	}
	h := bi.Holders[0]
	return Info{Key: key, Held: true, Token: Item(h.Token), TTL: h.TTL, Owner: h.Owner}, nil
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
	fr, ok := t.value().(backend.ForceReleaser)
	if !ok {
		return false, fmt.Errorf("xsync: force release: %s cannot: %w", c.name, errors.ErrUnsupported)
	}
	freed, err := fr.ForceRelease(ctx)
	if err != nil {
		return false, fmt.Errorf("xsync: force release %s on %s: %w", keyString(key), c.name, err)
	}
	return freed, nil
}
