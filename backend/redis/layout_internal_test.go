package redis

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/itest"
)

// A mutex nobody waits for is a string (the short layout); the first
// waiter to queue turns it into a hash with the same holder, owner,
// token and expiry, and its counter, so tokens keep growing across the
// change. An abandoned attempt on a key in the short layout leaves its
// void mark in the hash it becomes.
func TestLayoutShortToHash(t *testing.T) {
	srv := itest.StartRedis(t)
	c := itest.RedisClient(t, srv)
	l := New(c, WithPrefix("layout:"), WithFenceIdle(time.Minute))
	ctx := t.Context()
	m := l.Mutex("k").(mutex)
	typ := func() string {
		t.Helper()
		s, err := c.Type(ctx, m.k).Result()
		require.NoError(t, err)
		return s
	}

	t1, err := m.Acquire(ctx, backend.Request{TTL: time.Minute})
	require.NoError(t, err)
	require.Equal(t, "string", typ(), "a held key nobody waits for")
	ok, err := m.Release(ctx, t1)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "string", typ(), "a released key keeps its counter")

	t2, err := m.Acquire(ctx, backend.Request{TTL: 2 * time.Second, Owner: "worker 7"})
	require.NoError(t, err)
	require.Equal(t, t1+1, t2, "the counter gives the next token")
	before, err := m.Inspect(ctx)
	require.NoError(t, err)
	require.Len(t, before.Holders, 1)
	assert.Equal(t, t2, before.Holders[0].Token)
	assert.Equal(t, "worker 7", before.Holders[0].Owner)
	assert.True(t, before.Holders[0].TTL > time.Second && before.Holders[0].TTL <= 2*time.Second, "time left %v of a 2s TTL", before.Holders[0].TTL)
	// A confirmation (refresh with owner) keeps the short layout.
	ok, err = m.Confirm(ctx, t2, backend.Request{TTL: 2 * time.Second, Owner: "worker 8"})
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "string", typ())
	before, err = m.Inspect(ctx)
	require.NoError(t, err)
	require.Len(t, before.Holders, 1)
	assert.Equal(t, "worker 8", before.Holders[0].Owner)
	ok, err = m.Confirm(ctx, t2+1, backend.Request{TTL: 2 * time.Second, Owner: "other"})
	require.NoError(t, err)
	require.False(t, ok, "a confirmation by a token that does not hold")
	pttl, err := c.PTTL(ctx, m.k).Result()
	require.NoError(t, err)
	now, err := c.Time(ctx).Result()
	require.NoError(t, err)
	end := now.Add(pttl) // the string's expiry, to the millisecond

	_, stop, err := m.Watch(ctx, "w1", 10*time.Second)
	require.NoError(t, err)
	defer stop()
	require.Equal(t, "hash", typ(), "a waiter queued")
	h, err := c.HMGet(ctx, m.k, "tok", "exp", "who", "fence").Result()
	require.NoError(t, err)
	tok2 := strconv.FormatInt(t2, 10)
	assert.Equal(t, []any{tok2, h[1], "worker 8", tok2}, h)
	exp, err := strconv.ParseInt(h[1].(string), 10, 64)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, exp, end.UnixMicro(), "the holder lost time in the change")
	after, err := m.Inspect(ctx)
	require.NoError(t, err)
	require.Len(t, after.Holders, 1)
	assert.Equal(t, t2, after.Holders[0].Token)
	assert.Equal(t, "worker 8", after.Holders[0].Owner)
	assert.Equal(t, 1, after.Waiting)

	// An attempt abandoned before it arrives, on a key held in the short
	// layout: its void mark goes into the hash.
	require.NoError(t, c.Del(ctx, m.k).Err())
	t3, err := m.Acquire(ctx, backend.Request{TTL: time.Minute})
	require.NoError(t, err)
	require.Equal(t, "string", typ())
	require.NoError(t, abandonScript.Run(ctx, c, []string{m.k}, "late", l.idleArg, ms(time.Minute)).Err())
	require.Equal(t, "hash", typ(), "an attempt marked void")
	ok, err = m.Release(ctx, t3)
	require.NoError(t, err)
	require.True(t, ok)
	got, err := acquireScript.Run(ctx, c, []string{m.k}, ms(time.Minute), l.idleArg, "late").Int64()
	require.NoError(t, err)
	assert.Zero(t, got, "the abandoned attempt arrived and took the lock")
	t4, err := m.Acquire(ctx, backend.Request{TTL: time.Minute})
	require.NoError(t, err)
	assert.Greater(t, t4, t3)
}

// A Locker with WithHashLayout never writes the short layout, so that
// Lockers of earlier versions (which read hashes only) can share its
// keys; it takes and frees keys that a Locker without it left in the
// short layout, and the two exclude each other.
func TestLayoutHashOnly(t *testing.T) {
	srv := itest.StartRedis(t)
	c := itest.RedisClient(t, srv)
	short := New(c, WithPrefix("hashonly:"), WithFenceIdle(time.Minute))
	hash := New(c, WithPrefix("hashonly:"), WithFenceIdle(time.Minute), WithHashLayout())
	ctx := t.Context()
	typ := func(key string) string {
		t.Helper()
		s, err := c.Type(ctx, short.prefix+mutexSpace+key).Result()
		require.NoError(t, err)
		return s
	}

	// A new key, and one the short layout released.
	tok, err := hash.Acquire(ctx, "a", time.Minute)
	require.NoError(t, err)
	require.Positive(t, tok)
	assert.Equal(t, "hash", typ("a"))
	s, err := short.Acquire(ctx, "b", time.Minute)
	require.NoError(t, err)
	ok, err := short.Release(ctx, "b", s)
	require.NoError(t, err)
	require.True(t, ok)
	h, err := hash.Acquire(ctx, "b", time.Minute)
	require.NoError(t, err)
	assert.Greater(t, h, s, "after the short layout's counter")
	assert.Equal(t, "hash", typ("b"))

	// Each excludes the other, and frees what the other took.
	for _, pair := range []struct {
		name        string
		first, then *Locker
	}{{"short then hash", short, hash}, {"hash then short", hash, short}} {
		key := "x-" + pair.name
		tok, err := pair.first.Acquire(ctx, key, time.Minute)
		require.NoError(t, err)
		require.Positive(t, tok)
		got, err := pair.then.Acquire(ctx, key, time.Minute)
		require.NoError(t, err)
		assert.Zero(t, got, "%s: a second holder", pair.name)
		ok, err := pair.then.Release(ctx, key, tok)
		require.NoError(t, err)
		assert.True(t, ok, "%s: release by the token", pair.name)
		got, err = pair.then.Acquire(ctx, key, time.Minute)
		require.NoError(t, err)
		assert.Greater(t, got, tok, "%s: the freed key", pair.name)
	}

	// An older Locker's acquire script (the hash layout's logic alone)
	// on a key in the short layout fails with WRONGTYPE: an error, never
	// a second holder.
	_, err = short.Acquire(ctx, "c", time.Minute)
	require.NoError(t, err)
	_, err = c.HMGet(ctx, short.prefix+mutexSpace+"c", "tok").Result()
	var rerr goredis.Error
	require.ErrorAs(t, err, &rerr)
	assert.Contains(t, err.Error(), "WRONGTYPE")
}

// Lockers with and without WithHashLayout, contending on one key at once
// (with no fence idle time, a release deletes the key, so it changes
// layout back and forth under them), never both hold it, and tokens grow
// in grant order.
func TestLayoutsContend(t *testing.T) {
	srv := itest.StartRedis(t)
	c := itest.RedisClient(t, srv)
	lockers := []*Locker{
		New(c, WithPrefix("contend:"), WithFenceIdle(0)),
		New(c, WithPrefix("contend:"), WithFenceIdle(0), WithHashLayout()),
	}
	ctx := t.Context()
	const workers, rounds = 4, 100
	var (
		mu      sync.Mutex
		holding bool
		last    int64
		grants  int
		layouts = map[string]int{}
	)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		l := lockers[w%2]
		wg.Go(func() {
			errs <- func() error {
				for range rounds {
					tok, err := l.Acquire(ctx, "k", 10*time.Second)
					if err != nil {
						return err
					}
					if tok == 0 {
						continue // held: try again
					}
					mu.Lock()
					if holding {
						mu.Unlock()
						return fmt.Errorf("token %d granted while the key was held", tok)
					}
					if tok <= last {
						mu.Unlock()
						return fmt.Errorf("token %d after %d", tok, last)
					}
					holding, last = true, tok
					grants++
					mu.Unlock()
					typ, err := c.Type(ctx, lockers[0].prefix+mutexSpace+"k").Result() // a hold of one round trip
					if err != nil {
						return err
					}
					mu.Lock()
					layouts[typ]++
					holding = false
					mu.Unlock()
					ok, err := lockers[(w+1)%2].Release(ctx, "k", tok) // the other layout's Locker releases
					if err != nil {
						return err
					}
					if !ok {
						return fmt.Errorf("release of token %d failed", tok)
					}
				}
				return nil
			}()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("%d grants of %d attempts, held in %v", grants, workers*rounds, layouts)
	require.Positive(t, layouts["string"], "no grant in the short layout")
	require.Positive(t, layouts["hash"], "no grant in a hash")
}
