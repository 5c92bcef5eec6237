package redlock_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/backend/redlock"
	"github.com/xsync-go/xsync/conformance"
	"github.com/xsync-go/xsync/internal/itest"
	"github.com/xsync-go/xsync/internal/pubsub"
)

func TestMain(m *testing.M) { itest.Main(m) }

var prefixes atomic.Int64

func newPrefix() string { return fmt.Sprintf("xsync-redlock-test-%d:", prefixes.Add(1)) }

// clients returns one client per node, honouring contexts.
func clients(t testing.TB, nodes []*itest.Server) []goredis.UniversalClient {
	out := make([]goredis.UniversalClient, len(nodes))
	for i, n := range nodes {
		out[i] = itest.RedisClient(t, n)
	}
	return out
}

// conformanceNodeTimeout replaces the 50ms default in the suite: under the
// race detector, 16 goroutines dialling 5 nodes at once through
// docker-proxy on 2 cores need more. The fault tests use the default.
const conformanceNodeTimeout = time.Second

func runConformance(t *testing.T, n int) {
	nodes := itest.StartRedisN(t, n)
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		return &harness{nodes: nodes, prefix: newPrefix()}
	})
}

// harness is one subtest's namespace (a key prefix) on the shared nodes.
type harness struct {
	nodes  []*itest.Server
	prefix string
}

func (h *harness) Locker(t *testing.T) backend.Locker {
	return redlock.New(clients(t, h.nodes), redlock.WithPrefix(h.prefix), redlock.WithNodeTimeout(conformanceNodeTimeout))
}

func (h *harness) Limits() conformance.Limits {
	return conformance.Limits{NotFencing: true, SplitVote: true, IgnoreGoroutines: pubsub.IdleGoroutines, NoOwner: true}
}

func (h *harness) Size(t *testing.T) int {
	total := 0
	for _, n := range h.nodes {
		keys, err := itest.RedisClient(t, n).Keys(t.Context(), h.prefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		total += len(keys)
	}
	return total
}

func (h *harness) Faulty(t *testing.T) (backend.Locker, conformance.Fault) {
	var f faults
	var cs []goredis.UniversalClient
	for _, n := range h.nodes {
		p := itest.NewProxy(t, n.Endpoint())
		f = append(f, p)
		cs = append(cs, itest.RedisClientAt(t, p.Addr(), nil))
	}
	return redlock.New(cs, redlock.WithPrefix(h.prefix), redlock.WithNodeTimeout(conformanceNodeTimeout)), f
}

// faults breaks the links to every node at once.
type faults []*itest.Proxy

func (f faults) Delay(d time.Duration) {
	for _, p := range f {
		p.Delay(d)
	}
}

func (f faults) Down() {
	for _, p := range f {
		p.Down()
	}
}

func (f faults) Heal() {
	for _, p := range f {
		p.Heal()
	}
}

func TestConformance5(t *testing.T) { runConformance(t, 5) }
func TestConformance3(t *testing.T) { runConformance(t, 3) }
