package redis

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync/internal/itest"
)

// Several attempts on one key abandoned before they arrive (a frozen
// server queues them all, then runs every clean-up before the attempts):
// each attempt must find its own void mark and take nothing. With one mark
// per key, the last clean-up overwrote the others and an earlier attempt
// took the lock for a TTL nobody could release. The history checker found
// this under a paused server. Expired marks are dropped, so they do not
// pile up.
func TestAbandonedAttemptsEachStayVoid(t *testing.T) {
	srv := itest.StartRedis(t)
	c := itest.RedisClient(t, srv)
	l := New(c, WithPrefix("abandon:"))
	ctx := t.Context()
	const ttl = time.Second
	k := l.prefix + mutexSpace + "k"
	abandon := func(ctx context.Context, nonce string) {
		l.abandon(ctx, func(ctx context.Context) {
			require.NoError(t, abandonScript.Eval(ctx, l.client, []string{k}, nonce, l.idleArg, ms(ttl)).Err())
		})
	}
	nonces := []string{"n1", "n2", "n3"}
	for _, n := range nonces {
		abandon(ctx, n)
	}
	for _, n := range nonces {
		tok, err := acquireScript.Run(ctx, l.client, []string{k}, ms(ttl), l.idleArg, n).Int64()
		require.NoError(t, err)
		assert.Zero(t, tok, "abandoned attempt %s took the lock", n)
	}
	tok, err := l.Acquire(ctx, "k", ttl)
	require.NoError(t, err)
	require.Positive(t, tok, "a new attempt takes the free key")

	marks := func() int {
		fields, err := c.HKeys(ctx, k).Result()
		require.NoError(t, err)
		n := 0
		for _, f := range fields {
			if len(f) > 5 && f[:5] == "void:" {
				n++
			}
		}
		return n
	}
	require.Equal(t, len(nonces), marks())
	// Marks last the attempt's TTL; the next clean-up after that drops them.
	time.Sleep(ttl + 50*time.Millisecond) // the marks' time must pass
	abandon(context.Background(), "n4")
	assert.Equal(t, 1, marks(), "expired marks are dropped, the new one kept")
}

// A read-write attempt whose reply never came is undone as a mutex's is:
// one abandoned before it arrives takes nothing when it does, and one
// that was granted is given back by its nonce (its token was never seen).
func TestAbandonedReadWriteAttempts(t *testing.T) {
	srv := itest.StartRedis(t)
	c := itest.RedisClient(t, srv)
	l := New(c, WithPrefix("abandon-rw:"))
	ctx := t.Context()
	const ttl = time.Minute
	k := l.prefix + rwSpace + "k"
	attempt := func(kind, nonce string) int64 {
		t.Helper()
		tok, err := rwAcquireScript.Run(ctx, c, []string{k}, kind, ms(ttl), ms(time.Second), l.idleArg, nonce, "").Int64()
		require.NoError(t, err)
		return tok
	}
	abandon := func(nonce string) int64 {
		t.Helper()
		n, err := rwAbandonScript.Run(ctx, c, []string{k}, nonce, ms(ttl)).Int64()
		require.NoError(t, err)
		return n
	}

	assert.Zero(t, abandon("early"), "nothing to give back: a void mark")
	assert.Zero(t, attempt("w", "early"), "the abandoned attempt arrived late and took the lock")

	tok := attempt("r", "granted")
	require.Positive(t, tok)
	assert.Equal(t, int64(1), abandon("granted"), "the granted read lock is given back")
	w := attempt("w", "writer")
	require.Positive(t, w, "no reader is left: a writer gets the lock")
	assert.Greater(t, w, tok)
	assert.Equal(t, int64(1), abandon("writer"), "a granted write lock is given back too")
	_, write := l.RWLock("k")
	ok, err := write.Release(ctx, w)
	require.NoError(t, err)
	assert.False(t, ok, "already given back")
}
