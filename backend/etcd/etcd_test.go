package etcd_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	xetcd "github.com/xsync-go/xsync/backend/etcd"
	"github.com/xsync-go/xsync/conformance"
	"github.com/xsync-go/xsync/internal/itest"
)

func TestMain(m *testing.M) { itest.Main(m) }

var prefixes atomic.Int64

func newPrefix() string { return fmt.Sprintf("xsync-test-%d/", prefixes.Add(1)) }

func TestConformance(t *testing.T) {
	srv := itest.StartEtcd(t)
	admin := itest.EtcdClient(t, srv)
	// Bring its connection up now, so that its goroutines exist before the
	// suite's first goroutine-leak snapshot.
	if _, err := admin.Get(t.Context(), "warm-up"); err != nil {
		t.Fatal(err)
	}
	prefixOf := map[backend.Locker]string{}
	conformance.Run(t, func(t *testing.T) backend.Locker {
		p := newPrefix()
		l := xetcd.New(itest.EtcdClient(t, srv), xetcd.WithPrefix(p))
		prefixOf[l] = p
		return l
	}, conformance.Options{
		Peer: func(t *testing.T, l backend.Locker) backend.Locker {
			return xetcd.New(itest.EtcdClient(t, srv), xetcd.WithPrefix(prefixOf[l]))
		},
		MinTTL:          xetcd.MinTTL,
		ExpiryTolerance: time.Second,
		// Keys under the prefix. Leases are checked by TestLeasesExpire on a
		// server of its own: other subtests' idle leases expire meanwhile.
		Size: func(t *testing.T, l backend.Locker) int {
			keys, err := admin.Get(context.Background(), prefixOf[l], clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err != nil {
				t.Fatal(err)
			}
			return int(keys.Count)
		},
		Faulty: func(t *testing.T, l backend.Locker) (backend.Locker, conformance.Fault) {
			p := itest.NewProxy(t, srv.Endpoint())
			return xetcd.New(itest.EtcdClientAt(t, p.Addr()), xetcd.WithPrefix(prefixOf[l])), p
		},
	})
}

// Leases are reused and bounded: a run of locks on one Locker uses one
// lease at a time, and every lease is gone within its TTL (plus etcd's
// expiry cycle) once the locks are released or have expired.
func TestLeasesExpire(t *testing.T) {
	srv := itest.StartEtcd(t)
	admin := itest.EtcdClient(t, srv)
	name := register(t, "leases", itest.EtcdClient(t, srv), newPrefix())
	ctx := t.Context()
	leases := func() int {
		resp, err := admin.Leases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Leases)
	}
	require.Zero(t, leases())
	for i := range 20 {
		item, err := xsync.Lock(ctx, name, fmt.Sprint("k", i), 2)
		require.NoError(t, err)
		ok, err := item.Unlock(ctx, name, fmt.Sprint("k", i))
		require.NoError(t, err)
		require.True(t, ok)
	}
	assert.Equal(t, 1, leases(), "20 sequential locks reuse one lease")
	start := time.Now()
	for i := range 5 {
		_, err := xsync.Lock(ctx, name, fmt.Sprint("held", i), 2)
		require.NoError(t, err)
	}
	assert.Equal(t, 5, leases(), "5 held locks: 5 leases, one reused")
	time.Sleep(time.Until(start.Add(xetcd.MinTTL + 1500*time.Millisecond))) // TTL must pass
	assert.Zero(t, leases(), "every lease expired")
}
