package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
)

// The rules of what operators see and do: inspection and force-release of
// every kind, listing, and the kinds' separate key spaces.

// inspectsKind reports whether the backend inspects and force-releases
// lk.
func inspectsKind(lk backend.Lock) bool {
	_, in := lk.(backend.Inspector)
	_, fr := lk.(backend.ForceReleaser)
	return in && fr
}

// checkHolders fails the test unless in shows exactly the leases held,
// with TTLs within the one asked for and, if owner is not "" and the
// backend stores owners, their owner.
func (e *env) checkHolders(what string, in xsync.Info, held []*xsync.Lease, ttl time.Duration, owner string) {
	e.t.Helper()
	var got, want []xsync.Item
	for _, h := range in.Holders {
		got = append(got, h.Token)
		if h.TTL <= 0 || h.TTL > ttl+time.Second {
			e.t.Errorf("%s: holder %d's TTL %v; want in (0, %v]", what, h.Token, h.TTL, ttl)
		}
		if owner != "" && !e.opts.NoOwner && !strings.Contains(h.Owner, owner) {
			e.t.Errorf("%s: holder %d's owner %q; want it to contain %q", what, h.Token, h.Owner, owner)
		}
	}
	for _, l := range held {
		want = append(want, l.Token())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		e.t.Fatalf("%s: Inspect shows holders %v; want %v (%+v)", what, got, want, in)
	}
	if in.Held != (len(want) > 0) {
		e.t.Fatalf("%s: Inspect says held=%v with %d holders", what, in.Held, len(want))
	}
}

// typesInspectAndForceRelease: Inspect shows every holder of a semaphore
// and of a read-write lock (readers, or the writer, and waiting
// writers); ForceRelease frees them all and the lock is free again.
func typesInspectAndForceRelease(e *env) {
	ttl := e.longTTL()
	owner := xsync.WithOwner("conformance-operator")
	if s, ok := e.l.(backend.Semaphorer); ok && inspectsKind(s.Semaphore(e.key("probe"), 1)) {
		key := e.key("s")
		const limit = 3
		sem := e.client().Semaphore(key, limit)
		if in, err := sem.Inspect(e.ctx); err != nil || in.Held || in.Free != limit {
			e.t.Fatalf("Inspect of a free semaphore = (%+v, %v); want not held, %d free", in, err, limit)
		}
		var held []*xsync.Lease
		for range limit - 1 {
			l, err := e.separate().Semaphore(key, limit).Acquire(e.ctx, xsync.WithTTL(ttl), owner)
			if err != nil {
				e.t.Fatal(err)
			}
			held = append(held, l)
		}
		in, err := sem.Inspect(e.ctx)
		if err != nil {
			e.t.Fatalf("Inspect of a semaphore: %v", err)
		}
		e.checkHolders("a semaphore with 2 of 3 permits held", in, held, ttl, "")
		if in.Kind != "semaphore" || in.Key != key || in.Free != 1 {
			e.t.Fatalf("Inspect of a semaphore = %+v; want kind semaphore, its key, 1 free", in)
		}
		if ok, err := sem.ForceRelease(e.ctx); !ok || err != nil {
			e.t.Fatalf("ForceRelease of a held semaphore = (%v, %v); want (true, nil)", ok, err)
		}
		if in, err := sem.Inspect(e.ctx); err != nil || in.Held || len(in.Holders) != 0 {
			e.t.Fatalf("Inspect after ForceRelease = (%+v, %v); want no holder", in, err)
		}
		for i := range limit {
			l, err := e.separate().Semaphore(key, limit).Acquire(e.ctx, xsync.WithTTL(ttl))
			if err != nil {
				e.t.Fatalf("permit %d of %d after ForceRelease: %v", i+1, limit, err)
			}
			held = append(held, l)
		}
		for _, l := range held[:limit-1] {
			if ok, err := l.Release(e.ctx); ok || err != nil {
				e.t.Errorf("release of a forced-out permit = (%v, %v); want (false, nil)", ok, err)
			}
		}
	}
	if r, ok := e.l.(backend.RWLocker); ok {
		if _, w := r.RWLock(e.key("probe")); !inspectsKind(w) {
			return
		}
		key := e.key("rw")
		rw := e.client().RWLock(key)
		var readers []*xsync.Lease
		for range 2 {
			l, err := e.separate().RWLock(key).AcquireRead(e.ctx, xsync.WithTTL(ttl), owner)
			if err != nil {
				e.t.Fatal(err)
			}
			readers = append(readers, l)
		}
		in, err := rw.Inspect(e.ctx)
		if err != nil {
			e.t.Fatalf("Inspect of a read-write lock: %v", err)
		}
		e.checkHolders("a read-write lock with 2 readers", in, readers, ttl, "")
		if in.Kind != "rwlock" || slices.ContainsFunc(in.Holders, func(h xsync.Holder) bool { return h.Write }) {
			e.t.Fatalf("Inspect of a read-write lock held by readers = %+v; want kind rwlock, no writer", in)
		}
		if e.writersWatch() {
			// The writer waits once its watch took effect: its place is
			// in the store then.
			ctx, cancel := context.WithCancel(e.ctx)
			got := e.waitingWriter(ctx, key, xsync.WithWait(xsync.WaitForever))
			in, err := rw.Inspect(e.ctx)
			if err != nil || in.Waiting != 1 {
				e.t.Errorf("Inspect while a writer waits = (%+v, %v); want Waiting 1", in, err)
			}
			cancel()
			if a := <-got; a.err == nil {
				e.mustRelease(a.lease, "the waiting writer")
			}
		}
		if ok, err := rw.ForceRelease(e.ctx); !ok || err != nil {
			e.t.Fatalf("ForceRelease of a read-write lock held by readers = (%v, %v); want (true, nil)", ok, err)
		}
		w, err := e.separate().RWLock(key).AcquireWrite(e.ctx, xsync.WithTTL(ttl), owner)
		if err != nil {
			e.t.Fatalf("a writer after ForceRelease freed the readers: %v", err)
		}
		in, err = rw.Inspect(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		e.checkHolders("a read-write lock with a writer", in, []*xsync.Lease{w}, ttl, "")
		if !in.Holders[0].Write {
			e.t.Fatalf("Inspect of a written lock = %+v; want its holder marked Write", in)
		}
		if ok, err := rw.ForceRelease(e.ctx); !ok || err != nil {
			e.t.Fatalf("ForceRelease of a written lock = (%v, %v); want (true, nil)", ok, err)
		}
		if in, err := rw.Inspect(e.ctx); err != nil || in.Held {
			e.t.Fatalf("Inspect after ForceRelease = (%+v, %v); want free", in, err)
		}
	}
}

// listing: List shows every held lock of every kind under a prefix, and
// nothing outside it, page by page, and no lock once they are released.
func listing(e *env) {
	c := e.client()
	if _, _, err := c.List(e.ctx, e.key(""), "", 10); errors.Is(err, errors.ErrUnsupported) {
		e.t.Skipf("the backend cannot list locks: %v", err)
	}
	ttl := e.longTTL()
	p := e.key("list/")
	want := map[string]xsync.Item{}
	var leases []*xsync.Lease
	take := func(what string, l *xsync.Lease, err error) {
		e.t.Helper()
		if err != nil {
			e.t.Fatalf("%s: %v", what, err)
		}
		leases = append(leases, l)
		want[what] = l.Token()
	}
	l, err := c.Acquire(e.ctx, p+"a", xsync.WithTTL(ttl))
	take("mutex "+p+"a", l, err)
	if _, ok := e.l.(backend.Semaphorer); ok {
		l, err := c.Semaphore(p+"b", 2).Acquire(e.ctx, xsync.WithTTL(ttl))
		take("semaphore "+p+"b", l, err)
	}
	if _, ok := e.l.(backend.RWLocker); ok {
		l, err := c.RWLock(p+"c").AcquireWrite(e.ctx, xsync.WithTTL(ttl))
		take("rwlock "+p+"c", l, err)
	}
	if _, ok := e.l.(backend.MultiLocker); ok {
		l, err := c.AcquireAll(e.ctx, []string{p + "{d}1", p + "{d}2"}, xsync.WithTTL(ttl))
		if err != nil {
			e.t.Fatal(err)
		}
		leases = append(leases, l)
		want["mutex "+p+"{d}1"], want["mutex "+p+"{d}2"] = l.Token(), l.Token()
	}
	for _, k := range []string{p + "e", p + "f", p + "g"} {
		l, err := c.Acquire(e.ctx, k, xsync.WithTTL(ttl))
		take("mutex "+k, l, err)
	}
	outside, err := c.Acquire(e.ctx, e.key("listx"), xsync.WithTTL(ttl))
	if err != nil {
		e.t.Fatal(err)
	}
	leases = append(leases, outside)

	got := e.listAll(c, p, 2)
	if len(got) != len(want) {
		e.t.Errorf("List of %q found %d locks; want %d", p, len(got), len(want))
	}
	for what, tok := range want {
		in, ok := got[what]
		switch {
		case !ok:
			e.t.Errorf("List of %q misses the %s", p, what)
		case !in.Held || in.Token != tok:
			e.t.Errorf("List of %q shows the %s as %+v; want held by %d", p, what, in, tok)
		}
	}
	for what := range got {
		if _, ok := want[what]; !ok {
			e.t.Errorf("List of %q shows %s, which is not held under the prefix", p, what)
		}
	}
	for _, l := range leases {
		e.mustRelease(l, "a listed lock")
	}
	if got := e.listAll(c, p, 3); len(got) != 0 {
		e.t.Errorf("List of %q after every lock was released shows %v", p, got)
	}
	if _, _, err := c.List(e.ctx, p, "", 0); !errors.Is(err, xsync.ErrInvalid) {
		e.t.Errorf("List with limit 0 = %v; want ErrInvalid", err)
	}
}

// listAll reads every page of c.List(prefix) with limit, and returns the
// locks by kind and key.
func (e *env) listAll(c *xsync.Client, prefix string, limit int) map[string]xsync.Info {
	e.t.Helper()
	out := map[string]xsync.Info{}
	cursor := ""
	for page := 0; ; page++ {
		if page > 1000 {
			e.t.Fatalf("List of %q: more than 1000 pages of %d", prefix, limit)
		}
		locks, next, err := c.List(e.ctx, prefix, cursor, limit)
		if err != nil {
			e.t.Fatalf("List of %q, page %d: %v", prefix, page, err)
		}
		if len(locks) > limit {
			e.t.Fatalf("List of %q, page %d: %d locks; want at most %d", prefix, page, len(locks), limit)
		}
		for _, in := range locks {
			if !strings.HasPrefix(in.Key, prefix) {
				e.t.Errorf("List of %q shows %s %q", prefix, in.Kind, in.Key)
			}
			out[in.Kind+" "+in.Key] = in
		}
		if next == "" {
			return out
		}
		cursor = next
	}
}

// forgedKeys are mutex keys that name other kinds' state in common
// layouts: a suffix or prefix a backend might add, separators, hex.
func forgedKeys(key string) []string {
	return []string{
		key + "\x00sem", key + "\x00rw", key + "\x00rwi", key + ":q", key + "/",
		"s:" + key, "r:" + key, "m:" + key, "q:" + key, "s/" + key, "r/" + key, "q/" + key,
		"../s:" + key, fmt.Sprintf("%x", key), fmt.Sprintf("%x/", key),
	}
}

// keySpaces: a mutex, a semaphore and a read-write lock of one key are
// separate locks, and no key of one kind names another kind's state:
// mutexes, semaphores and read-write locks on keys forged like a
// backend's internal names lock independently of the locks they imitate.
func keySpaces(e *env) {
	c := e.client()
	ttl := e.longTTL()
	key := e.key("ks")
	_, sems := e.l.(backend.Semaphorer)
	_, rws := e.l.(backend.RWLocker)
	var held []*xsync.Lease
	hold := func(what string, l *xsync.Lease, err error) {
		e.t.Helper()
		if err != nil {
			e.t.Fatalf("%s beside the others of key %q: %v", what, key, err)
		}
		held = append(held, l)
	}
	l, err := c.Acquire(e.ctx, key, xsync.WithTTL(ttl))
	hold("the mutex", l, err)
	if sems {
		l, err := c.Semaphore(key, 1).Acquire(e.ctx, xsync.WithTTL(ttl))
		hold("the 1-permit semaphore", l, err)
	}
	if rws {
		l, err := c.RWLock(key).AcquireWrite(e.ctx, xsync.WithTTL(ttl))
		hold("the write lock", l, err)
	}
	for _, k := range forgedKeys(key) {
		l, err := c.Acquire(e.ctx, k, xsync.WithTTL(ttl))
		hold(fmt.Sprintf("a mutex %q", k), l, err)
		if sems {
			l, err := c.Semaphore(k, 1).Acquire(e.ctx, xsync.WithTTL(ttl))
			hold(fmt.Sprintf("a semaphore %q", k), l, err)
		}
		if rws {
			l, err := c.RWLock(k).AcquireWrite(e.ctx, xsync.WithTTL(ttl))
			hold(fmt.Sprintf("a write lock %q", k), l, err)
		}
	}
	// The imitated locks are untouched: each still refuses another holder.
	_, err = c.Acquire(e.ctx, key)
	e.mustBeMissing(err, "the mutex again")
	if sems {
		_, err := c.Semaphore(key, 1).Acquire(e.ctx)
		e.mustBeMissing(err, "the full semaphore again")
	}
	if rws {
		_, err := c.RWLock(key).AcquireRead(e.ctx)
		e.mustBeMissing(err, "a reader of the written lock")
	}
	for _, l := range held {
		e.mustRelease(l, "a lock of the key spaces rule")
	}
}
