package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	xredis "github.com/xsync-go/xsync/backend/redis"
	"github.com/xsync-go/xsync/conformance"
	"github.com/xsync-go/xsync/internal/itest"
	"github.com/xsync-go/xsync/internal/pubsub"
)

// openURL opens u and registers it under a name of the test's own.
func openURL(t *testing.T, s *itest.Secrets, u string) string {
	t.Helper()
	l, closer, err := xsync.Open(t.Context(), u)
	require.NoError(t, s.See(err))
	t.Cleanup(func() { closer.Close() })
	name := fmt.Sprintf("redis-sec-%d:%s", prefixes.Add(1), t.Name())
	t.Cleanup(xsync.Swap(name, l))
	return name
}

// lockWorks takes and releases a lock through name.
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

// TLS with verification on: a server certificate from the CA given works;
// one from another CA is refused, never silently accepted.
func TestTLS(t *testing.T) {
	ca, other := itest.NewCA(t, "xsync test CA"), itest.NewCA(t, "another CA")
	srv := itest.StartRedisTLS(t, ca, false)
	s := itest.NewSecrets(t)
	lockWorks(t, s, openURL(t, s, "rediss://"+srv.Endpoint()+"?ca_file="+ca.CertFile()))
	lockFails(t, s, openURL(t, s, "rediss://"+srv.Endpoint()+"?ca_file="+other.CertFile()), "certificate signed by unknown authority")
	lockFails(t, s, openURL(t, s, "rediss://"+srv.Endpoint()), "certificate") // the system's roots do not know the test CA
	// skip_verify: named as such, documented as unsafe; it connects.
	lockWorks(t, s, openURL(t, s, "rediss://"+srv.Endpoint()+"?skip_verify=true"))
	// A client built in code, as the package doc shows.
	c := goredis.NewClient(&goredis.Options{Addr: srv.Endpoint(), TLSConfig: ca.ClientTLS(t, "", ""), ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	name := "redis-tls-client:" + t.Name()
	t.Cleanup(xsync.Swap(name, xredis.New(c)))
	lockWorks(t, s, name)
}

// Mutual TLS: the server requires a client certificate from its CA.
func TestMutualTLS(t *testing.T) {
	ca := itest.NewCA(t, "xsync test CA")
	srv := itest.StartRedisTLS(t, ca, true)
	cert, key := ca.Issue(t, "client", true)
	s := itest.NewSecrets(t)
	lockWorks(t, s, openURL(t, s, "rediss://"+srv.Endpoint()+"?ca_file="+ca.CertFile()+"&cert_file="+cert+"&key_file="+key))
	nocert := openURL(t, s, "rediss://"+srv.Endpoint()+"?ca_file="+ca.CertFile())
	_, err := xsync.Lock(t.Context(), nocert, "k", 5)
	require.Error(t, s.See(err), "without a client certificate the server refuses")
	assert.False(t, errors.Is(err, xsync.ErrMissingLock) || errors.Is(err, xsync.ErrInvalid), "err = %v", err)
}

// requirepass: the right password works; a wrong one is a clear error
// that never shows either password.
func TestPassword(t *testing.T) {
	const pw, wrong = "s3cret-Pa55", "wr0ng-Pa55"
	srv := itest.StartRedisAuth(t, pw)
	s := itest.NewSecrets(t, pw, wrong)
	lockWorks(t, s, openURL(t, s, "redis://:"+pw+"@"+srv.Endpoint()))
	lockFails(t, s, openURL(t, s, "redis://:"+wrong+"@"+srv.Endpoint()), "WRONGPASS")
	lockFails(t, s, openURL(t, s, "redis://"+srv.Endpoint()), "NOAUTH")
	_, _, err := xsync.Open(t.Context(), "redis://:"+pw+"@"+srv.Endpoint()+"?bogus=1")
	require.Error(t, s.See(err))
	assert.ErrorIs(t, err, xsync.ErrInvalid)
}

// aclUser creates a user restricted by ACLRules(prefix).
func aclUser(t *testing.T, admin *goredis.Client, user, pw, prefix string) {
	t.Helper()
	args := []any{"ACL", "SETUSER", user, "on", ">" + pw, "resetkeys", "resetchannels"}
	for _, r := range strings.Fields(xredis.ACLRules(prefix)) {
		args = append(args, r)
	}
	require.NoError(t, admin.Do(t.Context(), args...).Err())
}

// The least-privileged user of ACLRules passes the whole conformance
// suite; a user restricted to another prefix can neither take nor release
// locks under this one.
func TestLeastPrivilegeACL(t *testing.T) {
	const adminPW, pw, otherPW = "admin-Pa55", "locker-Pa55", "other-Pa55"
	srv := itest.StartRedisAuth(t, adminPW)
	admin := itest.RedisClientAt(t, srv.Endpoint(), &goredis.Options{Password: adminPW})
	aclUser(t, admin, "locker", pw, "app1:")
	aclUser(t, admin, "other", otherPW, "app2:")
	t.Logf("ACL SETUSER locker on >*** resetkeys resetchannels %s", xredis.ACLRules("app1:"))
	client := func(t *testing.T, user, pw string) *goredis.Client {
		return itest.RedisClientAt(t, srv.Endpoint(), &goredis.Options{Username: user, Password: pw,
			ContextTimeoutEnabled: true, MaxRetries: -1})
	}
	t.Run("conformance", func(t *testing.T) {
		conformance.Run(t, func(t *testing.T) conformance.Harness {
			return &aclHarness{admin: admin, prefix: "app1:" + newPrefix(), client: func(t *testing.T) *goredis.Client { return client(t, "locker", pw) }}
		})
	})
	t.Run("other prefix", func(t *testing.T) {
		s := itest.NewSecrets(t, adminPW, pw, otherPW)
		mine := xredis.New(client(t, "locker", pw), xredis.WithPrefix("app1:"))
		theirs := xredis.New(client(t, "other", otherPW), xredis.WithPrefix("app1:")) // tries app1's keys
		tok, err := mine.Acquire(t.Context(), "k", 10_000_000_000)
		require.NoError(t, s.See(err))
		require.Positive(t, tok)
		got, err := theirs.Acquire(t.Context(), "k", 10_000_000_000)
		s.See(err)
		assert.Zero(t, got)
		assert.ErrorContains(t, err, "NOPERM")
		ok, err := theirs.Release(t.Context(), "k", tok)
		s.See(err)
		assert.False(t, ok)
		assert.ErrorContains(t, err, "NOPERM")
		ok, err = mine.Release(t.Context(), "k", tok)
		require.NoError(t, s.See(err))
		assert.True(t, ok, "the lock was still there: the other user released nothing")
	})
	t.Run("list needs +scan", func(t *testing.T) {
		const prefix = "app1:list-test:" // nothing else of the test's is under it
		mine := xsync.NewClient(xredis.New(client(t, "locker", pw), xredis.WithPrefix(prefix)))
		lease, err := mine.Acquire(t.Context(), "listed")
		require.NoError(t, err)
		defer lease.Release(t.Context())
		_, _, err = mine.List(t.Context(), "", "", 10)
		require.ErrorIs(t, err, errors.ErrUnsupported, "a lock user may not SCAN")
		assert.ErrorContains(t, err, "+scan")
		aclUser(t, admin, "operator", pw, "app1:")
		require.NoError(t, admin.Do(t.Context(), "ACL", "SETUSER", "operator", "+scan").Err())
		op := xsync.NewClient(xredis.New(client(t, "operator", pw), xredis.WithPrefix(prefix)))
		locks, next, err := op.List(t.Context(), "", "", 10)
		require.NoError(t, err)
		assert.Empty(t, next)
		require.Len(t, locks, 1)
		assert.Equal(t, "listed", locks[0].Key)
		assert.Equal(t, lease.Token(), locks[0].Token)
	})
}

type aclHarness struct {
	admin  *goredis.Client
	prefix string
	client func(t *testing.T) *goredis.Client
}

func (h *aclHarness) Locker(t *testing.T) backend.Locker {
	return xredis.New(h.client(t), xredis.WithPrefix(h.prefix), xredis.WithFenceIdle(testIdle))
}

func (h *aclHarness) Limits() conformance.Limits {
	return conformance.Limits{SizeSettle: testIdle + 250_000_000, IgnoreGoroutines: pubsub.IdleGoroutines, FIFO: true}
}

func (h *aclHarness) Size(t *testing.T) int { return countKeys(t, h.admin, h.prefix) }
