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
	ports := make([]string, n)
	for i := range ports {
		p, err := clusterPort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	servers := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range servers {
		sp := redisSpec
		sp.image, sp.hostOnly, sp.fixedPort = img, true, ports[i]
		sp.cmd = func(port string) []string {
			return []string{"redis-server", "--port", port, "--bind", "127.0.0.1", "--protected-mode", "no",
				"--save", "", "--appendonly", "no", "--cluster-enabled", "yes",
				"--cluster-config-file", "nodes-" + port + ".conf", "--cluster-node-timeout", "1000"}
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
	for _, p := range ports {
		create = append(create, "127.0.0.1:"+p)
	}
	create = append(create, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := servers[0].exec(create...); err != nil {
		t.Fatalf("cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok := true
		for _, s := range servers {
			info, err := RedisClientAt(t, s.Endpoint(), nil).ClusterInfo(context.Background()).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
				ok = false
				break
			}
		}
		if ok {
			return servers
		}
		if time.Now().After(deadline) {
			t.Fatal("the cluster did not become ready in 60s")
		}
		time.Sleep(100 * time.Millisecond) // polling the cluster's own state: no event to await
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
