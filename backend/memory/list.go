package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// kinds orders the kinds of a key in a listing; a cursor names the last
// lock listed by its kind's place here and its key.
var kinds = []string{"mutex", "semaphore", "rwlock", "election"}

// List implements [backend.Lister]: the held mutexes and elections, and
// the semaphores and read-write locks that are held or have waiting
// writers, whose keys
// begin with prefix, ordered by key and kind. Each page sorts every lock
// of the Locker: fine for the tests and single processes it serves.
func (l *Locker) List(_ context.Context, prefix, cursor string, limit int) ([]backend.Listed, string, error) {
	now := l.clock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
	var all []backend.Listed
	for k, h := range l.locks {
		if strings.HasPrefix(k, prefix) {
			all = append(all, backend.Listed{Kind: "mutex", Key: k, Info: backend.Info{Holders: []backend.Holder{
				{Token: h.token, TTL: time.Duration(h.expires - now), Owner: l.owners[k]}}}})
		}
	}
	for _, gs := range []struct {
		kind string
		gs   *groups
	}{{"semaphore", &l.sems}, {"rwlock", &l.rws}} {
		for k := range gs.gs.m {
			if !strings.HasPrefix(k, prefix) {
				continue
			}
			g := gs.gs.get(k, now, false)
			if in := g.info(now); len(in.Holders) > 0 || in.Waiting > 0 {
				all = append(all, backend.Listed{Kind: gs.kind, Key: k, Info: in})
			}
			gs.gs.tidy(k, g, false)
		}
	}
	if e := l.elect.Load(); e != nil { // its own lock: it never takes l.mu
		e.mu.Lock()
		e.sweepLocked(now)
		for k, h := range e.locks {
			if strings.HasPrefix(k, prefix) {
				all = append(all, backend.Listed{Kind: "election", Key: k, Info: backend.Info{Holders: []backend.Holder{
					{Token: h.token, TTL: time.Duration(h.expires - now), Owner: e.owners[k]}}}})
			}
		}
		e.mu.Unlock()
	}
	order := func(a backend.Listed) int { return slices.Index(kinds, a.Kind) }
	slices.SortFunc(all, func(a, b backend.Listed) int {
		return cmp.Or(strings.Compare(a.Key, b.Key), cmp.Compare(order(a), order(b)))
	})
	if cursor != "" {
		if cursor[0] < '0' || int(cursor[0]-'0') >= len(kinds) {
			return nil, "", fmt.Errorf("memory: list: cursor %q is not one List returned", cursor)
		}
		rank, key := int(cursor[0]-'0'), cursor[1:]
		i, _ := slices.BinarySearchFunc(all, 0, func(a backend.Listed, _ int) int {
			return cmp.Or(strings.Compare(a.Key, key), cmp.Compare(order(a), rank+1))
		})
		all = all[i:]
	}
	if len(all) <= limit {
		return all, "", nil
	}
	last := all[limit-1]
	return all[:limit], string(rune('0'+order(last))) + last.Key, nil
}
