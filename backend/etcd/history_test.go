package etcd_test

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync/backend"
	xetcd "github.com/xsync-go/xsync/backend/etcd"
	"github.com/xsync-go/xsync/conformance"
	"github.com/xsync-go/xsync/conformance/history"
	"github.com/xsync-go/xsync/internal/itest"
)

// TestHistory records and checks histories on etcd under each fault the
// package documentation describes, and asserts what it promises under
// every one of them: mutual exclusion within validity, growing tokens and
// timely lost-lock signals. Failed acquisitions may leave a lock until
// its lease expires.
//
//   - one member: none, pause (longer than the TTL), kill -9 and restart
//     (the data survives: etcd persists), network cut, frozen client link;
//   - three members: the leader isolated from the others and the clients.
func TestHistory(t *testing.T) {
	// A member that becomes leader extends every lease by its election
	// timeout (the servers run with etcd's default), as the package doc
	// says: after a restart or a leader's isolation, what lived through
	// the fault may live that much longer than its TTL.
	const electionTimeout = time.Second
	srv := itest.StartEtcd(t)
	admin := itest.EtcdClient(t, srv)
	up := func(t *testing.T) {
		require.Eventually(t, func() bool { _, err := admin.Get(t.Context(), "up"); return err == nil },
			30*time.Second, 50*time.Millisecond, "etcd did not come back")
	}
	var cut *history.Nemesis
	if os.Getenv(itest.NetworkEnv) != "host" {
		cut = &history.Nemesis{Name: "disconnect",
			Inject: func(*testing.T) { srv.Disconnect() },
			Heal:   func(t *testing.T) { srv.Connect(); up(t) }}
	}
	faulty := history.Expect{MayOrphan: true}
	for _, c := range []struct {
		name string
		n    *history.Nemesis
	}{
		{name: "none"},
		{name: "pause", n: &history.Nemesis{Name: "pause",
			Inject: func(*testing.T) { srv.Pause() },
			Heal:   func(*testing.T) { srv.Unpause() }}},
		{name: "restart", n: &history.Nemesis{Name: "restart",
			Inject: func(*testing.T) { srv.Kill() },
			Heal:   func(t *testing.T) { srv.Start(); up(t) },
			Length: time.Millisecond, Renews: electionTimeout}},
		{name: "disconnect", n: cut},
		{name: "freeze-client", n: history.FreezeClient(3 * time.Second)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name != "none" && c.n == nil {
				t.Skip("this fault cannot be injected here")
			}
			var e history.Expect
			if c.n != nil {
				e = faulty
			}
			history.Run(t, &harness{srv: srv, admin: admin, prefix: newPrefix()}, history.Options{
				Name: "etcd/" + c.name, Kinds: history.AllKinds, Nemesis: c.n, Expect: e,
			})
		})
	}

	t.Run("isolate-leader", func(t *testing.T) {
		if os.Getenv(itest.NetworkEnv) == "host" {
			t.Skip("cluster members cannot be cut off on the host network")
		}
		members := itest.StartEtcdCluster(t, 3)
		cadmin := itest.EtcdClient(t, members...)
		var old *itest.Server
		n := &history.Nemesis{Name: "isolate-leader",
			Inject: func(t *testing.T) {
				old = members[leader(t, cadmin, members)]
				old.Disconnect()
			},
			Heal: func(*testing.T) { old.Connect() }, Renews: electionTimeout}
		history.Run(t, &clusterHarness{members: members, prefix: newPrefix()}, history.Options{
			Name: "etcd/isolate-leader", Kinds: history.AllKinds, Nemesis: n, Expect: faulty,
		})
	})
}

// clusterHarness gives clients of every member of a cluster.
type clusterHarness struct {
	members []*itest.Server
	prefix  string
}

func (h *clusterHarness) Locker(t *testing.T) backend.Locker {
	return xetcd.New(itest.EtcdClient(t, h.members...), xetcd.WithPrefix(h.prefix))
}

func (h *clusterHarness) Limits() conformance.Limits {
	return conformance.Limits{MinTTL: xetcd.MinTTL, ExpiryTolerance: time.Second, FIFO: true, IgnoreGoroutines: xetcd.IdleGoroutines}
}
