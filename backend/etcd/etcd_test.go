package etcd_test

import (
	"context"
	"fmt"
	"sync"
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
	// Bring its connection up now, so that its goroutines are not started
	// by a subtest (which the suite's goroutine-leak check would count).
	if _, err := admin.Get(t.Context(), "warm-up"); err != nil {
		t.Fatal(err)
	}
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		return &harness{srv: srv, admin: admin, prefix: newPrefix()}
	})
}

// harness is one subtest's namespace (a key prefix) on the shared server.
type harness struct {
	srv    *itest.Server
	admin  *clientv3.Client
	prefix string
}

func (h *harness) Locker(t *testing.T) backend.Locker {
	return xetcd.New(itest.EtcdClient(t, h.srv), xetcd.WithPrefix(h.prefix))
}

func (h *harness) Limits() conformance.Limits {
	return conformance.Limits{MinTTL: xetcd.MinTTL, ExpiryTolerance: time.Second, FIFO: true, IgnoreGoroutines: xetcd.IdleGoroutines}
}

// Size counts keys under the prefix. Leases are checked by
// TestLeasesExpire on a server of its own: other subtests' idle leases
// expire meanwhile.
func (h *harness) Size(t *testing.T) int {
	keys, err := h.admin.Get(context.Background(), h.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return int(keys.Count)
}

func (h *harness) Faulty(t *testing.T) (backend.Locker, conformance.Fault) {
	p := itest.NewProxy(t, h.srv.Endpoint())
	return xetcd.New(itest.EtcdClientAt(t, p.Addr()), xetcd.WithPrefix(h.prefix)), p
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

// TestClose runs the tests of Close on one server.
func TestClose(t *testing.T) {
	srv := itest.StartEtcd(t)
	t.Run("RevokesIdleLeases", func(t *testing.T) { testCloseRevokesIdleLeases(t, srv) })
	t.Run("BoundedWhenUnreachable", func(t *testing.T) { testCloseBoundedWhenUnreachable(t, srv) })
	t.Run("WhileElectionsStart", func(t *testing.T) { testCloseWhileElectionsStart(t, srv) })
	t.Run("ElectionsAfterClose", func(t *testing.T) { testElectionsAfterClose(t, srv) })
}

// An election space first used after Close is closed as its Locker is: a
// term's lease, once the term ends, is left to expire, not kept for the
// next term.
func testElectionsAfterClose(t *testing.T, srv *itest.Server) {
	ctx := t.Context()
	admin := itest.EtcdClient(t, srv)
	prefix := newPrefix()
	l := xetcd.New(itest.EtcdClient(t, srv), xetcd.WithPrefix(prefix))
	require.NoError(t, l.Close())
	e := l.Election("e")
	term := func() clientv3.LeaseID {
		t.Helper()
		tok, err := e.Acquire(ctx, backend.Request{TTL: 30 * time.Second})
		require.NoError(t, err)
		require.Positive(t, tok)
		resp, err := admin.Get(ctx, prefix+"e/m/e")
		require.NoError(t, err)
		require.Len(t, resp.Kvs, 1, "the election's key")
		ok, err := e.Release(ctx, tok)
		require.NoError(t, err)
		require.True(t, ok)
		return clientv3.LeaseID(resp.Kvs[0].Lease)
	}
	first := term()
	assert.NotEqual(t, first, term(), "after Close, an ended term's lease was kept for the next term")
}

// Close may run while the first election of the Locker makes its election
// space: the space is stored under the lock Close reads it under (-race
// checks), and the election works.
func testCloseWhileElectionsStart(t *testing.T, srv *itest.Server) {
	l := xetcd.New(itest.EtcdClient(t, srv), xetcd.WithPrefix(newPrefix()))
	var e backend.Lock
	var wg sync.WaitGroup
	wg.Go(func() { e = l.Election("e") })
	wg.Go(func() { assert.NoError(t, l.Close()) })
	wg.Wait()
	tok, err := e.Acquire(t.Context(), backend.Request{TTL: 30 * time.Second})
	require.NoError(t, err)
	require.Positive(t, tok)
	ok, err := e.Release(t.Context(), tok)
	require.NoError(t, err)
	require.True(t, ok)
}

// Close revokes the leases a Locker keeps for its next locks, and the
// Locker still works after it, leaving its released leases to expire.
func testCloseRevokesIdleLeases(t *testing.T, srv *itest.Server) {
	admin := itest.EtcdClient(t, srv)
	prefix := newPrefix()
	l := xetcd.New(itest.EtcdClient(t, srv), xetcd.WithPrefix(prefix))
	c := xsync.NewClient(l)
	ctx := t.Context()
	leaseOf := func(key string) clientv3.LeaseID {
		t.Helper()
		resp, err := admin.Get(ctx, prefix+"m/"+key)
		require.NoError(t, err)
		require.Len(t, resp.Kvs, 1, "the lock's key")
		return clientv3.LeaseID(resp.Kvs[0].Lease)
	}
	alive := func(id clientv3.LeaseID) bool {
		t.Helper()
		resp, err := admin.TimeToLive(ctx, id)
		require.NoError(t, err)
		return resp.TTL > 0
	}
	hold := func(key string) (*xsync.Lease, clientv3.LeaseID) {
		t.Helper()
		lease, err := c.Acquire(ctx, key, xsync.WithTTL(30*time.Second))
		require.NoError(t, err)
		return lease, leaseOf(key)
	}
	release := func(lease *xsync.Lease) {
		t.Helper()
		ok, err := lease.Release(ctx)
		require.NoError(t, err)
		require.True(t, ok)
	}
	a, ida := hold("a")
	b, idb := hold("b")
	require.NotEqual(t, ida, idb, "two locks held at once have two leases")
	release(a)
	release(b)
	require.True(t, alive(ida) && alive(idb), "released locks' leases are kept for the next locks")

	require.NoError(t, l.Close())
	assert.False(t, alive(ida), "Close revokes the idle lease of a")
	assert.False(t, alive(idb), "Close revokes the idle lease of b")
	require.NoError(t, l.Close(), "a second Close")

	a, id := hold("a")
	release(a)
	a, next := hold("a")
	release(a)
	assert.NotEqual(t, id, next, "after Close a released lease is not kept for the next lock")
	assert.True(t, alive(next), "a lock's own lease lives on for its TTL")
}

// Close waits at most 5s in all for a cluster it cannot reach, the
// election space's revocations included (one bound shared, not one per
// space), and says that it could not revoke.
func testCloseBoundedWhenUnreachable(t *testing.T, srv *itest.Server) {
	ctx := t.Context()
	p := itest.NewProxy(t, srv.Endpoint())
	l := xetcd.New(itest.EtcdClientAt(t, p.Addr()), xetcd.WithPrefix(newPrefix()))
	// An idle lease in each space: a mutex's and an election term's.
	for _, lk := range []backend.Lock{l.Mutex("k"), l.Election("e")} {
		tok, err := lk.Acquire(ctx, backend.Request{TTL: 30 * time.Second})
		require.NoError(t, err)
		require.Positive(t, tok)
		ok, err := lk.Release(ctx, tok)
		require.NoError(t, err)
		require.True(t, ok)
	}
	p.Down()
	start := time.Now()
	err := l.Close()
	took := time.Since(start)
	require.Error(t, err, "Close could not revoke, and says nothing")
	require.Less(t, took, 7*time.Second, "Close waited %v for an unreachable cluster (at most 5s in all)", took)
}
