package redlock_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/backend/redlock"
	"github.com/xsync-go/xsync/internal/itest"
)

// TestWatch runs the watch's tests on one set of three nodes, each
// subtest under a prefix of its own.
func TestWatch(t *testing.T) {
	nodes := itest.StartRedisN(t, 3)
	t.Run("WaitersWakeOneAtATime", func(t *testing.T) { testWaitersWakeOneAtATime(t, nodes) })
	t.Run("ObserversHearEveryChange", func(t *testing.T) { testObserversHearEveryChange(t, nodes) })
	t.Run("ExpiryWakesFirst", func(t *testing.T) { testExpiryWakesFirst(t, nodes) })
	t.Run("ExpiryWakesAfterRefresh", func(t *testing.T) { testExpiryWakesAfterRefresh(t, nodes) })
	t.Run("ExpiryWakesWhenMajorityFree", func(t *testing.T) { testExpiryWakesWhenMajorityFree(t, nodes) })
	t.Run("BehindRefusedWithoutRound", func(t *testing.T) { testBehindRefusedWithoutRound(t, nodes) })
	t.Run("FreeAtWatchWakesFirst", func(t *testing.T) { testFreeAtWatchWakesFirst(t, nodes) })
}

// twoLockers returns two Lockers of nodes, as two processes would have,
// under a prefix of their own.
func twoLockers(t *testing.T, nodes []*itest.Server) (a, b *redlock.Locker) {
	prefix := newPrefix()
	return redlock.New(clients(t, nodes), redlock.WithPrefix(prefix)), redlock.New(clients(t, nodes), redlock.WithPrefix(prefix))
}

// testWaitersWakeOneAtATime: the waiters of one key on one Locker line up,
// and a release wakes only the first of them (each woken waiter would send
// a round to every node); the first's leaving hands a wake it had not taken
// to the next, and makes the next the first.
func testWaitersWakeOneAtATime(t *testing.T, nodes []*itest.Server) {
	ctx := t.Context()
	holder, waiters := twoLockers(t, nodes)
	const key, ttl = "k", time.Minute // no wake at the holder's expiry

	tok, err := holder.Acquire(ctx, key, ttl)
	require.NoError(t, err)
	require.Positive(t, tok)
	ready := make([]<-chan struct{}, 4)
	stops := make([]func(), 4)
	for i := range ready {
		ready[i], stops[i], err = waiters.Mutex(key).(backend.Watcher).Watch(ctx, "", time.Second)
		require.NoError(t, err)
		t.Cleanup(stops[i])
	}
	// cycle releases the holder's lock and takes it again.
	cycle := func() {
		t.Helper()
		ok, err := holder.Release(ctx, key, tok)
		require.NoError(t, err)
		require.True(t, ok)
		tok, err = holder.Acquire(ctx, key, ttl)
		require.NoError(t, err)
		require.Positive(t, tok)
	}
	woken := func(i int) {
		t.Helper()
		await(t, ready[i], fmt.Sprintf("waiter %d was not woken", i))
	}
	asleep := func(from int) {
		t.Helper()
		for i := from; i < len(ready); i++ {
			require.Empty(t, ready[i], "waiter %d was woken, but is not first", i)
		}
	}
	asleep(0)

	// Two releases: every node's message of the first reaches the Locker
	// before its message of the second, so a wake of the others by the
	// first release would show by the time the second wakes the first.
	cycle()
	woken(0)
	cycle()
	woken(0)
	asleep(1)

	// The first leaves: the next is first.
	stops[0]()
	cycle()
	woken(1)
	asleep(2)

	// Woken, but leaving without taking it: the wake goes on.
	cycle()
	require.Eventually(t, func() bool { return len(ready[1]) == 1 }, 10*time.Second, time.Millisecond, "waiter 1 was not woken")
	stops[1]()
	woken(2)
	asleep(3)
}

// testExpiryWakesFirst: the holder's expiry, which publishes nothing (each
// waiter's watch has a timer at it), wakes only the first of a Locker's
// waiters of the key too.
func testExpiryWakesFirst(t *testing.T, nodes []*itest.Server) {
	ctx := t.Context()
	holder, waiters := twoLockers(t, nodes)
	const key, ttl = "k", time.Second

	_, err := holder.Acquire(ctx, key, ttl)
	require.NoError(t, err)
	ready := make([]<-chan struct{}, 2)
	for i := range ready {
		var stop func()
		ready[i], stop, err = waiters.Mutex(key).(backend.Watcher).Watch(ctx, "", time.Second)
		require.NoError(t, err)
		t.Cleanup(stop)
		require.Empty(t, ready[i], "waiter %d was woken while the key is held", i)
	}
	// Time must pass: the holder's TTL runs out.
	await(t, ready[0], "the first waiter was not woken at the holder's expiry")
	// Both timers have fired by the time a release of a new lock wakes
	// the first again (they were set for the same moment, and the new
	// lock takes a round to every node).
	tok, err := holder.Acquire(ctx, key, time.Minute)
	require.NoError(t, err)
	require.Positive(t, tok)
	ok, err := holder.Release(ctx, key, tok)
	require.NoError(t, err)
	require.True(t, ok)
	await(t, ready[0], "the first waiter was not woken by the release")
	require.Empty(t, ready[1], "waiter 1 was woken, but is not first")
}

// testExpiryWakesAfterRefresh: a holder that refreshed after the waiter
// read its time left is still there when that time is up; the waiter
// wakes at the new expiry, when an attempt takes the lock (woken at the
// old one, its attempt would fail, and nothing would wake it again but
// its retry interval).
func testExpiryWakesAfterRefresh(t *testing.T, nodes []*itest.Server) {
	ctx := t.Context()
	holder, waiters := twoLockers(t, nodes)
	const key = "k"
	tok, err := holder.Acquire(ctx, key, time.Second)
	require.NoError(t, err)
	ready, stop, err := waiters.Mutex(key).(backend.Watcher).Watch(ctx, "", time.Second)
	require.NoError(t, err)
	t.Cleanup(stop)
	ok, err := holder.Mutex(key).(backend.Refresher).Refresh(ctx, tok, 2*time.Second)
	require.NoError(t, err)
	require.True(t, ok)
	// Time must pass: the refreshed TTL runs out.
	wokenFree(t, ready, waiters, key, "the waiter was not woken at the refreshed lock's expiry", "woken while the refreshed lock was held")
}

// wokenFree waits for ready, then checks that an attempt of l's on key
// wins: the waiter was woken when the key was free.
func wokenFree(t *testing.T, ready <-chan struct{}, l *redlock.Locker, key, notWoken, held string) {
	t.Helper()
	await(t, ready, notWoken)
	got, err := l.Acquire(t.Context(), key, time.Minute)
	require.NoError(t, err)
	require.Positive(t, got, held)
}

// testExpiryWakesWhenMajorityFree: with one node of three not answering,
// the waiter counts it as held, and wakes when the holder's other two
// copies have expired, not when the first has: only then can an attempt
// win two nodes.
func testExpiryWakesWhenMajorityFree(t *testing.T, nodes []*itest.Server) {
	ctx := t.Context()
	prefix := newPrefix()
	holder := redlock.New(clients(t, nodes), redlock.WithPrefix(prefix))
	waiters := redlock.New(clients(t, nodes), redlock.WithPrefix(prefix))
	const key = "k"
	_, err := holder.Acquire(ctx, key, 2*time.Second)
	require.NoError(t, err)
	// Node 0's copy expires early (as if its SET had landed first, long
	// before); node 2 stops answering.
	ok, err := itest.RedisClient(t, nodes[0]).PExpire(ctx, prefix+"m:"+key, 100*time.Millisecond).Result()
	require.NoError(t, err)
	require.True(t, ok)
	nodes[2].Pause()
	t.Cleanup(nodes[2].Unpause)
	ready, stop, err := waiters.Mutex(key).(backend.Watcher).Watch(ctx, "", time.Second)
	require.NoError(t, err)
	t.Cleanup(stop)
	// Time must pass: node 1's copy runs out.
	wokenFree(t, ready, waiters, key, "the waiter was not woken at the holder's expiry", "woken while the holder held node 1, and node 2 did not answer")
}

// testObserversHearEveryChange: an election's observers on one Locker do
// not line up: every one of them hears a change.
func testObserversHearEveryChange(t *testing.T, nodes []*itest.Server) {
	ctx := t.Context()
	leader, observers := twoLockers(t, nodes)
	req := backend.Request{TTL: time.Minute}
	tok, err := leader.Election("e").Acquire(ctx, req)
	require.NoError(t, err)
	require.Positive(t, tok)

	changes := make([]<-chan struct{}, 3)
	for i := range changes {
		var stop func()
		changes[i], stop, err = observers.Election("e").(backend.Notifier).Changes(ctx)
		require.NoError(t, err)
		t.Cleanup(stop)
		await(t, changes[i], "Changes did not fire at once")
	}
	ok, err := leader.Election("e").Release(ctx, tok)
	require.NoError(t, err)
	require.True(t, ok)
	for i := range changes {
		await(t, changes[i], fmt.Sprintf("observer %d heard no change", i))
	}
}

// await waits up to 10s for a value of ch, and fails with msg if none
// comes.
func await(t *testing.T, ch <-chan struct{}, msg string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal(msg)
	}
}

// testBehindRefusedWithoutRound: an attempt by a waiter that is not first
// in its Locker's line is refused without a round, even when the key is
// free (the first one makes the line's rounds, so the nodes' work does not
// grow with the waiters' timed retries); once it is first, its attempts
// are rounds again.
func testBehindRefusedWithoutRound(t *testing.T, nodes []*itest.Server) {
	ctx := t.Context()
	holder, waiters := twoLockers(t, nodes)
	const key, ttl = "k", time.Minute
	m := waiters.Mutex(key)

	tok, err := holder.Acquire(ctx, key, ttl)
	require.NoError(t, err)
	require.Positive(t, tok)
	_, stopFirst, err := m.(backend.Watcher).Watch(ctx, "first", time.Second)
	require.NoError(t, err)
	t.Cleanup(stopFirst)
	_, stopSecond, err := m.(backend.Watcher).Watch(ctx, "second", time.Second)
	require.NoError(t, err)
	t.Cleanup(stopSecond)
	ok, err := holder.Release(ctx, key, tok)
	require.NoError(t, err)
	require.True(t, ok)

	got, err := m.Acquire(ctx, backend.Request{TTL: ttl, Waiter: "second"})
	require.NoError(t, err)
	require.Zero(t, got, "a waiter behind another was granted the key")
	info, err := holder.Mutex(key).(backend.Inspector).Inspect(ctx)
	require.NoError(t, err)
	require.Empty(t, info.Holders, "the refused attempt took the key on the nodes: it made a round")

	stopFirst()
	got, err = m.Acquire(ctx, backend.Request{TTL: ttl, Waiter: "second"})
	require.NoError(t, err)
	require.Positive(t, got, "the waiter that is first now was refused a free key")
}

// testFreeAtWatchWakesFirst: a watch that starts while the key is free
// wakes its line's first waiter, who may take it (the new waiter behind
// it would be refused), though the first heard no release (the key is
// deleted on the nodes directly, as a release whose messages were all
// lost).
func testFreeAtWatchWakesFirst(t *testing.T, nodes []*itest.Server) {
	ctx := t.Context()
	prefix := newPrefix()
	cs := clients(t, nodes)
	holder, waiters := redlock.New(cs, redlock.WithPrefix(prefix)), redlock.New(clients(t, nodes), redlock.WithPrefix(prefix))
	const key, ttl = "k", time.Minute
	m := waiters.Mutex(key)

	_, err := holder.Acquire(ctx, key, ttl)
	require.NoError(t, err)
	first, stopFirst, err := m.(backend.Watcher).Watch(ctx, "first", time.Second)
	require.NoError(t, err)
	t.Cleanup(stopFirst)
	for _, c := range cs {
		require.NoError(t, c.Del(ctx, prefix+"m:"+key).Err())
	}
	require.Empty(t, first, "the first waiter was woken by a delete that publishes nothing")

	next, stopNext, err := m.(backend.Watcher).Watch(ctx, "next", time.Second)
	require.NoError(t, err)
	t.Cleanup(stopNext)
	await(t, first, "a watch found the key free and did not wake the first waiter")
	require.Empty(t, next, "the waiter behind the first was woken")
}
