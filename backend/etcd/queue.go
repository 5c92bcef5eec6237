package etcd

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The waiters' queue of a mutex is a set of keys, one per waiter, under
// {prefix}q/{hex of the key}/: each on a lease of the waiter's keep time,
// which the waiter renews while it waits, ordered by create revision. The
// head is the entry with the smallest one.
//
// An entry's name is {Locker's id}.{slot}: a Locker reuses the slots of
// its waiters that left, so the names ever used under a key's queue stay
// as many as its waiters at once, not one per waiting acquisition. etcd
// keeps a deleted key in its index until a compaction, and every read or
// comparison over the queue's range visits it: with a new name per
// waiter, each attempt on a busy key would cost more with every waiter
// since the last compaction. A slot is reused only once its entry is
// known to be gone (the grant deleted it, or a delete was answered): a put
// over a live entry would keep that entry's create revision, its place.

// queuePrefix is the range of key's queue entries.
func (l *Locker) queuePrefix(key string) string {
	return l.prefix + queueSpace + hex.EncodeToString([]byte(key)) + "/"
}

// waiter is one queued waiter of this Locker.
type waiter struct {
	entry string // its queue key
	rev   int64  // the entry's create revision: its place in the queue
	le    lease  // the entry's lease
	renew time.Time
	left  atomic.Bool // it got the lock, which deleted its entry
	ahead atomic.Bool // its watch saw an entry ahead of its own (see queueWatch.next)
	keep  time.Duration
}

// watchQueue is a mutex waiter's watch: w's entry (a put on a lease of
// keep, rounded up to whole seconds and to etcd's minimum) joins the
// key's queue, and w watches one etcd key: the entry just ahead of its own
// (its predecessor), or, once none is ahead, the lock's key. So a handoff
// wakes one waiter, whatever the queue's length: the releasing delete
// reaches the head alone, and an entry's delete (a waiter that got the
// lock, gave up, or died with its lease) reaches the one waiter behind
// it, which then watches the next one ahead or the lock. w is woken when
// the lock key is gone and no entry is ahead of it (the holder's release
// or expiry), or when a watch ends (the cluster lost its leader): then it
// tries, and its attempt's transaction decides. stop deletes w's entry
// unless w got the lock (one request, up to 250ms) and keeps its lease
// for reuse.
func (l *Locker) watchQueue(ctx context.Context, key, w string, keep time.Duration) (<-chan struct{}, func(), error) {
	k, qp := l.mutexKey(key), l.queuePrefix(key)
	le, err := l.lease(ctx, seconds(max(keep, MinTTL)))
	if err != nil {
		return nil, nil, fmt.Errorf("etcd: watch: lease: %w", l.classify(err))
	}
	slot := l.takeSlot(qp)
	entry := qp + l.id + "." + strconv.Itoa(slot)
	put, err := l.client.Put(ctx, entry, "", clientv3.WithLease(le.id))
	if err != nil {
		// The put may have been applied: the slot is not reused.
		l.revoke(ctx, le)
		return nil, nil, fmt.Errorf("etcd: watch: queue: %w", l.classify(err))
	}
	wt := &waiter{entry: entry, rev: put.Header.Revision, le: le, renew: time.Now(), keep: keep}
	cleanUp := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if _, err := l.client.Delete(ctx, entry); err == nil {
			l.putIdle(wt.le)
			l.freeSlot(qp, slot)
		}
	}

	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ready, notify := signal()
	q := &queueWatch{l: l, k: k, qp: qp, rev: wt.rev, ahead: &wt.ahead, notify: notify}
	events, err := q.next(ctx, clientv3.WithRequireLeader(wctx), false)
	if err != nil {
		cancel()
		q.end()
		cleanUp()
		return nil, nil, fmt.Errorf("etcd: watch: %w", l.classify(err))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.run(clientv3.WithRequireLeader(wctx), events)
	}()
	l.queued.Store(w, wt)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			l.queued.Delete(w)
			cancel()
			<-done
			if !wt.left.Load() {
				cleanUp()
			} else {
				l.freeSlot(qp, slot) // the grant deleted the entry
			}
		})
	}
	return ready, stop, nil
}

// takeSlot returns the lowest slot of the queue qp that none of this
// Locker's waiters uses, and marks it used.
func (l *Locker) takeSlot(qp string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	used := l.slots[qp]
	if used == nil {
		used = make(map[int]bool)
		l.slots[qp] = used
	}
	n := 0
	for used[n] {
		n++
	}
	used[n] = true
	return n
}

// freeSlot makes slot of the queue qp free for this Locker's next waiter.
func (l *Locker) freeSlot(qp string, slot int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.slots[qp], slot)
	if len(l.slots[qp]) == 0 {
		delete(l.slots, qp)
	}
}

// queueWatch is a queued waiter's watch of the one etcd key it waits on:
// its predecessor's entry, or the lock's key.
type queueWatch struct {
	l      *Locker
	k, qp  string
	rev    int64        // the waiter's entry's create revision
	ahead  *atomic.Bool // whether an entry was ahead when the watch took effect
	target string       // the key watched; k once no entry is ahead
	cancel context.CancelFunc
	events clientv3.WatchChan // the watch in effect, ended by cancel
	notify func()
}

// next starts watching what the waiter waits on now and returns the
// watch's events. It finds the predecessor (the entry with the largest
// create revision below the waiter's), watches it (or the lock's key),
// waits until etcd has created the watch, then reads again: a
// predecessor gone meanwhile is replaced by the next one, and the waiter
// is notified if the lock key is free with none ahead. Entries join only
// behind the waiter, so once the read shows the watched predecessor
// still there, its delete is what to wait for.
//
// With head, the waiter's predecessor just left (it got the lock, as a
// rule): the waiter guesses that it is first now and watches the lock's
// key at once, and the read after the watch tells whether it guessed
// right: one round trip fewer on the way to the next handoff.
func (q *queueWatch) next(ctx, wctx context.Context, head bool) (clientv3.WatchChan, error) {
	pred := ""
	if !head {
		var err error
		if pred, err = q.predecessor(ctx); err != nil {
			return nil, err
		}
	}
	for {
		q.target = q.k
		if pred != "" {
			q.target = pred
		}
		// The new watch starts before the one it replaces ends (see
		// replace): the client's watch stream stays open.
		cctx, cancel := context.WithCancel(wctx)
		events := q.l.client.Watch(cctx, q.target, clientv3.WithCreatedNotify())
		if err := watchCreated(ctx, events); err != nil {
			cancel()
			drainEvents(events)
			return nil, err
		}
		q.replace(cancel, events)
		// One read-only transaction: the predecessor now, and whether the
		// lock key exists.
		read, err := q.l.client.Txn(ctx).Then(q.predecessorOp(), clientv3.OpGet(q.k, clientv3.WithCountOnly())).Commit()
		if err != nil {
			return nil, err
		}
		now := ""
		if kvs := read.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			now = string(kvs[0].Key)
		}
		if now != pred {
			pred = now
			continue
		}
		q.ahead.Store(pred != "")
		if pred == "" && read.Responses[1].GetResponseRange().Count == 0 {
			q.notify()
		}
		return events, nil
	}
}

// replace makes events (ended by cancel) the watch in effect and ends the
// one before it. The etcd client closes its watch stream when its last
// watch ends, and a new stream costs more than a request (with a user
// and password, the client authenticates on every new stream): so a
// waiter's watch is replaced, never stopped and started again.
func (q *queueWatch) replace(cancel context.CancelFunc, events clientv3.WatchChan) {
	if q.cancel != nil {
		q.cancel()
		drainEvents(q.events)
	}
	q.cancel, q.events = cancel, events
}

// end ends the watch in effect.
func (q *queueWatch) end() {
	q.replace(nil, nil)
}

// predecessorOp reads the entry just ahead of the waiter's.
func (q *queueWatch) predecessorOp() clientv3.Op {
	return clientv3.OpGet(q.qp, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithMaxCreateRev(q.rev-1),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend), clientv3.WithLimit(1))
}

func (q *queueWatch) predecessor(ctx context.Context) (string, error) {
	resp, err := q.l.client.Do(ctx, q.predecessorOp())
	if err != nil {
		return "", err
	}
	if kvs := resp.Get().Kvs; len(kvs) > 0 {
		return string(kvs[0].Key), nil
	}
	return "", nil
}

// run follows the watch until wctx ends: a delete of the lock key wakes
// the waiter; a delete of the predecessor moves the watch to the next
// key ahead; a watch that ends (no leader, compaction) wakes the waiter
// to try, and is started again after a pause.
func (q *queueWatch) run(wctx context.Context, events clientv3.WatchChan) {
	for {
		moved := false
		for resp := range events {
			for _, ev := range resp.Events {
				if ev.Type != clientv3.EventTypeDelete {
					continue
				}
				if q.target == q.k {
					q.notify()
				} else {
					moved = true
				}
			}
			if resp.Err() != nil || resp.Canceled {
				q.notify()
				break
			}
			if moved {
				break
			}
		}
		for {
			if wctx.Err() != nil {
				q.end()
				return
			}
			if !moved { // the watch failed: pause before the next
				t := time.NewTimer(100 * time.Millisecond)
				select {
				case <-wctx.Done():
					t.Stop()
					q.end()
					return
				case <-t.C:
				}
			}
			var err error
			if events, err = q.next(wctx, wctx, moved); err == nil {
				break
			}
			q.notify() // let the waiter try; its attempt decides
			moved = false
		}
	}
}

// drainEvents waits for a cancelled watch's channel to close.
func drainEvents(events clientv3.WatchChan) {
	for range events {
	}
}

// acquireQueued is an attempt by the queued waiter
// w, in one transaction that also checks that no entry of the key's queue
// is older than w's and deletes w's entry. While w's watch has an entry
// ahead of w's (its turn has not come, as far as it knows), the attempt
// reads first: a timed attempt of a waiter behind others is then a read,
// not a Raft write and a keep-alive. A refused waiter's entry lease
// is renewed (one keep-alive) once a third of the lease's TTL (keep,
// rounded up as granted) has passed: the waiter attempts at least three
// times per keep, so the entry never comes within an attempt of its end.
func (l *Locker) acquireQueued(ctx context.Context, key string, ttl time.Duration, owner, w string, keep time.Duration) (_ int64, err error) {
	ctx, done := l.bounded(ctx, ttl)
	defer func() { err = done(err) }()
	v, ok := l.queued.Load(w)
	if !ok { // not queued here: as Acquire
		return l.acquireOwner(ctx, key, ttl, owner)
	}
	wt := v.(*waiter)
	tok, err := l.acquire(ctx, key, ttl, owner,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(l.queuePrefix(key)).WithPrefix(), ">", wt.rev-1)},
		[]clientv3.Op{clientv3.OpDelete(wt.entry)}, wt.ahead.Load())
	switch {
	case tok > 0:
		wt.left.Store(true)
		l.putIdle(wt.le)
	case err == nil && time.Since(wt.renew) > l.granted(wt.keep)/3:
		sent := time.Now()
		ttl, kerr := l.keeper.keepAlive(ctx, wt.le.id)
		switch {
		case kerr == nil:
			wt.renew = sent
			wt.le.expires = sent.Add(time.Duration(ttl) * time.Second)
		case errors.Is(kerr, rpctypes.ErrLeaseNotFound):
			// The entry expired with its lease (this waiter did not
			// attempt for its keep time): queue again, at the end, on
			// another lease.
			if le, gerr := l.lease(ctx, wt.le.ttl); gerr == nil {
				if put, perr := l.client.Put(ctx, wt.entry, "", clientv3.WithLease(le.id)); perr == nil {
					wt.le, wt.rev, wt.renew = le, put.Header.Revision, sent
				}
			}
		}
	}
	return tok, err
}
