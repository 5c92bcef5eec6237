package redis_test

import (
	"context"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	xredis "github.com/xsync-go/xsync/backend/redis"
	"github.com/xsync-go/xsync/internal/itest"
)

// register puts a Redis backend on c behind a name of the test's own.
func register(t *testing.T, c xredis.Client) string {
	t.Helper()
	name := "redis:" + t.Name()
	t.Cleanup(xsync.Swap(name, xredis.New(c, xredis.WithPrefix(newPrefix()))))
	return name
}

// waitUp polls until the client reaches the restarted server again.
func waitUp(t *testing.T, c *goredis.Client) {
	t.Helper()
	require.Eventually(t, func() bool { return c.Ping(t.Context()).Err() == nil },
		30*time.Second, 20*time.Millisecond, "server did not come back")
}

// A server killed and restarted without persistence: calls during the
// outage fail fast with the client's error, not ErrMissingLock; afterwards
// locking works again, the forgotten lock is free (the documented risk),
// and tokens are still larger than every token issued before.
func TestKillAndRestartWithoutPersistence(t *testing.T) {
	srv := itest.StartRedis(t)
	c := itest.RedisClient(t, srv)
	name := register(t, c)
	ctx := t.Context()

	var last xsync.Item
	for range 5 {
		item, err := xsync.Lock(ctx, name, "other", 5)
		require.NoError(t, err)
		require.Greater(t, item, last)
		last = item
		_, err = item.Unlock(ctx, name, "other")
		require.NoError(t, err)
	}
	held, err := xsync.Lock(ctx, name, "k", 60)
	require.NoError(t, err)
	require.Greater(t, held, last)

	srv.Kill()
	start := time.Now()
	assert.Error(t, xsync.Ping(ctx, name), "Ping reports the outage")
	_, err = xsync.Lock(ctx, name, "k2", 5)
	assertOutage(t, "Lock", err)
	_, err = held.Unlock(ctx, name, "k")
	assertOutage(t, "Unlock", err)
	a := xsync.New(name, "k2")
	require.NoError(t, a.SetRetry(2, 10*time.Millisecond))
	err = a.Run(ctx, func(context.Context) error { return errors.New("callback ran") })
	assertOutage(t, "Run", err)
	// Five calls (Run makes three attempts), each refused at once.
	assert.Less(t, time.Since(start), 5*time.Second, "calls during the outage must fail fast")

	srv.Start()
	waitUp(t, c)
	require.NoError(t, xsync.Ping(ctx, name))
	after, err := xsync.Lock(ctx, name, "k", 60)
	require.NoError(t, err)
	require.True(t, after.HasLock(), "the restart forgot the held lock: the key is free")
	assert.Greater(t, after, held, "tokens keep growing across a restart that lost the counter")
	ok, err := held.Unlock(ctx, name, "k")
	require.NoError(t, err)
	assert.False(t, ok, "the pre-restart holder cannot release the new lock")
	ok, err = after.Unlock(ctx, name, "k")
	require.NoError(t, err)
	assert.True(t, ok)
}

func assertOutage(t *testing.T, call string, err error) {
	t.Helper()
	require.Error(t, err, "%s during the outage", call)
	assert.False(t, xsync.IsMissingLockErr(err), "%s during the outage = %v: a backend failure, not contention", call, err)
	var opErr *net.OpError
	assert.True(t, errors.As(err, &opErr), "%s: errors.As reaches the client's network error: %v", call, err)
}

// A holder with auto-extension whose server dies: renewals fail, and the
// callback's context is cancelled with ErrLockLost by the time the lock
// would have expired.
func TestAutoExtendOutageCancelsCallback(t *testing.T) {
	srv := itest.StartRedis(t)
	name := register(t, itest.RedisClient(t, srv))
	const exp = 2 * time.Second
	a := xsync.New(name, "k")
	require.NoError(t, a.SetExp(exp))
	require.NoError(t, a.SetAutoExtend(true, 0))

	holding := make(chan struct{})
	var killed atomic.Int64 // unix nanos; written here, read in the callback
	var cause error
	var lostAfter time.Duration
	done := make(chan error, 1)
	go func() {
		done <- a.Run(t.Context(), func(ctx context.Context) error {
			close(holding)
			select {
			case <-ctx.Done():
				cause, lostAfter = context.Cause(ctx), time.Since(time.Unix(0, killed.Load()))
				return nil
			case <-time.After(30 * time.Second):
				return errors.New("callback context still alive 30s into the outage")
			}
		})
	}()
	<-holding
	killed.Store(time.Now().UnixNano())
	srv.Kill()
	err := <-done
	assert.ErrorIs(t, err, xsync.ErrLockLost)
	assert.ErrorIs(t, cause, xsync.ErrLockLost)
	var opErr *net.OpError
	assert.True(t, errors.As(cause, &opErr), "the cause carries the failed renewal's error: %v", cause)
	// The last successful renewal was at most at the kill, so the lock's
	// validity ran out at most exp later.
	assert.LessOrEqual(t, lostAfter, exp+500*time.Millisecond, "cancelled %v after the kill", lostAfter)
	t.Logf("callback context cancelled %v after the kill: %v", lostAfter, cause)
}

// A paused server answers nothing: calls end by their context when the
// client honours contexts, and by the client's read timeout otherwise;
// they never hang. After the pause everything works again.
func TestPausedServer(t *testing.T) {
	srv := itest.StartRedis(t)
	ctxClient := itest.RedisClient(t, srv) // ContextTimeoutEnabled, 1s timeouts
	plain := itest.RedisClientWith(t, srv, &goredis.Options{ReadTimeout: 1500 * time.Millisecond, MaxRetries: -1})
	name := register(t, ctxClient)
	plainName := register2(t, plain)
	item, err := xsync.Lock(t.Context(), name, "k", 60)
	require.NoError(t, err)

	srv.Pause()

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = xsync.Lock(ctx, name, "k2", 5)
	elapsed := time.Since(start)
	require.Error(t, err)
	assert.False(t, xsync.IsMissingLockErr(err), "Lock during a pause = %v", err)
	// 200ms, then up to 250ms for a late reply and 250ms for the clean-up.
	assert.Less(t, elapsed, 1200*time.Millisecond, "Lock took %v; its ctx allowed 200ms", elapsed)

	// Run with retries against a paused server: bounded by ctx.
	a := xsync.New(name, "k2")
	require.NoError(t, a.SetRetry(100, 50*time.Millisecond))
	ctx2, cancel2 := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel2()
	start = time.Now()
	err = a.Run(ctx2, func(context.Context) error { return errors.New("callback ran") })
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 1500*time.Millisecond, "Run took %v; its ctx allowed 300ms (+0.5s clean-up)", time.Since(start))

	// A client that ignores contexts still ends the call by its timeout.
	start = time.Now()
	_, err = xsync.Lock(t.Context(), plainName, "k3", 5)
	require.Error(t, err)
	var ne net.Error
	assert.True(t, errors.As(err, &ne) && ne.Timeout(), "want a network timeout, got %v", err)
	assert.Less(t, time.Since(start), 5*time.Second)

	srv.Unpause()
	ok, err := item.Unlock(t.Context(), name, "k")
	require.NoError(t, err)
	assert.True(t, ok, "the lock survived the pause")
}

func register2(t *testing.T, c xredis.Client) string {
	t.Helper()
	name := "redis-plain:" + t.Name()
	t.Cleanup(xsync.Swap(name, xredis.New(c, xredis.WithPrefix(newPrefix()))))
	return name
}

// A server cut off the network (no refusal: packets vanish) makes calls end
// by their context; once it is back, the same client works again and the
// lock taken before the cut is still held.
func TestNetworkDisconnect(t *testing.T) {
	if os.Getenv(itest.NetworkEnv) == "host" {
		t.Skip("a server on the host network cannot be cut off")
	}
	srv := itest.StartRedis(t)
	c := itest.RedisClient(t, srv)
	name := register(t, c)
	item, err := xsync.Lock(t.Context(), name, "k", 60)
	require.NoError(t, err)

	srv.Disconnect()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = xsync.Lock(ctx, name, "k2", 5)
	require.Error(t, err)
	assert.False(t, xsync.IsMissingLockErr(err), "a cut network is a failure, not contention: %v", err)
	assert.Less(t, time.Since(start), 1500*time.Millisecond, "ended by its 300ms context (+0.5s clean-up)")
	pctx, pcancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer pcancel()
	assert.Error(t, xsync.Ping(pctx, name), "Ping reports the cut")

	srv.Connect()
	waitUp(t, c)
	ok, err := item.Unlock(t.Context(), name, "k")
	require.NoError(t, err)
	assert.True(t, ok, "the lock survived the cut")
}

// The repro of a late lost-lock signal: a client built with
// go-redis's defaults (ContextTimeoutEnabled false, so a call to a frozen
// server ends by the 3s read timeout, not by its context), traffic frozen
// 0.4s into a 1s lock held with auto-extension. The callback's context
// must end by the lock's validity deadline although the renewal hangs, and
// a second client that takes the lock after the TTL must find the first
// callback's context already ended.
func TestLostSignalOnTimeWithFrozenTraffic(t *testing.T) {
	srv := itest.StartRedis(t)
	p := itest.NewProxy(t, srv.Endpoint())
	plain := itest.RedisClientAt(t, p.Addr(), &goredis.Options{MaxRetries: -1}) // go-redis defaults
	prefix := newPrefix()
	name := "redis-frozen:" + t.Name()
	t.Cleanup(xsync.Swap(name, xredis.New(plain, xredis.WithPrefix(prefix))))
	other := "redis-direct:" + t.Name()
	t.Cleanup(xsync.Swap(other, xredis.New(itest.RedisClient(t, srv), xredis.WithPrefix(prefix))))

	a := xsync.New(name, "k")
	require.NoError(t, a.SetAutoExtend(true, 0)) // exp 1s: renewals every 333ms
	start := time.Now()
	var ended, frozen time.Duration
	var cause error
	err := a.Run(t.Context(), func(ctx context.Context) error {
		time.Sleep(400 * time.Millisecond) // the work, before traffic freezes
		p.Delay(time.Hour)
		frozen = time.Since(start)
		defer p.Heal()
		select {
		case <-ctx.Done():
			ended, cause = time.Since(start), context.Cause(ctx)
		case <-time.After(5 * time.Second):
			return errors.New("callback context still alive 5s into a 1s lock")
		}
		// The lock is free on the server once its TTL has passed there.
		var second xsync.Item
		require.Eventually(t, func() bool {
			second, _ = xsync.Lock(t.Context(), other, "k", 5)
			return second.HasLock()
		}, 3*time.Second, 10*time.Millisecond)
		assert.GreaterOrEqual(t, time.Since(start), ended, "the second holder got the lock after the first one's context ended")
		_, _ = second.Unlock(t.Context(), other, "k")
		return nil
	})
	assert.ErrorIs(t, err, xsync.ErrLockLost)
	assert.ErrorIs(t, cause, xsync.ErrLockLost)
	// The last renewal that could succeed was sent before the freeze: the
	// lock was valid until at most 1s after that.
	assert.LessOrEqual(t, ended, frozen+time.Second+250*time.Millisecond,
		"callback context ended %v after the request; traffic froze at %v, the lock's TTL is 1s", ended, frozen)
	t.Logf("callback context ended %v after the request (1s lock, renewed every 333ms, traffic frozen at %v): %v", ended, frozen, cause)
}

// Ping reports a server that may evict lock keys to free memory.
func TestPingReportsEvictionPolicy(t *testing.T) {
	srv := itest.StartRedis(t)
	c := itest.RedisClient(t, srv)
	name := register(t, c)
	ctx := t.Context()
	require.NoError(t, xsync.Ping(ctx, name), "no maxmemory: nothing is evicted")
	for _, tc := range []struct {
		maxmemory, policy string
		unsafe            bool
	}{
		{"64mb", "allkeys-lru", true},
		{"64mb", "volatile-lru", true},
		{"64mb", "volatile-ttl", true},
		{"64mb", "allkeys-random", true},
		{"64mb", "noeviction", false},
		{"0", "allkeys-lru", false}, // no limit: the policy never applies
	} {
		require.NoError(t, c.ConfigSet(ctx, "maxmemory", tc.maxmemory).Err())
		require.NoError(t, c.ConfigSet(ctx, "maxmemory-policy", tc.policy).Err())
		err := xsync.Ping(ctx, name)
		if tc.unsafe {
			assert.ErrorIs(t, err, xredis.ErrEvictionPolicy, "maxmemory %s, policy %s", tc.maxmemory, tc.policy)
			assert.ErrorContains(t, err, tc.policy)
		} else {
			assert.NoError(t, err, "maxmemory %s, policy %s", tc.maxmemory, tc.policy)
		}
	}
}
