package redis_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/conformance"
	"github.com/xsync-go/xsync/internal/itest"
	"github.com/xsync-go/xsync/internal/pubsub"
)

// TestSentinelConformance runs the suite through a go-redis FailoverClient
// on a Sentinel deployment (a primary, a replica, three sentinels).
func TestSentinelConformance(t *testing.T) {
	sn := itest.StartRedisSentinel(t)
	// In a subtest of its own, so that every rule has run (the rules run in
	// parallel, after the test's function returns) before the passwords
	// change.
	t.Run("conformance", func(t *testing.T) {
		conformance.Run(t, func(t *testing.T) conformance.Harness {
			return &sentinelHarness{sn: sn, prefix: newPrefix()}
		})
	})
	t.Run("PasswordsGoToTheServers", func(t *testing.T) { sentinelPasswords(t, sn) })
}

type sentinelHarness struct {
	sn     *itest.Sentinel
	prefix string
}

func failoverClient(t *testing.T, sn *itest.Sentinel) *goredis.Client {
	c := goredis.NewFailoverClient(&goredis.FailoverOptions{
		MasterName: sn.Master, SentinelAddrs: sn.Addrs(),
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		ContextTimeoutEnabled: true, MaxRetries: -1,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// Locker opens the backend by URL, as an application would, so that the
// suite covers redis+sentinel:// too.
func (h *sentinelHarness) Locker(t *testing.T) backend.Locker {
	return openLocker(t, sentinelURL(h.sn, "")+"&prefix="+url.QueryEscape(h.prefix)+"&fence_idle="+testIdle.String())
}

func sentinelURL(sn *itest.Sentinel, userinfo string) string {
	return "redis+sentinel://" + userinfo + strings.Join(sn.Addrs(), ",") + "/" + sn.Master +
		"?dial_timeout=1s&read_timeout=1s&write_timeout=1s&max_retries=-1"
}

// sentinelPasswords checks that a redis+sentinel URL's password goes to
// the Redis servers, not to the sentinels: with requirepass on the
// primary and the replica and none on the sentinels, locks work with it
// and fail without it, with the server's NOAUTH.
func sentinelPasswords(t *testing.T, sn *itest.Sentinel) {
	ctx := t.Context()
	for _, s := range sn.Sentinels {
		require.NoError(t, itest.RedisClient(t, s).Do(ctx, "SENTINEL", "SET", sn.Master, "auth-pass", "s3cret").Err())
	}
	require.NoError(t, itest.RedisClient(t, sn.Replica).ConfigSet(ctx, "masterauth", "s3cret").Err())
	for _, s := range []*itest.Server{sn.Replica, sn.Primary} {
		require.NoError(t, itest.RedisClient(t, s).ConfigSet(ctx, "requirepass", "s3cret").Err())
	}

	c := xsync.NewClient(openLocker(t, sentinelURL(sn, ":s3cret@")))
	lease, err := c.Acquire(ctx, "url:k", xsync.WithTTL(5*time.Second))
	require.NoError(t, err)
	released, err := lease.Release(ctx)
	require.NoError(t, err)
	require.True(t, released)

	c = xsync.NewClient(openLocker(t, sentinelURL(sn, "")))
	_, err = c.Acquire(ctx, "url:k", xsync.WithTTL(5*time.Second))
	require.ErrorContains(t, err, "NOAUTH")
	require.NotErrorIs(t, err, xsync.ErrMissingLock, "a refused login is not a busy lock")
}

func (h *sentinelHarness) Limits() conformance.Limits {
	return conformance.Limits{SizeSettle: testIdle + 250*time.Millisecond, IgnoreGoroutines: pubsub.IdleGoroutines, FIFO: true}
}

func (h *sentinelHarness) Size(t *testing.T) int {
	return countKeys(t, failoverClient(t, h.sn), h.prefix)
}
