package redis_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	xredis "github.com/xsync-go/xsync/backend/redis"
	"github.com/xsync-go/xsync/conformance"
	"github.com/xsync-go/xsync/internal/itest"
)

// byEndpoint finds the server listening at addr.
func byEndpoint(t *testing.T, servers []*itest.Server, addr string) *itest.Server {
	t.Helper()
	for _, s := range servers {
		if s.Endpoint() == addr {
			return s
		}
	}
	t.Fatalf("no server at %s", addr)
	return nil
}

// clusterUp waits until every node reports a healthy cluster.
func clusterUp(t *testing.T, nodes []*itest.Server) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			info, err := itest.RedisClient(t, n).ClusterInfo(t.Context()).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
		}
		return true
	}, 60*time.Second, 100*time.Millisecond, "the cluster did not heal")
}

// failover measures one kill of the primary that serves key: how long
// until a lock on the key's slot is served again, whether the held lock
// survived (it did if it reached the replica before the kill), and that
// tokens still grow.
func failover(t *testing.T, l *xredis.Locker, key string, kill func()) {
	ctx := t.Context()
	name := "failover:" + t.Name()
	t.Cleanup(xsync.Swap(name, l))
	held, err := xsync.Lock(ctx, name, key, 30)
	require.NoError(t, err)
	require.True(t, held.HasLock())
	killed := time.Now()
	kill()
	var errs []string
	var next xsync.Item
	for {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		item, err := xsync.Lock(actx, name, key+"-probe", 5) // same slot: {tag}
		cancel()
		if err == nil && item.HasLock() {
			next = item
			break
		}
		if err != nil && len(errs) < 3 {
			errs = append(errs, err.Error())
		}
		require.Less(t, time.Since(killed), 60*time.Second, "locks not served again within 60s: %v", errs)
	}
	t.Logf("locks served again %v after the primary was killed; errors meanwhile (first 3): %v", time.Since(killed).Round(time.Millisecond), errs)
	assert.Greater(t, next, held, "tokens keep growing across the failover")
	again, err := xsync.Lock(ctx, name, key, 5)
	require.NoError(t, err)
	if again.HasLock() {
		t.Logf("the held lock was LOST in the failover (not yet replicated): a second holder got it, token %d > %d", again, held)
		assert.Greater(t, again, held, "the second holder's token is larger: a fenced resource rejects the first")
	} else {
		t.Logf("the held lock survived the failover (it had reached the replica)")
	}
}

func TestSentinelFailover(t *testing.T) {
	sn := itest.StartRedisSentinel(t)
	c := failoverClient(t, sn)
	l := xredis.New(c, xredis.WithPrefix("xsync-failover:"))
	failover(t, l, "{failover}:k", func() { sn.Primary.Kill() })
	sn.Primary.Start()
}

// The history checker on failovers: the primary serving the contended
// keys is killed (and restarted as a replica) on a schedule. Replication
// is asynchronous, so a failover may lose a lock the primary granted just
// before it died: overlaps are allowed here, and counted; tokens must
// still grow and fencing must reject every stale write.
func TestHistoryFailover(t *testing.T) {
	t.Run("cluster-kill-primary", func(t *testing.T) {
		nodes := itest.StartRedisCluster(t, 3, 1)
		c := clusterClient(t, nodes)
		var victim *itest.Server
		n := &conformance.Nemesis{Name: "kill-primary",
			Inject: func(t *testing.T) {
				// Kill a primary: the history's keys are spread over
				// the slots of all three.
				shards, err := c.ClusterShards(context.Background()).Result()
				require.NoError(t, err)
				for _, sh := range shards {
					for _, n := range sh.Nodes {
						if n.Role == "master" && n.Health == "online" && victim == nil {
							victim = byEndpoint(t, nodes, fmt.Sprintf("%s:%d", n.IP, n.Port))
						}
					}
				}
				require.NotNil(t, victim, "no primary online")
				victim.Kill()
			},
			Heal:   func(t *testing.T) { victim.Start(); clusterUp(t, nodes); victim = nil },
			Length: 3 * time.Second}
		conformance.RunHistory(t, &clusterHarness{nodes: nodes, prefix: newPrefix()}, conformance.HistoryOptions{
			Name: "redis-cluster/kill-primary", Nemesis: n, Expect: conformance.Expect{MayOverlap: true, MayOrphan: true},
		})
	})
	t.Run("sentinel-kill-primary", func(t *testing.T) {
		sn := itest.StartRedisSentinel(t)
		servers := []*itest.Server{sn.Primary, sn.Replica}
		var victim *itest.Server
		sentinel := goredis.NewSentinelClient(&goredis.Options{Addr: sn.Addrs()[0]})
		t.Cleanup(func() { sentinel.Close() })
		n := &conformance.Nemesis{Name: "kill-primary",
			Inject: func(t *testing.T) {
				addr, err := sentinel.GetMasterAddrByName(context.Background(), sn.Master).Result()
				require.NoError(t, err)
				victim = byEndpoint(t, servers, fmt.Sprintf("%s:%s", addr[0], addr[1]))
				victim.Kill()
			},
			Heal:   func(*testing.T) { victim.Start() },
			Length: 4 * time.Second}
		conformance.RunHistory(t, &sentinelHarness{sn: sn, prefix: newPrefix()}, conformance.HistoryOptions{
			Name: "redis-sentinel/kill-primary", Nemesis: n, Expect: conformance.Expect{MayOverlap: true, MayOrphan: true},
		})
	})
}
