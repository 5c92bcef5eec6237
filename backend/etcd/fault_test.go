package etcd_test

import (
	"context"
	"errors"
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
	"github.com/xsync-go/xsync/internal/itest"
)

func register(t *testing.T, name string, c *clientv3.Client, prefix string) string {
	t.Helper()
	name = name + ":" + t.Name()
	t.Cleanup(xsync.Swap(name, xetcd.New(c, xetcd.WithPrefix(prefix))))
	return name
}

// leader returns the index of the cluster's leader.
func leader(t *testing.T, c *clientv3.Client, members []*itest.Server) int {
	t.Helper()
	for i, m := range members {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		st, err := c.Status(ctx, m.Endpoint())
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			return i
		}
	}
	t.Fatal("no member says it is the leader")
	return -1
}

// The holder's only member is cut off (paused) for longer than the TTL.
// Its lease expires on the majority's side; the holder's callback context
// is cancelled with ErrLockLost before another client can obtain the lock;
// that client gets a larger token; and the old holder's Unlock returns
// false once it can reach the cluster again.
func TestHolderCutOff(t *testing.T) {
	members := itest.StartEtcdCluster(t, 3)
	prefix := newPrefix()
	holderName := register(t, "holder", itest.EtcdClient(t, members[0]), prefix)
	otherName := register(t, "other", itest.EtcdClient(t, members[1], members[2]), prefix)

	a := xsync.New(holderName, "k")
	require.NoError(t, a.SetExp(xetcd.MinTTL))
	require.NoError(t, a.SetAutoExtend(true, 0))
	holding := make(chan xsync.Item, 1)
	var lostAt atomic.Int64
	var cause error
	runErr := make(chan error, 1)
	go func() {
		runErr <- a.Run(t.Context(), func(ctx context.Context) error {
			holding <- xsync.ItemFromContext(ctx)
			select {
			case <-ctx.Done():
				lostAt.Store(time.Now().UnixNano())
				cause = context.Cause(ctx)
			case <-time.After(60 * time.Second):
				return errors.New("the cut-off holder's context was never cancelled")
			}
			return nil
		})
	}()
	held := <-holding
	members[0].Pause()
	paused := time.Now()
	pctx, pcancel := context.WithTimeout(t.Context(), time.Second)
	assert.Error(t, xsync.Ping(pctx, holderName), "Ping through the cut-off member fails")
	pcancel()
	require.NoError(t, xsync.Ping(t.Context(), otherName), "the majority side is healthy")

	b := xsync.New(otherName, "k")
	require.NoError(t, b.SetExp(10*time.Second))
	require.NoError(t, b.SetRetry(1000, 500*time.Millisecond))
	var got xsync.Item
	var gotAt time.Time
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	err := b.Run(ctx, func(ctx context.Context) error {
		gotAt = time.Now()
		got = xsync.ItemFromContext(ctx)
		return nil
	})
	require.NoError(t, err, "the majority side must hand the lock on once the lease expired")
	assert.Greater(t, got, held, "the new holder's token is larger")

	assert.ErrorIs(t, <-runErr, xsync.ErrLockLost, "the old holder's Run reports the loss")
	require.NotZero(t, lostAt.Load(), "the old holder's context was cancelled")
	assert.ErrorIs(t, cause, xsync.ErrLockLost)
	lost := time.Unix(0, lostAt.Load())
	assert.True(t, lost.Before(gotAt),
		"the old holder learned of the loss (%v after the cut) before the new one got the lock (%v after)",
		lost.Sub(paused), gotAt.Sub(paused))
	t.Logf("cut off at 0; old holder's context cancelled at %v; new holder at %v; tokens %d -> %d",
		lost.Sub(paused), gotAt.Sub(paused), held, got)

	members[0].Unpause()
	// "Once it can reach the cluster again": the member follows the
	// majority's leader and has applied what the leader had when it came
	// back. Before, a request through it can time out on the server (a
	// proposal from a member that knows no leader is dropped).
	admin := itest.EtcdClient(t, members...)
	st, err := admin.Status(t.Context(), members[leader(t, admin, members)].Endpoint())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		back, err := admin.Status(ctx, members[0].Endpoint())
		return err == nil && back.Leader == st.Leader && back.RaftAppliedIndex >= st.RaftIndex
	}, 30*time.Second, 50*time.Millisecond, "the cut-off member did not catch up with the majority")
	ctx2, cancel2 := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel2()
	ok, err := held.Unlock(ctx2, holderName, "k")
	require.NoError(t, err)
	assert.False(t, ok, "the expired holder's Unlock releases nothing")
}

// The leader is isolated (paused) while clients contend for one key. After
// a new leader is elected, lock operations go on through the majority; no
// two clients ever hold the key at once; tokens never repeat; and once the
// old leader is back, every member agrees on the key's state.
func TestLeaderIsolated(t *testing.T) {
	members := itest.StartEtcdCluster(t, 3)
	admin := itest.EtcdClient(t, members...)
	prefix := newPrefix()
	const workers = 4
	names := make([]string, workers)
	for i := range names {
		names[i] = register(t, fmt.Sprint("w", i), itest.EtcdClient(t, members...), prefix)
	}

	var (
		inside, overlaps atomic.Int32
		mu               sync.Mutex
		tokens           = map[xsync.Item]int{}
		acquired         atomic.Int64 // acquisitions (counted again from the isolation)
		stop             = make(chan struct{})
		wg               sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			a := xsync.New(names[w], "k")
			if err := a.SetExp(xetcd.MinTTL); err != nil {
				t.Error(err)
				return
			}
			if err := a.SetRetry(20, 200*time.Millisecond); err != nil {
				t.Error(err)
				return
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Each attempt is bounded: calls to the paused member hang.
				ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
				_ = a.Run(ctx, func(ctx context.Context) error {
					if inside.Add(1) != 1 {
						overlaps.Add(1)
					}
					item := xsync.ItemFromContext(ctx)
					mu.Lock()
					tokens[item]++
					mu.Unlock()
					acquired.Add(1)
					time.Sleep(5 * time.Millisecond) // the protected work
					inside.Add(-1)
					return nil
				})
				cancel()
			}
		})
	}

	// Let the workers get going, then isolate the leader.
	require.Eventually(t, func() bool { return acquired.Load() >= 10 }, 20*time.Second, 10*time.Millisecond)
	old := leader(t, admin, members)
	members[old].Pause()
	paused := time.Now()
	acquired.Store(0)
	// Operations continue through the majority once it has a new leader.
	require.Eventually(t, func() bool { return acquired.Load() >= 20 }, 30*time.Second, 10*time.Millisecond,
		"no lock was handed out after the leader was isolated")
	t.Logf("20 acquisitions through the majority within %v of isolating the leader", time.Since(paused))

	members[old].Unpause()
	close(stop)
	wg.Wait()

	assert.Zero(t, overlaps.Load(), "two clients held the key at once")
	for tok, n := range tokens {
		assert.Equal(t, 1, n, "token %d handed out %d times", tok, n)
	}

	// The old leader catches up: every member, read linearizably through
	// itself, agrees on the key's state (which may be held or free).
	perMember := make([]*clientv3.Client, len(members))
	for i, m := range members {
		perMember[i] = itest.EtcdClient(t, m)
	}
	require.Eventually(t, func() bool {
		var states []string
		for _, c := range perMember {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			resp, err := c.Get(ctx, prefix+"m/k")
			cancel()
			if err != nil {
				return false
			}
			s := "free"
			if len(resp.Kvs) > 0 {
				s = fmt.Sprint(resp.Kvs[0].CreateRevision)
			}
			states = append(states, s)
		}
		return states[0] == states[1] && states[1] == states[2]
	}, 30*time.Second, 200*time.Millisecond, "members disagree after the heal")
}

// A cluster that is down fails a lock attempt at once, marked
// backend.ErrUnavailable, instead of leaving it waiting for a connection
// as long as its context lets it (the etcd client's way): for a client
// that never reached the cluster and for one whose server stopped. Once
// the server is back, attempts succeed again.
func TestClusterDownFailsAtOnce(t *testing.T) {
	srv := itest.StartEtcd(t)
	connected := xsync.NewClient(xetcd.New(itest.EtcdClient(t, srv), xetcd.WithPrefix(newPrefix())))
	lease, err := connected.Acquire(t.Context(), "k")
	require.NoError(t, err)
	_, err = lease.Release(t.Context())
	require.NoError(t, err)
	srv.Stop()
	never := xsync.NewClient(xetcd.New(itest.EtcdClient(t, srv), xetcd.WithPrefix(newPrefix())))

	// A context without a deadline: before, the attempt waited for it.
	// The test's own deadline is the fallback.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for name, c := range map[string]*xsync.Client{"connected before": connected, "never connected": never} {
		start := time.Now()
		_, err := c.Acquire(ctx, "k")
		t.Logf("%s: %v after %v", name, err, time.Since(start).Round(time.Millisecond))
		require.ErrorIs(t, err, backend.ErrUnavailable, name)
		assert.False(t, xsync.IsMissingLockErr(err), name)
		require.NoError(t, ctx.Err(), "%s: the attempt waited for its context", name)
		require.ErrorIs(t, c.Ping(ctx), backend.ErrUnavailable, name)
	}

	srv.Start()
	require.Eventually(t, func() bool {
		actx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		lease, err := connected.Acquire(actx, "k2")
		if err != nil {
			return false
		}
		_, _ = lease.Release(actx)
		return true
	}, 2*time.Minute, 100*time.Millisecond, "no lock once the server was back")
}

// A server that stops answering on an open connection (frozen): a lock
// attempt whose context allows more ends at its TTL, marked
// backend.ErrUnavailable, instead of waiting as long as its context lets
// it; a grant after the TTL could only be of a lock already expired.
func TestFrozenAttemptEndsAtTTL(t *testing.T) {
	srv := itest.StartEtcd(t)
	l := xetcd.New(itest.EtcdClient(t, srv), xetcd.WithPrefix(newPrefix()))
	tok, err := l.Acquire(t.Context(), "warm", xetcd.MinTTL) // connected
	require.NoError(t, err)
	require.Positive(t, tok)
	srv.Pause()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for name, acquire := range map[string]func() (int64, error){
		"mutex":     func() (int64, error) { return l.Acquire(ctx, "k", xetcd.MinTTL) },
		"semaphore": func() (int64, error) { return l.Semaphore("s", 2).Acquire(ctx, backend.Request{TTL: xetcd.MinTTL}) },
		"write": func() (int64, error) {
			_, w := l.RWLock("rw")
			return w.Acquire(ctx, backend.Request{TTL: xetcd.MinTTL})
		},
		"keys": func() (int64, error) {
			return l.Multi([]string{"a", "b"}).Acquire(ctx, backend.Request{TTL: xetcd.MinTTL})
		},
	} {
		start := time.Now()
		tok, err := acquire()
		t.Logf("%s: %v after %v", name, err, time.Since(start).Round(time.Millisecond))
		assert.Zero(t, tok, name)
		assert.ErrorIs(t, err, backend.ErrUnavailable, name)
		require.NoError(t, ctx.Err(), "%s: the attempt waited for its context", name)
	}
}
