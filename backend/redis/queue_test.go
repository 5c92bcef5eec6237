package redis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync/backend"
	xredis "github.com/xsync-go/xsync/backend/redis"
	"github.com/xsync-go/xsync/internal/itest"
)

// TestQueueLost: a waiter whose queue the server lost (the field gone,
// as after a restart or a failover) is queued again at its next attempt,
// and the key goes to it when its turn comes; it then leaves the queue.
func TestQueueLost(t *testing.T) {
	srv := itest.StartRedis(t)
	admin := itest.RedisClient(t, srv)
	prefix := newPrefix()
	ctx := context.Background()
	other := xredis.New(itest.RedisClient(t, srv), xredis.WithPrefix(prefix))
	l := xredis.New(itest.RedisClient(t, srv), xredis.WithPrefix(prefix))
	const key, keep, ttl = "k", time.Second, 5 * time.Second

	held, err := other.Acquire(ctx, key, ttl)
	require.NoError(t, err)
	require.Positive(t, held)
	m := l.Mutex(key)
	ready, stop, err := m.(backend.Watcher).Watch(ctx, "w1", keep)
	require.NoError(t, err)
	defer stop()
	hash := prefix + "m:" + key
	queue := func() string { return admin.HGet(ctx, hash, "q").Val() }
	require.True(t, strings.HasPrefix(queue(), "w1="), "queued: %q", queue())

	require.NoError(t, admin.HDel(ctx, hash, "q").Err())
	queued := backend.Request{TTL: ttl, Waiter: "w1", Keep: keep}
	tok, err := m.Acquire(ctx, queued)
	require.NoError(t, err)
	require.Zero(t, tok, "the key is still held")
	require.True(t, strings.HasPrefix(queue(), "w1="), "queued again: %q", queue())

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
	require.Empty(t, queue(), "the waiter left the queue with the key")
}
