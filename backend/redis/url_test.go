package redis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	xredis "github.com/xsync-go/xsync/backend/redis"
	"github.com/xsync-go/xsync/internal/itest"
)

func TestOpenURLBad(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"redis://:secret@localhost:6379/x", "invalid database"},
		{"redis://:secret@localhost:6379?fence_idle=soon", "fence_idle"},
		{"redis://:secret@localhost:6379?fence_idle=-1s", "fence_idle"},
		{"redis://:secret@localhost:6379?colour=blue", "unexpected option: colour"},
		{"rediss://:secret@localhost:6379?dial_timeout=never", "dial_timeout"},
		{"redis://:secret@localhost:6379?ca_file=ca.pem", "need rediss://"},
		{"redis+cluster://:secret@h1:6379,h2:6379/1", "only database 0"},
		{"redis+cluster://:secret@h1:6379,,h2:6379", "empty host"},
		{"redis+cluster://:secret@h1,h2:6379", `host "h1" has no port`},
		{"redis+cluster://:secret@h1:6379?addr=h2:6379", "not as addr options"},
		{"redis+cluster://:secret@h1:6379?skip_verify=true", "with rediss+cluster"},
		{"redis+cluster://:secret@h1:6379?ca_file=ca.pem", "need rediss+cluster://"},
		{"redis+cluster://:secret@h1:6379?read_only=maybe", "read_only"},
		{"redis+sentinel://:secret@s1:26379,s2:26379", "no primary name"},
		{"redis+sentinel://:secret@s1:26379/mymaster?master_name=other", "not master_name"},
		{"redis+sentinel://:secret@s1:26379/mymaster/x", "invalid database"},
		{"redis+sentinel://:secret@s1:26379/mymaster?sentinel_password=secret&colour=blue", "unexpected option: colour"},
		{"rediss+sentinel://:secret@/mymaster", "no hosts"},
	} {
		_, _, err := xsync.Open(t.Context(), tc.url)
		require.ErrorIs(t, err, xsync.ErrInvalid, tc.url)
		assert.Contains(t, err.Error(), tc.want, tc.url)
		assert.NotContains(t, err.Error(), "secret", "the password must not be shown: %v", err)
	}
}

func TestOpenURLTLS(t *testing.T) {
	for _, u := range []string{
		"rediss://localhost:6380?skip_verify=true",
		"rediss+cluster://h1:6380,h2:6380?skip_verify=true",
		"rediss+sentinel://s1:26380,s2:26380/mymaster/2?skip_verify=true&sentinel_password=x",
	} {
		l, closer, err := xsync.Open(t.Context(), u)
		require.NoError(t, err, u)
		assert.IsType(t, &xredis.Locker{}, l)
		require.NoError(t, closer.Close())
	}
}

// A URL with password, DB, timeouts and our own options opens a backend
// that works, in that DB, under that prefix.
func TestOpenURLWorks(t *testing.T) {
	srv := itest.StartRedis(t)
	admin := itest.RedisClient(t, srv)
	require.NoError(t, admin.ConfigSet(t.Context(), "requirepass", "s3cret").Err())
	ctx := context.Background()

	u := "redis://:s3cret@" + srv.Endpoint() + "/3?dial_timeout=1s&read_timeout=2s&prefix=app1:&fence_idle=30s"
	l, closer, err := xsync.Open(ctx, u)
	require.NoError(t, err)
	t.Cleanup(func() { closer.Close() })
	t.Cleanup(xsync.Swap("url", l))

	item, err := xsync.Lock(ctx, "url", "user:1", 5)
	require.NoError(t, err)
	require.True(t, item.HasLock())

	db3 := itest.RedisClientWith(t, srv, &goredis.Options{Password: "s3cret", DB: 3})
	keys, err := db3.Keys(ctx, "*").Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"app1:m:user:1"}, keys)
	ttl, err := db3.PTTL(ctx, "app1:m:user:1").Result()
	require.NoError(t, err)
	assert.Greater(t, ttl.Seconds(), 4.0, "the key lives for the TTL")
	ok, err := item.Unlock(ctx, "url", "user:1")
	require.NoError(t, err)
	require.True(t, ok)
	ttl, err = db3.PTTL(ctx, "app1:m:user:1").Result()
	require.NoError(t, err)
	assert.Greater(t, ttl.Seconds(), 29.0, "the released key keeps its counter for fence_idle")

	// hash_layout=true keeps the mutex in a hash.
	lh, closeh, err := xsync.Open(ctx, u+"&hash_layout=true")
	require.NoError(t, err)
	t.Cleanup(func() { closeh.Close() })
	tok, err := lh.Acquire(ctx, "user:2", 5*time.Second)
	require.NoError(t, err)
	require.Positive(t, tok)
	typ, err := db3.Type(ctx, "app1:m:user:2").Result()
	require.NoError(t, err)
	assert.Equal(t, "hash", typ)
	_, _, err = xsync.Open(ctx, u+"&hash_layout=maybe")
	require.ErrorContains(t, err, "hash_layout")

	_, _, err = xsync.Open(ctx, strings.Replace(u, "s3cret", "wrong", 1))
	require.NoError(t, err, "Open does not contact the server")
}

// Programmer's errors panic at construction with a clear message; the same
// values in a URL are errors.
func TestConstructorPanics(t *testing.T) {
	var nilClient *goredis.Client
	assert.PanicsWithValue(t, "redis: New: client is nil", func() { xredis.New(nil) })
	assert.PanicsWithValue(t, "redis: New: client is nil", func() { xredis.New(nilClient) })
	assert.PanicsWithValue(t, "redis: WithFenceIdle(-1s): must be >= 0", func() { xredis.WithFenceIdle(-time.Second) })
}
