package etcd_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/xsync-go/xsync/backend"
	xetcd "github.com/xsync-go/xsync/backend/etcd"
	"github.com/xsync-go/xsync/internal/itest"
)

// txns counts a client's transactions: those that may write (a put or a
// delete in either branch: a Raft write, granted or refused) and those
// that only read; and its plain ranges (reads) and deletes.
type txns struct {
	mu            sync.Mutex
	writes, reads int
	serializable  int // reads that etcd serves from the member's own state (all their ranges serializable, or none)
	ranges        int
	deletes       int
}

func (c *txns) interceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	switch r := req.(type) {
	case *pb.RangeRequest:
		c.mu.Lock()
		c.ranges++
		if r.Serializable {
			c.serializable++
		}
		c.mu.Unlock()
	case *pb.DeleteRangeRequest:
		c.mu.Lock()
		c.deletes++
		c.mu.Unlock()
	}
	if r, ok := req.(*pb.TxnRequest); ok {
		write, serializable := false, true
		for _, op := range append(r.Success, r.Failure...) {
			rr := op.GetRequestRange()
			if rr == nil {
				write = true
			}
			if rr == nil || !rr.Serializable {
				serializable = false
			}
		}
		c.mu.Lock()
		if write {
			c.writes++
		} else {
			c.reads++
			if serializable {
				c.serializable++
			}
		}
		c.mu.Unlock()
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// count returns the writes and reads so far.
func (c *txns) count() (writes, reads int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes, c.reads
}

// countedClient is a client of srv whose transactions c counts.
func countedClient(t *testing.T, srv *itest.Server, c *txns) *clientv3.Client {
	cl, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{srv.Endpoint()},
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithUnaryInterceptor(c.interceptor)},
	})
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestReadFirst runs the read-first tests on one server, each subtest
// under a prefix of its own.
func TestReadFirst(t *testing.T) {
	srv := itest.StartEtcd(t)
	t.Run("RefusalsRead", func(t *testing.T) { testRefusalsRead(t, srv) })
	t.Run("ThenGrant", func(t *testing.T) { testReadFirstThenGrant(t, srv) })
	t.Run("Semaphore", func(t *testing.T) { testSemaphoreReadsFirst(t, srv) })
}

// testSemaphoreReadsFirst: a refused permit attempt is a put and a delete
// (two Raft writes); the Locker's next attempt on that semaphore counts
// the permits first and, while the limit is reached, is refused by that
// read alone; once a permit is free it reads, takes one, and its next
// attempt no longer reads first.
func testSemaphoreReadsFirst(t *testing.T, srv *itest.Server) {
	const ttl = 5 * time.Second
	ctx := t.Context()
	prefix := newPrefix()
	holder := xetcd.New(itest.EtcdClient(t, srv), xetcd.WithPrefix(prefix)).Semaphore("s", 2)
	n := &txns{}
	s := xetcd.New(countedClient(t, srv, n), xetcd.WithPrefix(prefix)).Semaphore("s", 2)
	var held []int64
	for range 2 {
		tok, err := holder.Acquire(ctx, backend.Request{TTL: ttl})
		require.NoError(t, err)
		require.Positive(t, tok)
		held = append(held, tok)
	}
	// attempt returns its token and its (transactions that write, ranges,
	// deletes).
	attempt := func() (int64, [3]int) {
		t.Helper()
		n.mu.Lock()
		w0, r0, d0 := n.writes, n.ranges, n.deletes
		n.mu.Unlock()
		tok, err := s.Acquire(ctx, backend.Request{TTL: ttl})
		require.NoError(t, err)
		n.mu.Lock()
		defer n.mu.Unlock()
		return tok, [3]int{n.writes - w0, n.ranges - r0, n.deletes - d0}
	}
	tok, c := attempt()
	require.Zero(t, tok)
	require.Equal(t, [3]int{1, 0, 1}, c, "a first refusal: the put's transaction and the delete")
	tok, c = attempt()
	require.Zero(t, tok)
	require.Equal(t, [3]int{0, 1, 0}, c, "after a refusal: a count, no write")

	ok, err := holder.Release(ctx, held[0])
	require.NoError(t, err)
	require.True(t, ok)
	tok, c = attempt()
	require.Positive(t, tok, "a permit is free")
	require.Equal(t, [3]int{1, 1, 0}, c, "a count, then the put's transaction")
	tok, c = attempt()
	require.Zero(t, tok, "the limit is reached again")
	require.Equal(t, [3]int{1, 0, 1}, c, "granted after a read: no longer reads first")
	n.mu.Lock()
	defer n.mu.Unlock()
	require.Zero(t, n.serializable, "reads etcd may serve stale")
}

// heldByAnother returns a Locker whose transactions n counts, and another
// Locker of the same prefix that holds "k" with token held.
func heldByAnother(t *testing.T, srv *itest.Server, ttl time.Duration) (l, holder *xetcd.Locker, n *txns, held int64) {
	prefix := newPrefix()
	holder = xetcd.New(itest.EtcdClient(t, srv), xetcd.WithPrefix(prefix))
	n = &txns{}
	l = xetcd.New(countedClient(t, srv, n), xetcd.WithPrefix(prefix))
	held, err := holder.Acquire(t.Context(), "k", ttl)
	require.NoError(t, err)
	require.Positive(t, held)
	return l, holder, n, held
}

// testRefusalsRead: an attempt that is likely refused reads first, and a
// refusal then costs no Raft write. A Locker's attempt on a key after a
// refusal there reads first until a read shows the key free; a queued
// waiter's attempt reads first while its watch has an entry ahead.
func testRefusalsRead(t *testing.T, srv *itest.Server) {
	const ttl = 5 * time.Second
	ctx := t.Context()
	l, holder, n, held := heldByAnother(t, srv, ttl)
	m := l.Mutex("k")
	attempt := func(r backend.Request) (tok int64, writes, reads int) {
		t.Helper()
		w0, r0 := n.count()
		tok, err := m.Acquire(ctx, r)
		require.NoError(t, err)
		w1, r1 := n.count()
		return tok, w1 - w0, r1 - r0
	}

	tok, writes, reads := attempt(backend.Request{TTL: ttl})
	require.Zero(t, tok)
	require.Equal(t, [2]int{1, 0}, [2]int{writes, reads}, "a first refusal: one transaction with its put")
	tok, writes, reads = attempt(backend.Request{TTL: ttl})
	require.Zero(t, tok)
	require.Equal(t, [2]int{0, 1}, [2]int{writes, reads}, "after a refusal: a read, no write")

	// Queued: w2 behind w1 reads; w1, first, writes.
	keep := time.Second
	stops := map[string]func(){}
	for _, w := range []string{"w1", "w2"} {
		_, stop, err := m.(backend.Watcher).Watch(ctx, w, keep)
		require.NoError(t, err)
		t.Cleanup(stop)
		stops[w] = stop
	}
	tok, writes, reads = attempt(backend.Request{TTL: ttl, Waiter: "w2", Keep: keep})
	require.Zero(t, tok)
	require.Equal(t, [2]int{0, 1}, [2]int{writes, reads}, "a waiter with one ahead: a read, no write")
	// w2 leaves: its watch would read the queue anew when w1's grant
	// deletes w1's entry, a read that the counts below could catch.
	stops["w2"]()
	tok, writes, reads = attempt(backend.Request{TTL: ttl, Waiter: "w1", Keep: keep})
	require.Zero(t, tok, "the key is still held")
	require.Equal(t, [2]int{1, 0}, [2]int{writes, reads}, "the first waiter: its transaction")

	ok, err := holder.Release(ctx, "k", held)
	require.NoError(t, err)
	require.True(t, ok)
	tok, writes, reads = attempt(backend.Request{TTL: ttl, Waiter: "w1", Keep: keep})
	require.Greater(t, tok, held, "the first waiter gets the key")
	require.Equal(t, [2]int{1, 0}, [2]int{writes, reads})
	ok, err = l.Release(ctx, "k", tok)
	require.NoError(t, err)
	require.True(t, ok)
	n.mu.Lock()
	defer n.mu.Unlock()
	require.Zero(t, n.serializable, "reads etcd may serve stale (a refusal on a lagging member)")
}

// testReadFirstThenGrant: a Locker that was refused on a key reads first
// once the key is free, is granted, and then no longer reads first.
func testReadFirstThenGrant(t *testing.T, srv *itest.Server) {
	const ttl = 5 * time.Second
	ctx := t.Context()
	l, holder, n, held := heldByAnother(t, srv, ttl)
	tok, err := l.Acquire(ctx, "k", ttl)
	require.NoError(t, err)
	require.Zero(t, tok)
	ok, err := holder.Release(ctx, "k", held)
	require.NoError(t, err)
	require.True(t, ok)

	for i, want := range [][2]int{{1, 1}, {1, 0}} {
		w0, r0 := n.count()
		tok, err := l.Acquire(ctx, "k", ttl)
		require.NoError(t, err)
		require.Positive(t, tok)
		w1, r1 := n.count()
		require.Equal(t, want, [2]int{w1 - w0, r1 - r0}, "grant %d: (writes, reads)", i+1)
		ok, err := l.Release(ctx, "k", tok)
		require.NoError(t, err)
		require.True(t, ok)
	}
}
