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
	t.Run("KeepsHashes", func(t *testing.T) { clusterKeepsHashes(t, nodes) })
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

// A Locker on a Cluster keeps every mutex in a hash, because a script on
// the primary a slot migrates from stops at the first command on a key
// it no longer has: a script that deleted a string to write a hash in
// its place (the short layout's conversion) would stop after the delete,
// and a held lock would be gone. The second part shows the server doing
// that, so that the reason stays checked.
func clusterKeepsHashes(t *testing.T, nodes []*itest.Server) {
	ctx := t.Context()
	cc := clusterClient(t, nodes)
	prefix := "{" + newPrefix() + "}"
	l := xredis.New(cc, xredis.WithPrefix(prefix))
	tok, err := l.Acquire(ctx, "k", time.Minute)
	if err != nil || tok == 0 {
		t.Fatalf("Acquire = %d, %v", tok, err)
	}
	if typ := cc.Type(ctx, prefix+"m:k").Val(); typ != "hash" {
		t.Fatalf("a Cluster Locker's mutex is a %s; want a hash", typ)
	}

	key := prefix + "converted"
	slot, err := cc.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	owner, err := cc.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var src, dst *goredis.Client
	for _, n := range nodes {
		c := itest.RedisClient(t, n)
		role, err := c.Do(ctx, "ROLE").Slice()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case role[0] != "master":
		case n.Endpoint() == owner.Options().Addr:
			src = c
		case dst == nil:
			dst = c
		}
	}
	if src == nil || dst == nil {
		t.Fatal("no source or destination primary")
	}
	srcID := src.Do(ctx, "CLUSTER", "MYID").Val()
	dstID := dst.Do(ctx, "CLUSTER", "MYID").Val()
	if err := src.Set(ctx, key, "held", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err(); err != nil {
		t.Fatal(err)
	}
	if err := src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		src.Del(context.WithoutCancel(ctx), key)
		for _, c := range []*goredis.Client{src, dst} {
			if err := c.Do(context.WithoutCancel(ctx), "CLUSTER", "SETSLOT", slot, "STABLE").Err(); err != nil {
				t.Errorf("SETSLOT STABLE: %v", err)
			}
		}
	}()
	err = src.Eval(ctx, `redis.call('DEL', KEYS[1]) redis.call('HSET', KEYS[1], 'tok', '1') return 1`, []string{key}).Err()
	if err == nil {
		t.Fatal("the script ran whole on the migrating primary; the Cluster may keep the short layout")
	}
	if n := src.Exists(ctx, key).Val(); n != 0 {
		t.Fatalf("the key is still there (%d): the script did not stop after the delete", n)
	}
	t.Logf("the script stopped after its delete: %v", err)
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
