package postgres_test

import (
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync/backend"
	xpg "github.com/xsync-go/xsync/backend/postgres"
	"github.com/xsync-go/xsync/conformance/history"
	"github.com/xsync-go/xsync/internal/itest"
)

// TestHistory records and checks histories on PostgreSQL under each fault
// the package documentation describes, and asserts what it promises under
// every one of them: mutual exclusion within validity, growing tokens and
// timely lost-lock signals. Failed acquisitions may leave a lock until its
// TTL (their undo may fail too).
//
//   - straight to the server: none, pause (SIGSTOP of the container,
//     longer than the TTL), kill -9 and restart (the table and the
//     sequence survive), network cut, pg_terminate_backend of every
//     connection of the Lockers, a frozen client link;
//   - through PgBouncer in transaction mode: PgBouncer killed and
//     restarted.
func TestHistory(t *testing.T) {
	srv, admin := startMigrated(t)
	up := func(t *testing.T) {
		require.Eventually(t, func() bool { return admin.Ping(t.Context()) == nil },
			60*time.Second, 50*time.Millisecond, "PostgreSQL did not come back")
	}
	var cut *history.Nemesis
	if os.Getenv(itest.NetworkEnv) != "host" {
		cut = &history.Nemesis{Name: "disconnect",
			Inject: func(*testing.T) { srv.Disconnect() },
			Heal:   func(t *testing.T) { srv.Connect(); up(t) }}
	}
	terminate := &history.Nemesis{Name: "terminate-backend",
		Inject: func(t *testing.T) {
			_, err := admin.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'xsync-history'`)
			require.NoError(t, err)
		},
		Heal: func(*testing.T) {}, Length: time.Millisecond}
	faulty := history.Expect{MayOrphan: true}
	h := &historyHarness{harness: harness{srv: srv, admin: admin}}
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
			Length: time.Millisecond}},
		{name: "disconnect", n: cut},
		{name: "terminate-backend", n: terminate},
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
			h.prefix = newPrefix()
			history.Run(t, h, history.Options{
				Name: "postgres/" + c.name, Kinds: history.AllKinds, Nemesis: c.n, Expect: e,
			})
		})
	}

	t.Run("pgbouncer-restart", func(t *testing.T) {
		bouncer := itest.StartPgBouncer(t, srv, 4, "postgres", itest.PostgresPassword)
		bh := &historyHarness{harness: harness{srv: srv, admin: admin, prefix: newPrefix()}, bouncer: bouncer}
		n := &history.Nemesis{Name: "pgbouncer-restart",
			Inject: func(*testing.T) { bouncer.Kill() },
			Heal: func(t *testing.T) {
				bouncer.Start()
				p := pool(t, bouncer.URL("postgres", itest.PostgresPassword, bouncerQuery))
				require.Eventually(t, func() bool { return p.Ping(t.Context()) == nil },
					60*time.Second, 50*time.Millisecond, "PgBouncer did not come back")
			},
			Length: time.Millisecond}
		history.Run(t, bh, history.Options{
			Name: "postgres/pgbouncer-restart", Kinds: history.AllKinds, Nemesis: n, Expect: faulty,
		})
	})
}

// historyHarness gives Lockers whose connections are named, so that a
// nemesis can terminate them; through PgBouncer if bouncer is set (with
// LISTEN straight to the server).
type historyHarness struct {
	harness
	bouncer *itest.PgBouncer
}

func (h *historyHarness) Locker(t *testing.T) backend.Locker {
	if h.bouncer == nil {
		return newLocker(t, h.srv.AdminURL("application_name=xsync-history"), xpg.WithPrefix(h.prefix))
	}
	cfg, err := pgx.ParseConfig(h.srv.AdminURL())
	require.NoError(t, err)
	return newLocker(t, h.bouncer.URL("postgres", itest.PostgresPassword, bouncerQuery, "application_name=xsync-history"),
		xpg.WithPrefix(h.prefix), xpg.WithListenConfig(cfg))
}
