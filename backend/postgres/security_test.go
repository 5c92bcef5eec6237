package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/xsync-go/xsync"

	xpg "github.com/xsync-go/xsync/backend/postgres"
	"github.com/xsync-go/xsync/internal/itest"
)

// openURL opens u and registers it under a name of the test's own.
func openURL(t *testing.T, s *itest.Secrets, u string) string {
	t.Helper()
	l, closer, err := xsync.Open(t.Context(), u)
	require.NoError(t, s.See(err))
	t.Cleanup(func() { closer.Close() })
	name := fmt.Sprintf("pg-sec-%d:%s", prefixes.Add(1), t.Name())
	t.Cleanup(xsync.Swap(name, l))
	return name
}

// lockWorks takes and releases a lock through name, and pings.
func lockWorks(t *testing.T, s *itest.Secrets, name string) {
	t.Helper()
	item, err := xsync.Lock(t.Context(), name, "k", 5)
	require.NoError(t, s.See(err))
	require.True(t, item.HasLock())
	ok, err := item.Unlock(t.Context(), name, "k")
	require.NoError(t, s.See(err))
	require.True(t, ok)
	require.NoError(t, s.See(xsync.Ping(t.Context(), name)))
}

// lockFails checks that locking through name fails with a clear error that
// is neither contention nor bad input, and that contains want.
func lockFails(t *testing.T, s *itest.Secrets, name, want string) {
	t.Helper()
	item, err := xsync.Lock(t.Context(), name, "k", 5)
	s.See(err)
	require.Error(t, err)
	assert.Zero(t, item)
	assert.False(t, errors.Is(err, xsync.ErrMissingLock) || errors.Is(err, xsync.ErrInvalid), "err = %v", err)
	assert.Contains(t, err.Error(), want)
	err = xsync.New(name, "k").Run(t.Context(), func(context.Context) error { return nil })
	s.See(err)
	require.Error(t, err)
	assert.False(t, xsync.IsMissingLockErr(err), "a refused connection is not contention: %v", err)
}

// TLS with sslmode=verify-full and the test's CA works; a client that
// trusts another CA is refused with a clear error.
func testTLSVerifyFull(t *testing.T, srv *itest.Postgres, ca *itest.CA) {
	s := itest.NewSecrets(t, itest.PostgresPassword, url.QueryEscape(itest.PostgresPassword))
	lockWorks(t, s, openURL(t, s, srv.AdminURL("sslmode=verify-full", "sslrootcert="+ca.CertFile())))
	// localhost is in the certificate too.
	lockWorks(t, s, openURL(t, s, itest.PostgresURLAt("localhost:"+port(srv.Endpoint()), "postgres", itest.PostgresPassword,
		"sslmode=verify-full", "sslrootcert="+ca.CertFile())))

	other := itest.NewCA(t, "another-ca")
	lockFails(t, s, openURL(t, s, srv.AdminURL("sslmode=verify-full", "sslrootcert="+other.CertFile())), "certificate")
}

func port(hostport string) string {
	for i := len(hostport) - 1; i >= 0; i-- {
		if hostport[i] == ':' {
			return hostport[i+1:]
		}
	}
	return hostport
}

// SCRAM: the right password works, a wrong one fails clearly, and neither
// shows in any error.
func testPasswordSCRAM(t *testing.T, srv *itest.Postgres, admin *pgxpool.Pool) {
	_, err := admin.Exec(t.Context(), `CREATE ROLE scram_user LOGIN PASSWORD 'Correct-Horse-9'`)
	require.NoError(t, err)
	_, err = admin.Exec(t.Context(), `GRANT SELECT, INSERT, UPDATE, DELETE ON xsync_locks TO scram_user; GRANT USAGE ON SEQUENCE xsync_locks_token TO scram_user`)
	require.NoError(t, err)
	var method string
	require.NoError(t, admin.QueryRow(t.Context(), `SELECT left(rolpassword, 13) FROM pg_authid WHERE rolname = 'scram_user'`).Scan(&method))
	assert.Equal(t, "SCRAM-SHA-256", method, "the password is stored as a SCRAM verifier")
	s := itest.NewSecrets(t, "Correct-Horse-9", "Wrong-Battery-7")
	lockWorks(t, s, openURL(t, s, srv.URL("scram_user", "Correct-Horse-9")))
	lockFails(t, s, openURL(t, s, srv.URL("scram_user", "Wrong-Battery-7")), "password authentication failed")
	// A URL that pgx cannot parse does not show its password either.
	_, _, err = xsync.Open(t.Context(), srv.URL("scram_user", "Correct-Horse-9", "connect_timeout=soon"))
	s.See(err)
	require.Error(t, err)
}

// A role with only the documented grants (SELECT, INSERT, UPDATE, DELETE
// on the table, USAGE on the sequence) can use every kind and ability; it
// cannot run DDL, and the Locker never needs to.
func testLeastPrivilegeRole(t *testing.T, srv *itest.Postgres, admin *pgxpool.Pool) {
	ctx := t.Context()
	for _, q := range []string{
		`CREATE ROLE xsync_app LOGIN PASSWORD 'app-secret-1'`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON xsync_locks TO xsync_app`,
		`GRANT USAGE ON SEQUENCE xsync_locks_token TO xsync_app`,
	} {
		_, err := admin.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	s := itest.NewSecrets(t, "app-secret-1")
	p := pool(t, srv.URL("xsync_app", "app-secret-1"))
	l := xpg.New(p, xpg.WithPrefix(newPrefix()))
	t.Cleanup(func() { l.Close() })
	c := xsync.NewClient(l)
	opt := xsync.WithTTL(5 * time.Second)

	m, err := c.Acquire(ctx, "m", opt)
	require.NoError(t, s.See(err))
	// A waiter (LISTEN) is woken by the release (NOTIFY).
	waited := make(chan error, 1)
	go func() {
		w, err := c.Acquire(ctx, "m", opt, xsync.WithWait(10*time.Second))
		if err == nil {
			_, err = w.Release(ctx)
		}
		waited <- err
	}()
	require.NoError(t, s.See(m.Extend(ctx, 5*time.Second)))
	info, err := c.Inspect(ctx, "m")
	require.NoError(t, s.See(err))
	require.Len(t, info.Holders, 1)
	_, err = m.Release(ctx)
	require.NoError(t, s.See(err))
	require.NoError(t, s.See(<-waited))
	// The sweeper's table lock needs no more than the grants.
	_, err = xpg.SweepNow(ctx, l)
	require.NoError(t, s.See(err))

	sem, err := c.Semaphore("s", 2).Acquire(ctx, opt)
	require.NoError(t, s.See(err))
	_, err = sem.Release(ctx)
	require.NoError(t, s.See(err))
	rd, err := c.RWLock("rw").AcquireRead(ctx, opt)
	require.NoError(t, s.See(err))
	_, err = rd.Release(ctx)
	require.NoError(t, s.See(err))
	wr, err := c.RWLock("rw").AcquireWrite(ctx, opt)
	require.NoError(t, s.See(err))
	_, err = wr.Release(ctx)
	require.NoError(t, s.See(err))
	ks, err := c.AcquireAll(ctx, []string{"a", "b"}, opt)
	require.NoError(t, s.See(err))
	_, err = ks.Release(ctx)
	require.NoError(t, s.See(err))
	term, err := c.Election("e").Campaign(ctx, opt, xsync.WithOwner("me"))
	require.NoError(t, s.See(err))
	_, err = term.Resign(ctx)
	require.NoError(t, s.See(err))
	_, _, err = c.List(ctx, "", "", 10)
	require.NoError(t, s.See(err))
	_, err = c.ForceRelease(ctx, "m")
	require.NoError(t, s.See(err))
	require.NoError(t, s.See(xsync.NewClient(l).Ping(ctx)))

	err = xpg.Migrate(ctx, p, xpg.WithTable("xsync_other"))
	s.See(err)
	require.Error(t, err, "the role cannot create tables")
	assert.Contains(t, err.Error(), "permission denied")
}
