package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/xsync-go/xsync/backend"
)

// scanner is what List needs of a client (or of one Cluster primary).
type scanner interface {
	Scan(ctx context.Context, cursor uint64, match string, count int64) *goredis.ScanCmd
}

// masters is what List needs of a Cluster client: it scans each primary.
type masters interface {
	ForEachMaster(ctx context.Context, fn func(ctx context.Context, client *goredis.Client) error) error
}

// scansPerPage bounds the SCAN calls of one List page, so that a page
// over many keys that are not locks returns in bounded time.
const scansPerPage = 16

// List implements [backend.Lister] with SCAN over the prefix's keys of
// every kind (on each primary of a Cluster, in the order of their
// addresses), inspecting each lock it finds (one script each). The cursor
// is the primary's place, SCAN's cursor and how many keys of that SCAN
// reply were listed. It needs the SCAN command, which [ACLRules] does not
// grant: an operator's user needs +scan as well (SCAN shows the names of
// every key of the database, not only the prefix's); for a user without
// it, List's error matches errors.ErrUnsupported.
//
// SCAN's guarantees are List's: a lock held for the whole listing is
// listed (a page may repeat one), one taken or released meanwhile may or
// may not be. On a Cluster, a lock whose slot migrates while the listing
// runs can be missed (it moved to a primary already listed) or listed
// twice.
func (l *Locker) List(ctx context.Context, prefix, cursor string, limit int) ([]backend.Listed, string, error) {
	node, sc, skip, err := parseCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	nodes, err := l.scanners(ctx)
	if err != nil {
		return nil, "", err
	}
	match := glob(l.prefix) + "[msre]:" + glob(prefix) + "*"
	var out []backend.Listed
	for range scansPerPage {
		if node >= len(nodes) {
			return out, "", nil
		}
		keys, next, err := nodes[node].Scan(ctx, sc, match, 100).Result()
		if err != nil && strings.HasPrefix(err.Error(), "NOPERM") {
			return nil, "", fmt.Errorf("redis: list: the user may not SCAN (an operator's user needs +scan): %w: %w", errors.ErrUnsupported, err)
		}
		if err != nil {
			return nil, "", fmt.Errorf("redis: list: %w", l.classify(err))
		}
		for i := skip; i < len(keys); i++ {
			lk, err := l.listed(ctx, keys[i])
			if err != nil {
				return nil, "", err
			}
			if len(lk.Info.Holders) > 0 || lk.Info.Waiting > 0 {
				out = append(out, lk)
			}
			if len(out) == limit && i+1 < len(keys) {
				return out, formatCursor(node, sc, i+1), nil
			}
		}
		skip = 0
		if sc = next; sc == 0 {
			node++
		}
		if len(out) == limit {
			break
		}
	}
	if node >= len(nodes) {
		return out, "", nil
	}
	return out, formatCursor(node, sc, 0), nil
}

// listed inspects the lock whose Redis key is k.
func (l *Locker) listed(ctx context.Context, k string) (backend.Listed, error) {
	space, key := k[len(l.prefix):len(l.prefix)+2], k[len(l.prefix)+2:]
	var (
		lk  = backend.Listed{Key: key}
		err error
	)
	switch space {
	case mutexSpace:
		lk.Kind = "mutex"
		lk.Info, err = mutex{l, k}.Inspect(ctx)
	case electionSpace:
		lk.Kind = "election"
		lk.Info, err = mutex{l, k}.Inspect(ctx)
	case semaphoreSpace:
		lk.Kind = "semaphore"
		lk.Info, err = semaphore{l: l, k: k}.Inspect(ctx)
	default:
		lk.Kind = "rwlock"
		lk.Info, err = rwSide{l: l, k: k}.Inspect(ctx)
	}
	return lk, err
}

// scanners returns the client, or a Cluster's primaries by address.
func (l *Locker) scanners(ctx context.Context) ([]scanner, error) {
	if m, ok := l.client.(masters); ok {
		var (
			mu    sync.Mutex
			nodes []*goredis.Client
		)
		err := m.ForEachMaster(ctx, func(_ context.Context, c *goredis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			nodes = append(nodes, c)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("redis: list: the primaries: %w", l.classify(err))
		}
		slices.SortFunc(nodes, func(a, b *goredis.Client) int { return strings.Compare(a.Options().Addr, b.Options().Addr) })
		out := make([]scanner, len(nodes))
		for i, n := range nodes {
			out[i] = n
		}
		return out, nil
	}
	if s, ok := l.client.(scanner); ok {
		return []scanner{s}, nil
	}
	return nil, fmt.Errorf("redis: list: the client (%T) cannot SCAN: %w", l.client, errors.ErrUnsupported)
}

// glob escapes s for a SCAN pattern.
func glob(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func formatCursor(node int, sc uint64, skip int) string {
	return fmt.Sprintf("%d.%d.%d", node, sc, skip)
}

func parseCursor(c string) (node int, sc uint64, skip int, err error) {
	if c == "" {
		return 0, 0, 0, nil
	}
	parts := strings.Split(c, ".")
	if len(parts) == 3 {
		var e1, e2, e3 error
		node, e1 = strconv.Atoi(parts[0])
		sc, e2 = strconv.ParseUint(parts[1], 10, 64)
		skip, e3 = strconv.Atoi(parts[2])
		if e1 == nil && e2 == nil && e3 == nil && node >= 0 && skip >= 0 {
			return node, sc, skip, nil
		}
	}
	return 0, 0, 0, fmt.Errorf("redis: list: cursor %q is not one List returned", c)
}
