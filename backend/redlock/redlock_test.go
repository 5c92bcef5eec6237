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
	prefixOf := map[backend.Locker]string{}
	conformance.Run(t, func(t *testing.T) backend.Locker {
		p := newPrefix()
		l := redlock.New(clients(t, nodes), redlock.WithPrefix(p), redlock.WithNodeTimeout(conformanceNodeTimeout))
		prefixOf[l] = p
		return l
	}, conformance.Options{
		Peer: func(t *testing.T, l backend.Locker) backend.Locker {
			return redlock.New(clients(t, nodes), redlock.WithPrefix(prefixOf[l]), redlock.WithNodeTimeout(conformanceNodeTimeout))
		},
		NotFencing: true,
		SplitVote:  true,
		Faulty: func(t *testing.T, l backend.Locker) (backend.Locker, conformance.Fault) {
			var f faults
			var cs []goredis.UniversalClient
			for _, n := range nodes {
				p := itest.NewProxy(t, n.Endpoint())
				f = append(f, p)
				cs = append(cs, itest.RedisClientAt(t, p.Addr(), nil))
			}
			return redlock.New(cs, redlock.WithPrefix(prefixOf[l]), redlock.WithNodeTimeout(conformanceNodeTimeout)), f
		},
		Size: func(t *testing.T, l backend.Locker) int {
			total := 0
			for _, n := range nodes {
				keys, err := itest.RedisClient(t, n).Keys(t.Context(), prefixOf[l]+"*").Result()
				if err != nil {
					t.Fatal(err)
				}
				total += len(keys)
			}
			return total
		},
	})
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
