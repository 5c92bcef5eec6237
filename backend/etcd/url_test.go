package etcd_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xsync-go/xsync"
	xetcd "github.com/xsync-go/xsync/backend/etcd"
	"github.com/xsync-go/xsync/internal/itest"
)

func TestOpenURLBad(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"etcd://", "no endpoints"},
		{"etcd://h1:2379,,h2:2379", "empty endpoint"},
		{"etcd://u:secret@h1:2379/x", "unexpected path"},
		{"etcd://u:secret@h1:2379?colour=blue", `unknown option "colour"`},
		{"etcd://u:secret@h1:2379?dial_timeout=soon", "dial_timeout"},
		{"etcd://u:secret@h1:2379?ca_file=/x.pem", "without tls=true"},
		{"etcd://u:secret@h1:2379?tls=true&ca_file=/nonexistent.pem", "ca_file"},
		{"etcd://u:secret@h1:2379?tls=true&cert_file=/a.pem", "go together"},
	} {
		_, _, err := xsync.Open(t.Context(), tc.url)
		require.ErrorIs(t, err, xsync.ErrInvalid, tc.url)
		assert.Contains(t, err.Error(), tc.want, tc.url)
		assert.NotContains(t, err.Error(), "secret", "the password must not be shown")
	}
}

func TestOpenURLTLS(t *testing.T) {
	l, closer, err := xsync.Open(t.Context(), "etcd://h1:2379,h2:2379?tls=true&skip_verify=true&prefix=app/")
	require.NoError(t, err)
	assert.IsType(t, &xetcd.Locker{}, l)
	require.NoError(t, closer.Close())
}

// A URL naming every member of a cluster opens a backend that works, with
// its keys under the prefix it names.
func TestOpenURLWorks(t *testing.T) {
	members := itest.StartEtcdCluster(t, 3)
	u := "etcd://" + members[0].Endpoint() + "," + members[1].Endpoint() + "," + members[2].Endpoint() + "?prefix=app1/&dial_timeout=2s"
	l, closer, err := xsync.Open(t.Context(), u)
	require.NoError(t, err)
	t.Cleanup(func() { closer.Close() })
	t.Cleanup(xsync.Swap("url", l))
	ctx := context.Background()
	item, err := xsync.Lock(ctx, "url", "user:1", 5)
	require.NoError(t, err)
	require.True(t, item.HasLock())
	resp, err := itest.EtcdClient(t, members[2]).Get(ctx, "app1/m/user:1")
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	assert.Equal(t, int64(item), resp.Kvs[0].CreateRevision, "the Item is the key's create revision")
	ok, err := item.Unlock(ctx, "url", "user:1")
	require.NoError(t, err)
	assert.True(t, ok)
}

// OwnerCmp fences writes in etcd itself: a write guarded by it succeeds
// while the lock is held and fails once another holder has it.
func TestOwnerCmpFencesWrites(t *testing.T) {
	srv := itest.StartEtcd(t)
	c := itest.EtcdClient(t, srv)
	l := xetcd.New(c, xetcd.WithPrefix(newPrefix()))
	t.Cleanup(xsync.Swap("fence", l))
	ctx := context.Background()
	write := func(item xsync.Item, v string) bool {
		resp, err := c.Txn(ctx).If(l.OwnerCmp("order:1", int64(item))).Then(clientv3.OpPut("data/order1", v)).Commit()
		require.NoError(t, err)
		return resp.Succeeded
	}
	old, err := xsync.Lock(ctx, "fence", "order:1", 2)
	require.NoError(t, err)
	assert.True(t, write(old, "from old"), "the holder writes")
	ok, err := old.Unlock(ctx, "fence", "order:1")
	require.NoError(t, err)
	require.True(t, ok)
	cur, err := xsync.Lock(ctx, "fence", "order:1", 2)
	require.NoError(t, err)
	assert.False(t, write(old, "late write"), "the former holder's write is refused")
	assert.True(t, write(cur, "from new"))
	got, err := c.Get(ctx, "data/order1")
	require.NoError(t, err)
	assert.Equal(t, "from new", string(got.Kvs[0].Value))
}

// Opening a URL with credentials does not dial (clientv3.New would
// authenticate at once): Open returns at once whatever the cluster does,
// and a cluster that is not there is the first call's error, not bad input.
func TestOpenURLWithCredentialsDoesNotDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	start := time.Now()
	l, closer, err := xsync.Open(t.Context(), "etcd://user:secret@"+addr+"?dial_timeout=3s")
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 100*time.Millisecond, "Open must not contact the cluster")
	t.Cleanup(xsync.Swap("lazy", l))
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = xsync.Lock(ctx, "lazy", "k", 5)
	require.Error(t, err)
	assert.NotErrorIs(t, err, xsync.ErrInvalid, "a cluster that is down is not bad input")
	assert.NotContains(t, err.Error(), "secret")
	assert.Less(t, time.Since(start), 2*time.Second, "the first call connects within its context")
	require.NoError(t, closer.Close())
	_, err = xsync.Lock(t.Context(), "lazy", "k", 5)
	assert.Error(t, err, "closed")
}

// A nil client is a programmer's error: New panics with a clear message.
func TestNewNilClientPanics(t *testing.T) {
	assert.PanicsWithValue(t, "etcd: New: client is nil", func() { xetcd.New(nil) })
}
