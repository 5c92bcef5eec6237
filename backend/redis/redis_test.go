package redis_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	xredis "github.com/xsync-go/xsync/backend/redis"
	"github.com/xsync-go/xsync/conformance"
	"github.com/xsync-go/xsync/internal/itest"
	"github.com/xsync-go/xsync/internal/pubsub"
)

func TestMain(m *testing.M) { itest.Main(m) }

const testIdle = 500 * time.Millisecond

var prefixes atomic.Int64

// newPrefix gives every subtest's backend a namespace of its own on the
// shared server.
func newPrefix() string { return fmt.Sprintf("xsync-test-%d:", prefixes.Add(1)) }

func TestConformance(t *testing.T) {
	srv := itest.StartRedis(t)
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		return &harness{srv: srv, prefix: newPrefix()}
	})
}

// The hash layout (WithHashLayout, for rolling upgrades) keeps every
// rule too.
func TestConformanceHashLayout(t *testing.T) {
	srv := itest.StartRedis(t)
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		return &harness{srv: srv, prefix: newPrefix(), opts: []xredis.Option{xredis.WithHashLayout()}}
	})
}

// harness is one subtest's namespace (a key prefix) on the shared server.
type harness struct {
	srv    *itest.Server
	prefix string
	opts   []xredis.Option // more options for its Lockers
}

func (h *harness) options() []xredis.Option {
	return append([]xredis.Option{xredis.WithPrefix(h.prefix), xredis.WithFenceIdle(testIdle)}, h.opts...)
}

func (h *harness) Locker(t *testing.T) backend.Locker {
	return xredis.New(itest.RedisClient(t, h.srv), h.options()...)
}

func (h *harness) Limits() conformance.Limits {
	return conformance.Limits{SizeSettle: testIdle + 250*time.Millisecond, IgnoreGoroutines: pubsub.IdleGoroutines, FIFO: true}
}

func (h *harness) Size(t *testing.T) int { return countKeys(t, itest.RedisClient(t, h.srv), h.prefix) }

func (h *harness) Faulty(t *testing.T) (backend.Locker, conformance.Fault) {
	p := itest.NewProxy(t, h.srv.Endpoint())
	return xredis.New(itest.RedisClientAt(t, p.Addr(), nil), h.options()...), p
}

func countKeys(t *testing.T, c *goredis.Client, prefix string) int {
	t.Helper()
	keys, err := c.Keys(context.Background(), prefix+"*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	return len(keys)
}

// A semaphore, a read-write lock and a mutex of one key are independent,
// and no mutex key names another kind's Redis keys, whatever its bytes:
// every kind has a space of its own ({prefix}m:, s:, r:).
func TestTypesKeySpaces(t *testing.T) {
	srv := itest.StartRedis(t)
	c := xsync.NewClient(xredis.New(itest.RedisClient(t, srv), xredis.WithPrefix(newPrefix())))
	ctx := t.Context()
	m, err := c.Acquire(ctx, "k", xsync.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Semaphore("k", 1).Acquire(ctx, xsync.WithTTL(time.Minute))
	if err != nil {
		t.Fatalf("the semaphore of a key whose mutex is held: %v", err)
	}
	w, err := c.RWLock("k").AcquireWrite(ctx, xsync.WithTTL(time.Minute))
	if err != nil {
		t.Fatalf("the read-write lock of a key whose mutex is held: %v", err)
	}
	for _, l := range []*xsync.Lease{m, s, w} {
		if ok, err := l.Release(ctx); !ok || err != nil {
			t.Fatalf("release = %v, %v", ok, err)
		}
	}
	if _, err := c.Semaphore("x", 1).Acquire(ctx, xsync.WithTTL(time.Minute)); err != nil {
		t.Fatal(err)
	}
	for _, forged := range []string{"x\x00sem", "s:x", "../s:x", "x:q", "r:x"} {
		if _, err := c.Acquire(ctx, forged, xsync.WithTTL(time.Minute)); err != nil {
			t.Fatalf("a mutex %q beside the semaphore x: %v", forged, err)
		}
	}
	if _, err := c.Semaphore("x", 1).Acquire(ctx); !xsync.IsMissingLockErr(err) {
		t.Fatalf("the semaphore x (limit 1) again: %v; want ErrMissingLock: its permit is untouched", err)
	}
}
