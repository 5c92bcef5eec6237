package redis_test

import (
	"os"
	"testing"
	"time"

	"github.com/xsync-go/xsync/conformance/history"
	"github.com/xsync-go/xsync/internal/itest"
)

// TestHistory records and checks histories on one Redis under each fault
// the package documentation describes, and asserts what it promises:
//
//   - none, pause (longer than the TTL), network cut, frozen client link:
//     mutual exclusion within validity, growing tokens, timely lost-lock
//     signals; failed acquisitions may leave a lock until its TTL.
//   - restart without persistence (kill -9, start at once): the server
//     forgets held locks, so a second holder can get a key inside the
//     first one's validity. The run must show that overlap, and fencing
//     must reject every stale write: tokens still grow across the restart.
func TestHistory(t *testing.T) {
	srv := itest.StartRedis(t)
	admin := itest.RedisClient(t, srv)
	cut := &history.Nemesis{Name: "disconnect",
		Inject: func(*testing.T) { srv.Disconnect() },
		Heal:   func(t *testing.T) { srv.Connect(); waitUp(t, admin) }}
	if os.Getenv(itest.NetworkEnv) == "host" {
		cut = nil // a server on the host network cannot be cut off
	}
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
		{name: "pause", n: &history.Nemesis{Name: "pause",
			Inject: func(*testing.T) { srv.Pause() },
			Heal:   func(*testing.T) { srv.Unpause() }},
			expect: history.Expect{MayOrphan: true}},
		{name: "restart", n: &history.Nemesis{Name: "restart",
			Inject: func(*testing.T) { srv.Kill() },
			Heal:   func(t *testing.T) { srv.Start(); waitUp(t, admin) },
			Length: time.Millisecond, Calm: 2 * time.Second},
			// A TTL that outlives the restart, so that holders are still
			// inside their validity when the server comes back empty.
			ttl:        3 * time.Second,
			expect:     history.Expect{MustOverlap: true, MayOrphan: true},
			stallEvery: 3, dur: 12 * time.Second},
		{name: "disconnect", n: cut, expect: history.Expect{MayOrphan: true}},
		{name: "freeze-client", n: history.FreezeClient(3 * time.Second), expect: history.Expect{MayOrphan: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name != "none" && c.n == nil {
				t.Skip("this fault cannot be injected here")
			}
			history.Run(t, &harness{srv: srv, prefix: newPrefix()}, history.Options{
				Name: "redis/" + c.name, Kinds: history.AllKinds, Nemesis: c.n, Expect: c.expect, TTL: c.ttl, StallEvery: c.stallEvery, Duration: c.dur,
			})
		})
	}
}
