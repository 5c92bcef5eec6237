package itest

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
)

// clusterPort returns a free loopback port whose cluster bus port (port +
// 10000) is free too.
func clusterPort() (string, error) {
	for range 50 {
		p, err := freePort()
		if err != nil {
			return "", err
		}
		n, _ := strconv.Atoi(p)
		if n+10000 > 65535 {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(n+10000)))
		if err != nil {
			continue
		}
		ln.Close()
		return p, nil
	}
	return "", fmt.Errorf("no free port pair for a cluster node")
}

// StartRedisCluster starts a Redis Cluster of primaries primaries with
// replicas replicas each, on the host network (every node listens and
// announces itself on 127.0.0.1, so the test reaches all of them and they
// reach each other), and waits until every slot is served. A failed
// primary is replaced by its replica within about a second
// (cluster-node-timeout 1000).
func StartRedisCluster(t testing.TB, primaries, replicas int) []*Server {
	t.Helper()
	if runtime.GOOS != "linux" {
		unavailable(t, "a Redis Cluster test needs host networking, which only a Linux Docker engine has")
	}
	img := resolveImage(t, redisImage)
	n := primaries * (1 + replicas)
	servers := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range servers {
		sp := redisSpec
		sp.image, sp.hostOnly, sp.pick = img, true, clusterPort
		sp.cmd = func(port string) []string {
			return []string{"redis-server", "--port", port, "--bind", "127.0.0.1", "--protected-mode", "no",
				"--save", "", "--appendonly", "no", "--cluster-enabled", "yes",
				"--cluster-config-file", "nodes-" + port + ".conf", "--cluster-node-timeout", "1000",
				"--repl-diskless-sync-delay", "0"}
		}
		wg.Go(func() { servers[i], errs[i] = start(t, sp) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	create := []string{"redis-cli", "--cluster", "create"}
	for _, s := range servers {
		create = append(create, s.Endpoint())
	}
	create = append(create, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := servers[0].exec(create...); err != nil {
		t.Fatalf("cluster create: %v\n%s", err, out)
	}
	clients := make([]*goredis.Client, len(servers))
	for i, s := range servers {
		clients[i] = RedisClientAt(t, s.Endpoint(), nil)
	}
	pollUntil(t, 60*time.Second, "the cluster to serve every slot with its replicas in sync", func() bool {
		for _, c := range clients {
			info, err := c.ClusterInfo(context.Background()).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
				return false
			}
			// A replica that has not synced yet cannot take over.
			repl, err := c.Info(context.Background(), "replication").Result()
			if err != nil || strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
				return false
			}
		}
		return true
	})
	return servers
}

// pollUntil polls cond until it holds, or fails t after d. It is for a
// deployment's own state (a cluster forming, a replica syncing), which
// sends no event to await.
func pollUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// exec runs a command in the server's container and returns its output.
func (s *Server) exec(cmd ...string) (string, error) {
	code, r, err := s.ctr.Exec(context.Background(), cmd, tcexec.Multiplexed())
	if err != nil {
		return "", err
	}
	b, _ := io.ReadAll(r)
	if code != 0 {
		return string(b), fmt.Errorf("%s: exit %d", cmd[0], code)
	}
	return string(b), nil
}

// Sentinel is a Sentinel-managed deployment: a primary, its replica and
// three sentinels, all on the host network.
type Sentinel struct {
	Master    string    // the monitored master's name
	Primary   *Server   // the primary at the start
	Replica   *Server   // its replica at the start
	Sentinels []*Server // the sentinels
}

// Addrs returns the sentinels' addresses.
func (s *Sentinel) Addrs() []string {
	var out []string
	for _, x := range s.Sentinels {
		out = append(out, x.Endpoint())
	}
	return out
}

// StartRedisSentinel starts a primary, a replica of it and three
// sentinels (quorum 2) that fail over about a second after the primary
// stops answering (down-after-milliseconds 1000).
func StartRedisSentinel(t testing.TB) *Sentinel {
	t.Helper()
	if runtime.GOOS != "linux" {
		unavailable(t, "a Redis Sentinel test needs host networking, which only a Linux Docker engine has")
	}
	img := resolveImage(t, redisImage)
	node := func(args ...string) (*Server, string) {
		sp := redisSpec
		sp.image, sp.hostOnly = img, true
		base := sp.cmd
		sp.cmd = func(listen string) []string { return append(base(listen), args...) }
		s, err := start(t, sp)
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(s.Endpoint())
		return s, port
	}
	primary, pport := node("--repl-diskless-sync-delay", "0")
	replica, _ := node("--replicaof", "127.0.0.1", pport, "--replica-announce-ip", "127.0.0.1", "--repl-diskless-sync-delay", "0")
	sn := &Sentinel{Master: "xsync-primary", Primary: primary, Replica: replica}
	sentinels := make([]*Server, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range sentinels {
		conf := fmt.Sprintf("bind 127.0.0.1\nsentinel announce-ip 127.0.0.1\n"+
			"sentinel monitor %s 127.0.0.1 %s 2\nsentinel down-after-milliseconds %[1]s 1000\n"+
			"sentinel failover-timeout %[1]s 5000\nsentinel parallel-syncs %[1]s 1\n", sn.Master, pport)
		sp := redisSpec
		sp.image, sp.hostOnly = img, true
		// The port on the command line: each attempt may pick another.
		sp.cmd = func(listen string) []string {
			return []string{"redis-server", "/sentinel.conf", "--sentinel", "--port", listen}
		}
		sp.extra = []testcontainers.ContainerCustomizer{testcontainers.WithFiles(testcontainers.ContainerFile{
			Reader: strings.NewReader(conf), ContainerFilePath: "/sentinel.conf", FileMode: 0o666})}
		wg.Go(func() { sentinels[i], errs[i] = start(t, sp) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	sn.Sentinels = sentinels
	// Sentinels learn of the replica from the primary's INFO (every 10s at
	// first); a failover needs it known and in sync.
	rc := RedisClientAt(t, replica.Endpoint(), nil)
	var scs []*goredis.Client
	for _, s := range sentinels {
		scs = append(scs, RedisClientAt(t, s.Endpoint(), nil))
	}
	pollUntil(t, 60*time.Second, "the sentinels to know an in-sync replica", func() bool {
		repl, err := rc.Info(context.Background(), "replication").Result()
		if err != nil || !strings.Contains(repl, "master_link_status:up") {
			return false
		}
		for _, sc := range scs {
			r, err := sc.Do(context.Background(), "SENTINEL", "REPLICAS", sn.Master).Slice()
			if err != nil || len(r) == 0 {
				return false
			}
		}
		return true
	})
	return sn
}
