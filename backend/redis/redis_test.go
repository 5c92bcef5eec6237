package redis_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/xsync-go/xsync/backend"
	xredis "github.com/xsync-go/xsync/backend/redis"
	"github.com/xsync-go/xsync/conformance"
	"github.com/xsync-go/xsync/internal/itest"
)

func TestMain(m *testing.M) { itest.Main(m) }

const testIdle = 500 * time.Millisecond

var prefixes atomic.Int64

// newPrefix gives every subtest's backend a namespace of its own on the
// shared server.
func newPrefix() string { return fmt.Sprintf("xsync-test-%d:", prefixes.Add(1)) }

func TestConformance(t *testing.T) {
	srv := itest.StartRedis(t)
	// Which prefix each backend uses, for Size and Peer.
	prefixOf := map[backend.Locker]string{}
	conformance.Run(t, func(t *testing.T) backend.Locker {
		p := newPrefix()
		l := xredis.New(itest.RedisClient(t, srv), xredis.WithPrefix(p), xredis.WithFenceIdle(testIdle))
		prefixOf[l] = p
		return l
	}, conformance.Options{
		Peer: func(t *testing.T, l backend.Locker) backend.Locker {
			return xredis.New(itest.RedisClient(t, srv), xredis.WithPrefix(prefixOf[l]), xredis.WithFenceIdle(testIdle))
		},
		Size: func(t *testing.T, l backend.Locker) int {
			return countKeys(t, itest.RedisClient(t, srv), prefixOf[l])
		},
		SizeSettle: testIdle + 250*time.Millisecond,
		Faulty: func(t *testing.T, l backend.Locker) (backend.Locker, conformance.Fault) {
			p := itest.NewProxy(t, srv.Endpoint())
			return xredis.New(itest.RedisClientAt(t, p.Addr(), nil), xredis.WithPrefix(prefixOf[l]), xredis.WithFenceIdle(testIdle)), p
		},
	})
}

func countKeys(t *testing.T, c *goredis.Client, prefix string) int {
	t.Helper()
	keys, err := c.Keys(context.Background(), prefix+"*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	return len(keys)
}
