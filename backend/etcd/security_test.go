package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	xetcd "github.com/xsync-go/xsync/backend/etcd"
	"github.com/xsync-go/xsync/conformance"
	"github.com/xsync-go/xsync/internal/itest"
)

var names atomic.Int64

func openURL(t *testing.T, s *itest.Secrets, u string) string {
	t.Helper()
	l, closer, err := xsync.Open(t.Context(), u)
	require.NoError(t, s.See(err))
	t.Cleanup(func() { closer.Close() })
	name := fmt.Sprintf("etcd-sec-%d:%s", names.Add(1), t.Name())
	t.Cleanup(xsync.Swap(name, l))
	return name
}

func lockWorks(t *testing.T, s *itest.Secrets, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	item, err := xsync.Lock(ctx, name, "k", 5)
	require.NoError(t, s.See(err))
	require.True(t, item.HasLock())
	ok, err := item.Unlock(ctx, name, "k")
	require.NoError(t, s.See(err))
	require.True(t, ok)
}

func lockFails(t *testing.T, s *itest.Secrets, name, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	item, err := xsync.Lock(ctx, name, "k", 5)
	s.See(err)
	require.Error(t, err)
	assert.Zero(t, item)
	assert.False(t, errors.Is(err, xsync.ErrMissingLock) || errors.Is(err, xsync.ErrInvalid), "err = %v", err)
	if want != "" {
		assert.Contains(t, err.Error(), want)
	}
}

func TestTLS(t *testing.T) {
	ca, other := itest.NewCA(t, "xsync test CA"), itest.NewCA(t, "another CA")
	srv := itest.StartEtcdTLS(t, ca, false)
	s := itest.NewSecrets(t)
	lockWorks(t, s, openURL(t, s, "etcd://"+srv.Endpoint()+"?tls=true&ca_file="+ca.CertFile()))
	// A server certificate from another CA: the handshake fails, and the
	// call ends by its context with the client's reason.
	lockFails(t, s, openURL(t, s, "etcd://"+srv.Endpoint()+"?tls=true&ca_file="+other.CertFile()+"&dial_timeout=1s"), "certificate signed by unknown authority")
	lockWorks(t, s, openURL(t, s, "etcd://"+srv.Endpoint()+"?tls=true&skip_verify=true"))
}

func TestMutualTLS(t *testing.T) {
	ca := itest.NewCA(t, "xsync test CA")
	srv := itest.StartEtcdTLS(t, ca, true)
	cert, key := ca.Issue(t, "client", true)
	s := itest.NewSecrets(t)
	lockWorks(t, s, openURL(t, s, "etcd://"+srv.Endpoint()+"?tls=true&ca_file="+ca.CertFile()+"&cert_file="+cert+"&key_file="+key))
	lockFails(t, s, openURL(t, s, "etcd://"+srv.Endpoint()+"?tls=true&ca_file="+ca.CertFile()+"&dial_timeout=1s"), "certificate required")
}

// enableAuth turns authentication on with a root user and a lock user whose
// role (xetcd.RoleCommands shows it) reads and writes its prefix only.
func enableAuth(t *testing.T, c *clientv3.Client, rootPW string, users map[string][2]string) {
	t.Helper()
	ctx := t.Context()
	_, err := c.RoleAdd(ctx, "root")
	require.NoError(t, err)
	_, err = c.UserAdd(ctx, "root", rootPW)
	require.NoError(t, err)
	_, err = c.UserGrantRole(ctx, "root", "root")
	require.NoError(t, err)
	for user, v := range users {
		pw, prefix := v[0], v[1]
		role := "xsync-" + user
		_, err = c.RoleAdd(ctx, role)
		require.NoError(t, err)
		_, err = c.RoleGrantPermission(ctx, role, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
		require.NoError(t, err)
		_, err = c.UserAdd(ctx, user, pw)
		require.NoError(t, err)
		_, err = c.UserGrantRole(ctx, user, role)
		require.NoError(t, err)
	}
	_, err = c.AuthEnable(ctx)
	require.NoError(t, err)
}

func userClient(t *testing.T, srv *itest.Server, user, pw string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint()}, Username: user, Password: pw,
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// With authentication on, a user whose role reads and writes only its
// prefix passes the whole conformance suite; a user of another prefix can
// neither take nor release locks under it; a wrong password is a clear
// error that shows no password.
func TestAuthLeastPrivilege(t *testing.T) {
	const rootPW, pw, otherPW, wrong = "root-Pa55", "locker-Pa55", "other-Pa55", "wr0ng-Pa55"
	srv := itest.StartEtcd(t)
	enableAuth(t, itest.EtcdClient(t, srv), rootPW, map[string][2]string{
		"locker": {pw, "app1/"},
		"other":  {otherPW, "app2/"},
	})
	root := userClient(t, srv, "root", rootPW)
	t.Run("conformance", func(t *testing.T) {
		conformance.Run(t, func(t *testing.T) conformance.Harness {
			return &authHarness{srv: srv, root: root, pw: pw, prefix: "app1/" + newPrefix()}
		})
	})
	t.Run("other prefix", func(t *testing.T) {
		s := itest.NewSecrets(t, rootPW, pw, otherPW)
		mine := xetcd.New(userClient(t, srv, "locker", pw), xetcd.WithPrefix("app1/"))
		theirs := xetcd.New(userClient(t, srv, "other", otherPW), xetcd.WithPrefix("app1/"))
		tok, err := mine.Acquire(t.Context(), "k", 5*time.Second)
		require.NoError(t, s.See(err))
		require.Positive(t, tok)
		got, err := theirs.Acquire(t.Context(), "k", 5*time.Second)
		s.See(err)
		assert.Zero(t, got)
		assert.ErrorContains(t, err, "permission denied")
		ok, err := theirs.Release(t.Context(), "k", tok)
		s.See(err)
		assert.False(t, ok)
		assert.ErrorContains(t, err, "permission denied")
		ok, err = mine.Release(t.Context(), "k", tok)
		require.NoError(t, s.See(err))
		assert.True(t, ok, "the other user released nothing")
	})
	t.Run("wrong password", func(t *testing.T) {
		s := itest.NewSecrets(t, rootPW, pw, otherPW, wrong)
		lockFails(t, s, openURL(t, s, "etcd://locker:"+wrong+"@"+srv.Endpoint()+"?prefix=app1/"), "authentication failed")
		lockWorks(t, s, openURL(t, s, "etcd://locker:"+pw+"@"+srv.Endpoint()+"?prefix=app1/"))
	})
}

type authHarness struct {
	srv    *itest.Server
	root   *clientv3.Client
	pw     string
	prefix string
}

func (h *authHarness) Locker(t *testing.T) backend.Locker {
	return xetcd.New(userClient(t, h.srv, "locker", h.pw), xetcd.WithPrefix(h.prefix))
}

func (h *authHarness) Limits() conformance.Limits {
	return conformance.Limits{MinTTL: xetcd.MinTTL, ExpiryTolerance: time.Second, FIFO: true, IgnoreGoroutines: xetcd.IdleGoroutines}
}

func (h *authHarness) Size(t *testing.T) int {
	keys, err := h.root.Get(context.Background(), h.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return int(keys.Count)
}
