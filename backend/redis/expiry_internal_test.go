package redis

import (
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/itest"
)

// A permit or a read or write lock lives on the server at least its TTL
// after the script that granted it read the server's clock (its holder
// counts the TTL from before its request), and at most 1ms more. Their sorted sets score
// holders in milliseconds: a score of now + TTL, with now rounded down,
// would drop a holder up to 1ms early, and let a writer in during a
// reader's validity.
func TestHolderLivesItsTTL(t *testing.T) {
	srv := itest.StartRedis(t)
	c := itest.RedisClient(t, srv)
	l := New(c, WithPrefix("expiry:"), WithFenceIdle(0))
	ctx := t.Context()
	const ttl = time.Minute
	read, _ := l.RWLock("r")
	_, write := l.RWLock("w")
	for _, tc := range []struct {
		name string
		lock backend.Lock
		key  string
	}{
		{"read", read, l.prefix + rwSpace + "r"},
		{"write", write, l.prefix + rwSpace + "w"},
		{"semaphore", l.Semaphore("s", 1), l.prefix + semaphoreSpace + "s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each round fails with the old scores unless the grant and
			// the clock read before it fall in different milliseconds.
			for range 20 {
				now, err := c.Time(ctx).Result()
				require.NoError(t, err)
				before := now.UnixMicro()
				tok, err := tc.lock.Acquire(ctx, backend.Request{TTL: ttl})
				require.NoError(t, err)
				require.Positive(t, tok)

				zs, err := c.ZRangeByScoreWithScores(ctx, tc.key, &goredis.ZRangeBy{Min: "(0", Max: "+inf"}).Result()
				require.NoError(t, err)
				var holders []goredis.Z
				for _, z := range zs {
					if !strings.HasPrefix(z.Member.(string), "#") {
						holders = append(holders, z)
					}
				}
				require.Len(t, holders, 1, "one holder: %v", zs)
				// A holder is live while the server's milliseconds are
				// below its score.
				end := int64(holders[0].Score) * 1000
				require.GreaterOrEqual(t, end, before+ttl.Microseconds(),
					"the holder is dropped %dµs before its TTL has passed since its grant", before+ttl.Microseconds()-end)
				// ...and at most 1ms past its TTL (the package doc's bound),
				// counted from a clock reading after the grant.
				now, err = c.Time(ctx).Result()
				require.NoError(t, err)
				after := now.UnixMicro()
				require.LessOrEqual(t, end, after+ttl.Microseconds()+1000,
					"the holder outlives its TTL by %dµs more than 1ms", end-(after+ttl.Microseconds()+1000))

				ok, err := tc.lock.Release(ctx, tok)
				require.NoError(t, err)
				require.True(t, ok)
			}
		})
	}
}

// A mutex's fencing counter outlives its lock by the fence idle time at
// least after a release, in either layout. In a hash, a release frees the
// holder's fields but leaves the hash's time to live, which every grant
// and refresh sets past the holder's expiry by the fence idle time; in
// the short layout, the release leaves the counter alone in the key for
// the fence idle time.
func TestCounterOutlivesRelease(t *testing.T) {
	srv := itest.StartRedis(t)
	c := itest.RedisClient(t, srv)
	const idle = 30 * time.Second
	for _, layout := range []string{"string", "hash"} {
		t.Run(layout, func(t *testing.T) {
			opts := []Option{WithPrefix("counter-" + layout + ":"), WithFenceIdle(idle)}
			if layout == "hash" {
				opts = append(opts, WithHashLayout())
			}
			counterOutlivesRelease(t, c, New(c, opts...), layout)
		})
	}
}

func counterOutlivesRelease(t *testing.T, c *goredis.Client, l *Locker, layout string) {
	ctx := t.Context()
	const idle = 30 * time.Second
	k := l.prefix + mutexSpace + "k"
	for _, ttl := range []time.Duration{time.Second, time.Minute} {
		tok, err := l.Acquire(ctx, "k", ttl)
		require.NoError(t, err)
		require.Positive(t, tok)
		typ, err := c.Type(ctx, k).Result()
		require.NoError(t, err)
		require.Equal(t, layout, typ, "the held key's layout")
		require.NoError(t, err)
		require.Positive(t, tok)
		if ttl == time.Second {
			// Shorter: a refresh sets the time to live anew.
			ok, err := l.Mutex("k").(backend.Refresher).Refresh(ctx, tok, ttl/2)
			require.NoError(t, err)
			require.True(t, ok)
		}
		ok, err := l.Release(ctx, "k", tok)
		require.NoError(t, err)
		require.True(t, ok)
		var fence int64
		if layout == "hash" {
			fence, err = c.HGet(ctx, k, "fence").Int64()
		} else {
			var v string
			v, err = c.Get(ctx, k).Result()
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(v, "f"), "released: %q", v)
			fence, err = strconv.ParseInt(v[1:], 10, 64)
		}
		require.NoError(t, err)
		require.Equal(t, tok, fence, "the counter stays")
		pttl, err := c.PTTL(ctx, k).Result()
		require.NoError(t, err)
		least := idle // a hash lives the TTL plus idle from the grant
		if layout == "string" {
			least = idle - time.Second // the counter's own key, set at the release, read since
		}
		require.GreaterOrEqual(t, pttl, least, "TTL %v: the counter lives the fence idle time after the release", ttl)
	}
}

// A refresh may shorten the hash's time to live (a shorter TTL), but not
// below the queued waiters' places: the queue lives in the hash, and a
// hash that expired under its waiters would drop their places (their
// turn, and the grant that goes with it) while they still wait. That holds
// for a mutex's refresh and for a multi-key lock's, whose keys mutex
// waiters can queue on.
func TestRefreshKeepsQueuedPlaces(t *testing.T) {
	srv := itest.StartRedis(t)
	c := itest.RedisClient(t, srv)
	l := New(c, WithPrefix("places:"), WithFenceIdle(0))
	ctx := t.Context()
	const keep = 30 * time.Second
	for _, tc := range []struct {
		name string
		lock backend.Lock
	}{
		{"mutex", l.Mutex("m")},
		{"multi", l.Multi([]string{"m2"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "m"
			if tc.name == "multi" {
				key = "m2"
			}
			k := l.prefix + mutexSpace + key
			tok, err := tc.lock.Acquire(ctx, backend.Request{TTL: 10 * time.Second})
			require.NoError(t, err)
			require.Positive(t, tok)
			_, stop, err := l.Mutex(key).(backend.Watcher).Watch(ctx, "w1", keep)
			require.NoError(t, err)
			defer stop()

			ok, err := tc.lock.(backend.Refresher).Refresh(ctx, tok, time.Second)
			require.NoError(t, err)
			require.True(t, ok)
			pttl, err := c.PTTL(ctx, k).Result()
			require.NoError(t, err)
			require.Greater(t, pttl, keep-5*time.Second, "the refresh cut the hash's life below the waiter's place")

			// With no waiter queued, a shorter TTL shortens the hash's life.
			stop()
			ok, err = tc.lock.(backend.Refresher).Refresh(ctx, tok, time.Second)
			require.NoError(t, err)
			require.True(t, ok)
			pttl, err = c.PTTL(ctx, k).Result()
			require.NoError(t, err)
			require.LessOrEqual(t, pttl, time.Second+time.Millisecond)
		})
	}
}
