package postgres

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// List implements [backend.Lister]: one SELECT of the rows under the
// Locker's prefix and prefix, in key order, alive (held, or with waiting
// writers' marks). The cursor is the last row's kind and key.
func (l *Locker) List(ctx context.Context, prefix, cursor string, limit int) ([]backend.Listed, string, error) {
	afterKey, afterKind := []byte{}, ""
	if cursor != "" {
		kind, hexKey, ok := strings.Cut(cursor, ":")
		k, err := hex.DecodeString(hexKey)
		if !ok || err != nil {
			return nil, "", fmt.Errorf("postgres: list: bad cursor %q", cursor)
		}
		afterKind, afterKey = kind, k
	}
	rows, err := l.pool.Query(ctx, l.sql.List, l.key(prefix), afterKey, afterKind, limit)
	if err != nil {
		return nil, "", l.fail(ctx, "list", err)
	}
	defer rows.Close()
	var out []backend.Listed
	n := 0
	next := ""
	for rows.Next() {
		var (
			kind, owner string
			key, hs, ms []byte
			tok, us     int64
			st          state
		)
		if err := rows.Scan(&kind, &key, &tok, &us, &owner, &hs, &ms, &st.now); err != nil {
			return nil, "", l.fail(ctx, "list", err)
		}
		n++
		next = kind + ":" + hex.EncodeToString(key)
		lk := backend.Listed{Key: strings.TrimPrefix(string(key), l.cfg.prefix)}
		switch kind {
		case kindMutex, kindElection:
			lk.Kind = map[string]string{kindMutex: "mutex", kindElection: "election"}[kind]
			if us > 0 {
				lk.Info.Holders = []backend.Holder{{Token: tok, TTL: time.Duration(us) * time.Microsecond, Owner: owner}}
			}
			var queue []place
			if err := json.Unmarshal(hs, &queue); err != nil {
				return nil, "", fmt.Errorf("postgres: list: %w", err)
			}
			lk.Info.Waiting = len(queue)
			if us <= 0 && len(queue) == 0 {
				continue
			}
		case kindSemaphore, kindRW:
			lk.Kind = map[string]string{kindSemaphore: "semaphore", kindRW: "rwlock"}[kind]
			if err := json.Unmarshal(hs, &st.holders); err != nil {
				return nil, "", fmt.Errorf("postgres: list: %w", err)
			}
			if err := json.Unmarshal(ms, &st.marks); err != nil {
				return nil, "", fmt.Errorf("postgres: list: %w", err)
			}
			lk.Info = st.info()
			if len(lk.Info.Holders) == 0 && lk.Info.Waiting == 0 {
				continue
			}
		default:
			continue
		}
		out = append(out, lk)
	}
	if err := rows.Err(); err != nil {
		return nil, "", l.fail(ctx, "list", err)
	}
	if n < limit {
		next = ""
	}
	return out, next, nil
}
