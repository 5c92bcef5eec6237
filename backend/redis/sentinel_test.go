package redis_test

import (
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/xsync-go/xsync/backend"
	xredis "github.com/xsync-go/xsync/backend/redis"
	"github.com/xsync-go/xsync/conformance"
	"github.com/xsync-go/xsync/internal/itest"
)

// TestSentinelConformance runs the suite through a go-redis FailoverClient
// on a Sentinel deployment (a primary, a replica, three sentinels).
func TestSentinelConformance(t *testing.T) {
	sn := itest.StartRedisSentinel(t)
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		return &sentinelHarness{sn: sn, prefix: newPrefix()}
	})
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

func (h *sentinelHarness) Locker(t *testing.T) backend.Locker {
	return xredis.New(failoverClient(t, h.sn), xredis.WithPrefix(h.prefix), xredis.WithFenceIdle(testIdle))
}

func (h *sentinelHarness) Limits() conformance.Limits {
	return conformance.Limits{SizeSettle: testIdle + 250*time.Millisecond}
}

func (h *sentinelHarness) Size(t *testing.T) int {
	return countKeys(t, failoverClient(t, h.sn), h.prefix)
}
