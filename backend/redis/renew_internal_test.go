package redis

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync/internal/itest"
)

// A queued waiter's refused attempt renews its place only once a third of
// its keep time has passed: an attempt soon after the last renewal leaves
// the queue as it is (it would rewrite the whole queue), and one after a
// third of keep sets a later deadline.
func TestRefusedWaiterRenewsWhenDue(t *testing.T) {
	srv := itest.StartRedis(t)
	c := itest.RedisClient(t, srv)
	l := New(c, WithPrefix("renew:"))
	ctx := t.Context()
	tok, err := l.Acquire(ctx, "k", time.Minute)
	require.NoError(t, err)
	require.Positive(t, tok)

	k := l.prefix + mutexSpace + "k"
	const keep = 600 * time.Millisecond
	attempt := func(nonce string) string {
		t.Helper()
		got, err := acquireScript.Run(ctx, l.client, []string{k}, ms(time.Minute), l.idleArg, nonce, "", "w1", ms(keep)).Int64()
		require.NoError(t, err)
		require.Zero(t, got, "the key is held: the waiter is refused")
		q, err := c.HGet(ctx, k, "q").Result()
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(q, "w1="), "the waiter is queued: %q", q)
		return q
	}
	first := attempt("n1")
	require.Equal(t, first, attempt("n2"), "a renewal that is not due rewrote the place")
	time.Sleep(keep/3 + 50*time.Millisecond) // a third of keep must pass
	require.Greater(t, attempt("n3"), first, "a renewal that is due left the place as it was")
}
