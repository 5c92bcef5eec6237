package etcd_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xsync-go/xsync/backend"
	xetcd "github.com/xsync-go/xsync/backend/etcd"
	"github.com/xsync-go/xsync/internal/itest"
)

// TestQueue runs the queue's tests on one server, each subtest under a
// prefix of its own.
func TestQueue(t *testing.T) {
	srv := itest.StartEtcd(t)
	t.Run("EntryLost", func(t *testing.T) { testQueueEntryLost(t, srv) })
	t.Run("NamesReused", func(t *testing.T) { testQueueNamesReused(t, srv) })
}

// queueSetUp returns an admin client, two Lockers of a new prefix (as two
// processes would have), and the prefix of key's queue under it.
func queueSetUp(t *testing.T, srv *itest.Server, key string) (admin *clientv3.Client, a, b *xetcd.Locker, queue string) {
	prefix := newPrefix()
	a = xetcd.New(itest.EtcdClient(t, srv), xetcd.WithPrefix(prefix))
	b = xetcd.New(itest.EtcdClient(t, srv), xetcd.WithPrefix(prefix))
	return itest.EtcdClient(t, srv), a, b, prefix + "q/" + hex.EncodeToString([]byte(key)) + "/"
}

// testQueueEntryLost: a waiter whose queue entry is gone (its lease
// expired, or was revoked) is queued again at its next attempt once its
// renewal is due, and gets the key when its turn comes.
func testQueueEntryLost(t *testing.T, srv *itest.Server) {
	const key, keep, ttl = "k", time.Second, 5 * time.Second
	admin, other, l, queue := queueSetUp(t, srv, key)
	ctx := context.Background()

	held, err := other.Acquire(ctx, key, ttl)
	require.NoError(t, err)
	require.Positive(t, held)
	m := l.Mutex(key)
	queued := backend.Request{TTL: ttl, Waiter: "w1", Keep: keep}
	ready, stop, err := m.(backend.Watcher).Watch(ctx, "w1", keep)
	require.NoError(t, err)
	defer stop()

	got, err := admin.Get(ctx, queue, clientv3.WithPrefix())
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1, "the waiter is queued")
	entry := string(got.Kvs[0].Key)
	_, err = admin.Revoke(ctx, clientv3.LeaseID(got.Kvs[0].Lease))
	require.NoError(t, err)
	got, err = admin.Get(ctx, entry, clientv3.WithCountOnly())
	require.NoError(t, err)
	require.Zero(t, got.Count, "the entry went with its lease")

	// Time must pass: the renewal that finds the lease gone is due after a
	// third of the entry lease's TTL (keep as granted: at least MinTTL).
	time.Sleep(max(keep, xetcd.MinTTL)/3 + 100*time.Millisecond)
	tok, err := m.Acquire(ctx, queued)
	require.NoError(t, err)
	require.Zero(t, tok, "the key is still held")
	got, err = admin.Get(ctx, entry)
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1, "the waiter is queued again")

	ok, err := other.Release(ctx, key, held)
	require.NoError(t, err)
	require.True(t, ok)
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter was not woken by the release")
	}
	tok, err = m.Acquire(ctx, queued)
	require.NoError(t, err)
	require.Greater(t, tok, held)
	got, err = admin.Get(ctx, entry, clientv3.WithCountOnly())
	require.NoError(t, err)
	require.Zero(t, got.Count, "the waiter left the queue with the key")
}

// testQueueNamesReused: a Locker names its queue entries by slot and
// reuses the slots of waiters that left, so the keys ever written under a
// key's queue stay as many as its waiters at once (etcd keeps deleted keys
// in its index until a compaction, and reads over the queue visit them).
// Ten rounds of two waiters each, granted in turn, write two names.
func testQueueNamesReused(t *testing.T, srv *itest.Server) {
	const key, keep, ttl = "k", time.Second, 5 * time.Second
	admin, holder, l, queue := queueSetUp(t, srv, key)
	ctx := context.Background()
	start, err := admin.Get(ctx, "any")
	require.NoError(t, err)
	m := l.Mutex(key)

	for round := range 10 {
		held, err := holder.Acquire(ctx, key, ttl)
		require.NoError(t, err)
		require.Positive(t, held)
		var readies []<-chan struct{}
		var stops []func()
		for i := range 2 {
			ready, stop, err := m.(backend.Watcher).Watch(ctx, fmt.Sprintf("w%d-%d", round, i), keep)
			require.NoError(t, err)
			readies, stops = append(readies, ready), append(stops, stop)
		}
		ok, err := holder.Release(ctx, key, held)
		require.NoError(t, err)
		require.True(t, ok)
		for i := range 2 { // in arrival order
			select {
			case <-readies[i]:
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: waiter %d was not woken", round, i)
			}
			tok, err := m.Acquire(ctx, backend.Request{TTL: ttl, Waiter: fmt.Sprintf("w%d-%d", round, i), Keep: keep})
			require.NoError(t, err)
			require.Positive(t, tok, "round %d: waiter %d's turn", round, i)
			stops[i]()
			ok, err := l.Release(ctx, key, tok)
			require.NoError(t, err)
			require.True(t, ok)
		}
	}

	// Every put under the queue since the start, from the watch's history.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	now, err := admin.Get(ctx, "any")
	require.NoError(t, err)
	names := map[string]bool{}
	puts := 0
	for resp := range admin.Watch(wctx, queue, clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision+1)) {
		require.NoError(t, resp.Err())
		for _, ev := range resp.Events {
			if ev.Type == clientv3.EventTypePut {
				names[string(ev.Kv.Key)] = true
				puts++
			}
		}
		if resp.Header.Revision >= now.Header.Revision {
			break
		}
	}
	require.Equal(t, 20, puts, "each waiter joined once")
	require.Len(t, names, 2, "names written under the queue: %v", names)
}
