package redis_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
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

// TestClusterConformance runs the suite through a go-redis ClusterClient
// on a Redis Cluster of 3 primaries with a replica each: keys spread over
// the slots (the suite's odd keys include braces and hash tags), release
// notifications through pub/sub across nodes.
func TestClusterConformance(t *testing.T) {
	nodes := itest.StartRedisCluster(t, 3, 1)
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		return &clusterHarness{nodes: nodes, prefix: newPrefix()}
	})
	// Keys in several slots cannot be taken in one script: a clear error,
	// not contention, and nothing taken.
	t.Run("AcquireAllAcrossSlots", func(t *testing.T) {
		cc := clusterClient(t, nodes)
		prefix := newPrefix()
		ctx := t.Context()
		sa, err := cc.ClusterKeySlot(ctx, prefix+"m:a").Result()
		if err != nil {
			t.Fatal(err)
		}
		sb, err := cc.ClusterKeySlot(ctx, prefix+"m:b").Result()
		if err != nil {
			t.Fatal(err)
		}
		if sa == sb {
			t.Fatalf("keys a and b share slot %d; the test needs two", sa)
		}
		c := xsync.NewClient(xredis.New(cc, xredis.WithPrefix(prefix)))
		_, err = c.AcquireAll(ctx, []string{"a", "b"}, xsync.WithTTL(time.Minute))
		if !errors.Is(err, xredis.ErrCrossSlot) || xsync.IsMissingLockErr(err) {
			t.Fatalf("AcquireAll over slots %d and %d = %v; want ErrCrossSlot, not ErrMissingLock", sa, sb, err)
		}
		t.Logf("AcquireAll over two slots: %v", err)
		for _, k := range []string{"a", "b"} {
			l, err := c.Acquire(ctx, k, xsync.WithTTL(time.Minute))
			if err != nil {
				t.Fatalf("%s after the refused AcquireAll: %v (nothing may be taken)", k, err)
			}
			if ok, err := l.Release(ctx); !ok || err != nil {
				t.Fatalf("release %s = %v, %v", k, ok, err)
			}
		}
		l, err := c.AcquireAll(ctx, []string{"{order:42}:payment", "{order:42}:stock"}, xsync.WithTTL(time.Minute))
		if err != nil {
			t.Fatalf("AcquireAll with one hash tag: %v", err)
		}
		if ok, err := l.Release(ctx); !ok || err != nil {
			t.Fatalf("release = %v, %v", ok, err)
		}
	})
}

type clusterHarness struct {
	nodes  []*itest.Server
	prefix string
}

func clusterClient(t *testing.T, nodes []*itest.Server) *goredis.ClusterClient {
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.Endpoint())
	}
	c := goredis.NewClusterClient(&goredis.ClusterOptions{
		Addrs: addrs, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		ContextTimeoutEnabled: true, // go-redis's retries and redirections as they are: a failover needs them
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// Locker opens the backend by URL, as an application would, so that the
// suite covers redis+cluster:// too.
func (h *clusterHarness) Locker(t *testing.T) backend.Locker {
	var addrs []string
	for _, n := range h.nodes {
		addrs = append(addrs, n.Endpoint())
	}
	return openLocker(t, "redis+cluster://"+strings.Join(addrs, ",")+
		"?dial_timeout=1s&read_timeout=1s&write_timeout=1s"+
		"&prefix="+url.QueryEscape(h.prefix)+"&fence_idle="+testIdle.String())
}

func openLocker(t *testing.T, u string) backend.Locker {
	l, closer, err := xsync.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closer.Close() })
	return l
}

func (h *clusterHarness) Limits() conformance.Limits {
	return conformance.Limits{SizeSettle: testIdle + 250*time.Millisecond, IgnoreGoroutines: pubsub.IdleGoroutines, FIFO: true}
}

func (h *clusterHarness) Size(t *testing.T) int {
	var n atomic.Int64
	c := clusterClient(t, h.nodes)
	err := c.ForEachMaster(context.Background(), func(ctx context.Context, m *goredis.Client) error {
		keys, err := m.Keys(ctx, h.prefix+"*").Result()
		n.Add(int64(len(keys)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return int(n.Load())
}
