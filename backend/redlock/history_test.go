package redlock_test

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync/conformance/history"
	"github.com/xsync-go/xsync/internal/itest"
)

// TestHistory records and checks histories on three Redlock nodes under
// each fault the package documentation describes, and asserts what it
// promises. Redlock's tokens do not fence, so stale writes by stalled
// holders are counted, not failed.
//
//   - none; pause, cut or restart one node (a minority; the restarted node
//     is always the same one, so no holder loses its majority to it); pause
//     or cut two (a majority: no quorum, nothing is granted); a frozen
//     client link: mutual exclusion within validity, timely lost-lock
//     signals; failed acquisitions may leave votes until their TTL.
//   - restart two of three without persistence (kill -9, start at once):
//     the majority forgets held locks, so a second holder can win inside
//     the first one's validity. The run must show that overlap.
func TestHistory(t *testing.T) {
	nodes := itest.StartRedisN(t, 3)
	admins := clients(t, nodes)
	each := func(idx []int, f func(*itest.Server)) {
		var wg sync.WaitGroup
		for _, i := range idx {
			wg.Go(func() { f(nodes[i]) })
		}
		wg.Wait()
	}
	up := func(t *testing.T, idx []int) {
		for _, i := range idx {
			require.Eventually(t, func() bool { return admins[i].Ping(t.Context()).Err() == nil },
				30*time.Second, 20*time.Millisecond, "node %d did not come back", i)
		}
	}
	pause := func(name string, idx ...int) *history.Nemesis {
		return &history.Nemesis{Name: name,
			Inject: func(*testing.T) { each(idx, (*itest.Server).Pause) },
			Heal:   func(*testing.T) { each(idx, (*itest.Server).Unpause) }}
	}
	cut := func(name string, idx ...int) *history.Nemesis {
		if os.Getenv(itest.NetworkEnv) == "host" {
			return nil // a server on the host network cannot be cut off
		}
		return &history.Nemesis{Name: name,
			Inject: func(*testing.T) { each(idx, (*itest.Server).Disconnect) },
			Heal:   func(t *testing.T) { each(idx, (*itest.Server).Connect); up(t, idx) }}
	}
	restart := func(name string, length time.Duration, idx ...int) *history.Nemesis {
		return &history.Nemesis{Name: name,
			Inject: func(*testing.T) { each(idx, (*itest.Server).Kill) },
			Heal:   func(t *testing.T) { each(idx, (*itest.Server).Start); up(t, idx) },
			Length: length, Calm: 2 * time.Second}
	}
	faulty := history.Expect{MayOrphan: true}
	for _, c := range []struct {
		name   string
		n      *history.Nemesis
		expect history.Expect
		ttl    time.Duration
		// A cell whose weakness must show: more holders stall (one in
		// three, deaf to their context) so that some act across the fault,
		// for a few faults.
		stallEvery int
		dur        time.Duration
	}{
		{name: "none"},
		{name: "pause-minority", n: pause("pause-minority", 0), expect: faulty},
		{name: "pause-majority", n: pause("pause-majority", 0, 1), expect: faulty},
		{name: "cut-minority", n: cut("cut-minority", 0), expect: faulty},
		{name: "cut-majority", n: cut("cut-majority", 0, 1), expect: faulty},
		{name: "restart-minority", n: restart("restart-minority", 2*time.Second, 0), expect: faulty},
		{name: "restart-majority", n: restart("restart-majority", time.Millisecond, 0, 1), ttl: 3 * time.Second,
			expect:     history.Expect{MustOverlap: true, MayOrphan: true},
			stallEvery: 3, dur: 12 * time.Second},
		{name: "freeze-client", n: history.FreezeClient(3 * time.Second), expect: faulty},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name != "none" && c.n == nil {
				t.Skip("this fault cannot be injected here")
			}
			history.Run(t, &harness{nodes: nodes, prefix: newPrefix()}, history.Options{
				Name: "redlock/" + c.name, Kinds: []history.Kind{history.KindMutex, history.KindElection}, Nemesis: c.n, Expect: c.expect, TTL: c.ttl, StallEvery: c.stallEvery, Duration: c.dur,
			})
		})
	}
}
