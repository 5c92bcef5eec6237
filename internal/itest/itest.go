// Package itest starts the real servers that the backends' integration
// tests run against (Redis, a single etcd, a 3-member etcd cluster,
// PostgreSQL and PgBouncer), with testcontainers, and injects faults into
// them: stop and start, kill and start, pause and unpause, network
// disconnect and connect. A server keeps its host port across all of them.
//
// Image names come from XSYNC_REDIS_IMAGE, XSYNC_ETCD_IMAGE and
// XSYNC_POSTGRES_IMAGE, whose defaults are the official images
// (XSYNC_PGBOUNCER_IMAGE: the PostgreSQL image built here). On a machine
// without a registry, the first test that needs an image builds an
// equivalent local one with build-images.sh beside this file (once per
// machine; see resolveImage).
//
// Fault helpers: Server.Stop/Start, Kill, Pause/Unpause and
// Disconnect/Connect act on containers; [Proxy] sits between a client and a
// server and delays or cuts its traffic.
//
// Without a Docker engine the tests skip with a message; with CI set in the
// environment they fail instead, so that CI never passes by skipping.
package itest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	goredis "github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Image variables and their defaults (the official images).
const (
	RedisImageEnv     = "XSYNC_REDIS_IMAGE"
	DefaultRedisImage = "redis:7.0.15"
	EtcdImageEnv      = "XSYNC_ETCD_IMAGE"
	DefaultEtcdImage  = "gcr.io/etcd-development/etcd:v3.6.16"
)

// Main is for a test package's TestMain. It sets testcontainers' defaults
// before anything reads them: no reaper (its image cannot be pulled where
// there is no registry; every container is removed by its test's clean-up
// instead), and containers reached on 127.0.0.1 when Docker runs locally.
// Variables already set win.
func Main(m *testing.M) {
	setDefault("TESTCONTAINERS_RYUK_DISABLED", "true")
	if h := os.Getenv("DOCKER_HOST"); h == "" || strings.HasPrefix(h, "unix://") {
		setDefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	}
	// Container lifecycle chatter goes to each test's log (shown with -v
	// or on failure), not into the output that benchmarks print.
	tclog.SetDefault(tclog.NewNoopLogger())
	os.Exit(m.Run())
}

func setDefault(k, v string) {
	if _, ok := os.LookupEnv(k); !ok {
		os.Setenv(k, v)
	}
}

// unavailable skips the test, or fails it when CI is set.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set: integration tests must not skip)", msg)
	}
	t.Skipf("%s; skipping (set CI=true to make this a failure)", msg)
}

var (
	dockerOnce sync.Once
	dockerCli  *testcontainers.DockerClient
	dockerErr  error
)

func docker(t testing.TB) *testcontainers.DockerClient {
	t.Helper()
	dockerOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		dockerCli, dockerErr = testcontainers.NewDockerClientWithOpts(ctx)
	})
	if dockerErr != nil {
		unavailable(t, "no Docker engine answers: %v", dockerErr)
	}
	return dockerCli
}

// Server is one container of a test, removed when the test ends.
type Server struct {
	t        testing.TB
	ctr      *testcontainers.DockerContainer
	endpoint string // host:port on 127.0.0.1
	mu       sync.Mutex
	paused   bool
	cut      map[string][]string // networks (and aliases) Disconnect cut it off
}

// NetworkEnv selects how test servers are reached. Unset (the default):
// each publishes its port on 127.0.0.1 through Docker's proxy, which works
// everywhere. "host": servers share the host's network and listen on a
// free loopback port; no proxy sits in between (a Redis round trip here
// drops from about 400µs to 130µs), so benchmarks use it. Host networking
// needs a Linux Docker engine.
const NetworkEnv = "XSYNC_TEST_NETWORK"

func hostNetwork() bool { return os.Getenv(NetworkEnv) == "host" }

// spec says how to start one kind of server. cmd and ready get the port the
// server must listen on inside the container (its usual port on a bridge
// network, the chosen host port on the host network).
type spec struct {
	image, env string
	port       string // the usual port, e.g. "6379"
	cmd        func(listen string) []string
	ready      func(listen string) wait.Strategy
	bridged    bool                                 // never on the host network (cluster members)
	hostOnly   bool                                 // always on the host network (Redis Cluster: nodes announce 127.0.0.1)
	pick       func() (string, error)               // picks the host port, again at each attempt (nil: freePort)
	extra      []testcontainers.ContainerCustomizer // e.g. a private network
}

// start runs a server. On a bridge network it publishes the port on
// 127.0.0.1 only (IPv4 and IPv6 bindings may otherwise get different host
// ports). The host port is fixed for the container's life (picked free just
// before), so that the server keeps its address across Stop/Start and
// Kill/Start, as a real server does, and clients reconnect by themselves.
// ready must ask the server itself: behind docker-proxy a port accepts
// connections before anything listens. start may be called from any
// goroutine once resolveImage has run.
func start(t testing.TB, sp spec) (*Server, error) {
	for attempt := 1; ; attempt++ {
		s, err := startOnce(t, sp)
		// A port picked free can be taken before the server binds it (by
		// another test process picking it too, or as the local port of a
		// connection). Docker then refuses a published port; a server on
		// the host network exits instead, which shows only as a failed
		// start. Either way: pick again.
		host := (hostNetwork() && !sp.bridged) || sp.hostOnly
		if err != nil && attempt < 5 && (portTaken(err) || host) {
			t.Logf("%v: trying another port", err)
			continue
		}
		return s, err
	}
}

func portTaken(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "port is already allocated") || strings.Contains(msg, "address already in use")
}

func startOnce(t testing.TB, sp spec) (*Server, error) {
	pick := sp.pick
	if pick == nil {
		pick = freePort
	}
	hostPort, err := pick()
	if err != nil {
		return nil, err
	}
	opts := []testcontainers.ContainerCustomizer{testcontainers.WithLogger(tclog.TestLogger(t))}
	listen := sp.port
	if (hostNetwork() && !sp.bridged) || sp.hostOnly {
		listen = hostPort
		opts = append(opts, testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.NetworkMode = "host"
		}))
	} else {
		opts = append(opts,
			testcontainers.WithExposedPorts(sp.port+"/tcp"),
			testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
				p := network.MustParsePort(sp.port + "/tcp")
				hc.PortBindings = network.PortMap{p: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: hostPort}}}
			}))
	}
	opts = append(opts, sp.extra...)
	opts = append(opts,
		testcontainers.WithCmd(sp.cmd(listen)...),
		testcontainers.WithWaitStrategyAndDeadline(60*time.Second, sp.ready(listen)))
	ctr, err := testcontainers.Run(t.Context(), sp.image, opts...)
	testcontainers.CleanupContainer(t, ctr, testcontainers.StopTimeout(time.Second))
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", sp.image, err)
	}
	return &Server{t: t, ctr: ctr, endpoint: net.JoinHostPort("127.0.0.1", hostPort)}, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}

// Endpoint returns the server's host:port. It stays the same across
// faults.
func (s *Server) Endpoint() string { return s.endpoint }

// ID returns the container's ID.
func (s *Server) ID() string { return s.ctr.GetContainerID() }

// Stop stops the container (SIGTERM, then SIGKILL after a second).
func (s *Server) Stop() {
	s.t.Helper()
	d := time.Second
	if err := s.ctr.Stop(context.Background(), &d); err != nil {
		s.t.Fatalf("stop: %v", err)
	}
}

// Kill sends SIGKILL: the server dies at once, as in a crash.
func (s *Server) Kill() {
	s.t.Helper()
	ctx := context.Background()
	if _, err := docker(s.t).ContainerKill(ctx, s.ID(), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		s.t.Fatalf("kill: %v", err)
	}
	// Wait until Docker has seen it exit, so that Start starts it again.
	res := docker(s.t).ContainerWait(ctx, s.ID(), client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-res.Result:
	case err := <-res.Error:
		s.t.Fatalf("wait for exit: %v", err)
	}
}

// Start starts a stopped or killed container again and waits until it is
// ready. Its data is gone unless the server persisted it.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.ctr.Start(context.Background()); err != nil {
		s.t.Fatalf("start: %v", err)
	}
}

// Pause freezes the container: connections stay open but nothing answers.
// If the test does not unpause it, its clean-up does.
func (s *Server) Pause() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := docker(s.t).ContainerPause(context.Background(), s.ID(), client.ContainerPauseOptions{}); err != nil {
		s.t.Fatalf("pause: %v", err)
	}
	if !s.paused {
		s.t.Cleanup(s.Unpause)
	}
	s.paused = true
}

// Unpause lets a paused container run again; it does nothing if the
// container is not paused.
func (s *Server) Unpause() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.paused {
		return
	}
	if _, err := docker(s.t).ContainerUnpause(context.Background(), s.ID(), client.ContainerUnpauseOptions{}); err != nil {
		s.t.Fatalf("unpause: %v", err)
	}
	s.paused = false
}

// Disconnect cuts the container off its networks: open connections hang
// (nothing answers, nothing is refused) until Connect. It fails the test on
// the host network, which cannot be cut. The test's clean-up reconnects.
func (s *Server) Disconnect() {
	s.t.Helper()
	if hostNetwork() {
		s.t.Fatalf("Disconnect: the server is on the host network (%s=host)", NetworkEnv)
	}
	ctx := context.Background()
	aliases, err := s.ctr.NetworkAliases(ctx)
	if err != nil {
		s.t.Fatalf("disconnect: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for nw := range aliases {
		if _, err := docker(s.t).NetworkDisconnect(ctx, nw, client.NetworkDisconnectOptions{Container: s.ID(), Force: true}); err != nil {
			s.t.Fatalf("disconnect from %s: %v", nw, err)
		}
	}
	if s.cut == nil {
		s.t.Cleanup(s.Connect)
	}
	s.cut = aliases
}

// Connect undoes Disconnect, with the same aliases; it does nothing if the
// container is connected. The host port stays the same.
func (s *Server) Connect() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for nw, aliases := range s.cut {
		_, err := docker(s.t).NetworkConnect(context.Background(), nw, client.NetworkConnectOptions{
			Container:      s.ID(),
			EndpointConfig: &network.EndpointSettings{Aliases: aliases},
		})
		if err != nil {
			s.t.Fatalf("connect to %s: %v", nw, err)
		}
	}
	s.cut = map[string][]string{}
}

// redisSpec starts the official image and ours alike: no persistence, no
// protected mode (connections arrive through docker-proxy, not loopback).
var redisSpec = spec{
	env:  RedisImageEnv,
	port: "6379",
	cmd: func(listen string) []string {
		cmd := []string{"redis-server", "--port", listen, "--protected-mode", "no", "--save", "", "--appendonly", "no"}
		if hostNetwork() {
			cmd = append(cmd, "--bind", "127.0.0.1")
		}
		return cmd
	},
	ready: func(listen string) wait.Strategy {
		return wait.ForExec([]string{"redis-cli", "-p", listen, "ping"}).
			WithResponseMatcher(func(r io.Reader) bool {
				b, _ := io.ReadAll(r)
				return strings.Contains(string(b), "PONG")
			})
	},
}

// StartRedis starts a Redis server for the test.
func StartRedis(t testing.TB) *Server {
	t.Helper()
	return StartRedisN(t, 1)[0]
}

// StartRedisWith starts a Redis server for the test with extra
// command-line arguments (such as "--maxmemory", "10mb").
func StartRedisWith(t testing.TB, args ...string) *Server {
	t.Helper()
	return startRedis(t, 1, args)[0]
}

// StartRedisN starts n Redis servers concurrently.
func StartRedisN(t testing.TB, n int) []*Server {
	t.Helper()
	return startRedis(t, n, nil)
}

func startRedis(t testing.TB, n int, args []string) []*Server {
	t.Helper()
	sp := redisSpec
	base := sp.cmd
	sp.cmd = func(listen string) []string { return append(base(listen), args...) }
	sp.image = resolveImage(t, redisImage)
	servers := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range servers {
		wg.Go(func() { servers[i], errs[i] = start(t, sp) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return servers
}

// RedisClient returns a client of the server, closed when the test ends:
// calls end by their context (ContextTimeoutEnabled), and a dead server
// fails them within a second.
func RedisClient(t testing.TB, s *Server) *goredis.Client {
	t.Helper()
	return RedisClientWith(t, s, &goredis.Options{
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // the lock library owns retries
	})
}

// RedisClientWith returns a client of the server built from opts (its Addr
// is set here), closed when the test ends.
func RedisClientWith(t testing.TB, s *Server, opts *goredis.Options) *goredis.Client {
	t.Helper()
	return RedisClientAt(t, s.Endpoint(), opts)
}

// RedisClientAt is RedisClientWith for any address (a [Proxy]'s, say); nil
// opts are RedisClient's.
func RedisClientAt(t testing.TB, addr string, opts *goredis.Options) *goredis.Client {
	t.Helper()
	if opts == nil {
		opts = &goredis.Options{
			DialTimeout:           time.Second,
			ReadTimeout:           time.Second,
			WriteTimeout:          time.Second,
			ContextTimeoutEnabled: true,
			MaxRetries:            -1,
		}
	}
	opts.Addr = addr
	c := goredis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// etcdReady waits for the log line etcd prints once it serves clients.
// (On a restart the old line is still in the log: poll with a client.)
func etcdReady(string) wait.Strategy {
	return wait.ForLog("ready to serve client requests")
}

// StartEtcd starts a single-member etcd for the test. Its data lives in
// the container, so it survives Stop and Start.
func StartEtcd(t testing.TB) *Server {
	t.Helper()
	img := resolveImage(t, etcdImage)
	sp := spec{
		image: img, env: EtcdImageEnv, port: "2379", ready: etcdReady,
		cmd: func(listen string) []string {
			peer := "2380"
			if hostNetwork() {
				peer, _ = freePort()
			}
			host := "0.0.0.0"
			if hostNetwork() {
				host = "127.0.0.1"
			}
			return []string{"etcd", "--name=etcd0", "--data-dir=/tmp/etcd-data",
				"--listen-client-urls=http://" + host + ":" + listen,
				"--advertise-client-urls=http://127.0.0.1:" + listen,
				"--listen-peer-urls=http://" + host + ":" + peer,
				"--initial-advertise-peer-urls=http://127.0.0.1:" + peer,
				"--initial-cluster=etcd0=http://127.0.0.1:" + peer}
		},
	}
	s, err := start(t, sp)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// StartEtcdCluster starts an n-member etcd cluster on a private network;
// each member is reachable from the test at its own Endpoint. Members
// start concurrently: none is healthy before there is a leader.
func StartEtcdCluster(t testing.TB, n int) []*Server {
	t.Helper()
	img := resolveImage(t, etcdImage)
	nw, err := tcnetwork.New(t.Context())
	if err != nil {
		t.Fatalf("network: %v", err)
	}
	t.Cleanup(func() { nw.Remove(context.Background()) })
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("etcd%d=http://etcd%d:2380", i, i))
	}
	servers := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		name := fmt.Sprintf("etcd%d", i)
		sp := spec{
			image: img, env: EtcdImageEnv, port: "2379", ready: etcdReady, bridged: true,
			extra: []testcontainers.ContainerCustomizer{
				tcnetwork.WithNetwork([]string{name}, nw),
				// WAL fsyncs are slow on the vfs storage driver.
				testcontainers.WithTmpfs(map[string]string{"/tmp/etcd-data": "rw"}),
			},
			cmd: func(string) []string {
				return []string{"etcd", "--name=" + name, "--data-dir=/tmp/etcd-data",
					"--listen-client-urls=http://0.0.0.0:2379",
					"--advertise-client-urls=http://" + name + ":2379",
					"--listen-peer-urls=http://0.0.0.0:2380",
					"--initial-advertise-peer-urls=http://" + name + ":2380",
					"--initial-cluster=" + strings.Join(initial, ","),
					"--initial-cluster-state=new", "--initial-cluster-token=xsync-test"}
			},
		}
		wg.Go(func() { servers[i], errs[i] = start(t, sp) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return servers
}

// EtcdClient returns a client of the given servers, closed when the test
// ends.
func EtcdClient(t testing.TB, servers ...*Server) *clientv3.Client {
	t.Helper()
	var eps []string
	for _, s := range servers {
		eps = append(eps, s.Endpoint())
	}
	return EtcdClientAt(t, eps...)
}

// EtcdClientAt is EtcdClient for any endpoints (a [Proxy]'s, say).
func EtcdClientAt(t testing.TB, eps ...string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:            eps,
		DialTimeout:          2 * time.Second,
		DialKeepAliveTime:    time.Second,
		DialKeepAliveTimeout: time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Logs returns the container's log so far (for debugging a test).
func (s *Server) Logs() (string, error) {
	rc, err := s.ctr.Logs(context.Background())
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}
