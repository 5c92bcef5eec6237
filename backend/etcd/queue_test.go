package etcd_test

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xsync-go/xsync/backend"
	xetcd "github.com/xsync-go/xsync/backend/etcd"
	"github.com/xsync-go/xsync/internal/itest"
)

// TestQueueEntryLost: a waiter whose queue entry is gone (its lease
// expired, or was revoked) is queued again at its next attempt once its
// renewal is due, and gets the key when its turn comes.
func TestQueueEntryLost(t *testing.T) {
	srv := itest.StartEtcd(t)
	admin := itest.EtcdClient(t, srv)
	prefix := newPrefix()
	ctx := context.Background()
	other := xetcd.New(itest.EtcdClient(t, srv), xetcd.WithPrefix(prefix))
	l := xetcd.New(itest.EtcdClient(t, srv), xetcd.WithPrefix(prefix))
	const key, keep, ttl = "k", time.Second, 5 * time.Second
	entry := prefix + "q/" + hex.EncodeToString([]byte(key)) + "/w1"

	held, err := other.Acquire(ctx, key, ttl)
	require.NoError(t, err)
	require.Positive(t, held)
	m := l.Mutex(key)
	queued := backend.Request{TTL: ttl, Waiter: "w1", Keep: keep}
	ready, stop, err := m.(backend.Watcher).Watch(ctx, "w1", keep)
	require.NoError(t, err)
	defer stop()

	got, err := admin.Get(ctx, entry)
	require.NoError(t, err)
	require.Len(t, got.Kvs, 1, "the waiter is queued")
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
