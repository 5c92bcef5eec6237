package redlock_test

import (
	"errors"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/backend/redlock"
	"github.com/xsync-go/xsync/conformance"
	"github.com/xsync-go/xsync/internal/itest"
	"github.com/xsync-go/xsync/internal/pubsub"
)

// Redlock over three TLS nodes, verification on, through the URL; a CA
// that did not sign the nodes' certificates is refused with the TLS error,
// never reported as contention.
func TestTLS(t *testing.T) {
	ca, other := itest.NewCA(t, "xsync test CA"), itest.NewCA(t, "another CA")
	var addrs []string
	for range 3 {
		addrs = append(addrs, itest.StartRedisTLS(t, ca, false).Endpoint())
	}
	open := func(caFile string) string {
		l, closer, err := xsync.Open(t.Context(), "redlock://"+strings.Join(addrs, ",")+"?tls=true&ca_file="+caFile+"&node_timeout=1s")
		require.NoError(t, err)
		t.Cleanup(func() { closer.Close() })
		name := "redlock-tls-" + caFile + ":" + t.Name()
		t.Cleanup(xsync.Swap(name, l))
		return name
	}
	good := open(ca.CertFile())
	item, err := xsync.Lock(t.Context(), good, "k", 5)
	require.NoError(t, err)
	require.True(t, item.HasLock())
	ok, err := item.Unlock(t.Context(), good, "k")
	require.NoError(t, err)
	assert.True(t, ok)

	bad := open(other.CertFile())
	item, err = xsync.Lock(t.Context(), bad, "k", 5)
	require.Error(t, err)
	assert.Zero(t, item)
	assert.False(t, errors.Is(err, xsync.ErrMissingLock) || errors.Is(err, xsync.ErrInvalid), "err = %v", err)
	assert.Contains(t, err.Error(), "certificate signed by unknown authority")
	assert.NotContains(t, err.Error(), "PRIVATE KEY")
}

// The least-privileged user of ACLRules on every node passes the whole
// conformance suite.
func TestLeastPrivilegeACL(t *testing.T) {
	const adminPW, pw = "admin-Pa55", "locker-Pa55"
	var nodes []*itest.Server
	for range 3 {
		nodes = append(nodes, itest.StartRedisAuth(t, adminPW))
	}
	var admins []*goredis.Client
	for _, n := range nodes {
		admin := itest.RedisClientAt(t, n.Endpoint(), &goredis.Options{Password: adminPW})
		args := []any{"ACL", "SETUSER", "locker", "on", ">" + pw, "resetkeys", "resetchannels"}
		for _, r := range strings.Fields(redlock.ACLRules("app1:")) {
			args = append(args, r)
		}
		require.NoError(t, admin.Do(t.Context(), args...).Err())
		admins = append(admins, admin)
	}
	t.Logf("ACL SETUSER locker on >*** resetkeys resetchannels %s", redlock.ACLRules("app1:"))
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		return &aclHarness{nodes: nodes, admins: admins, pw: pw, prefix: "app1:" + newPrefix()}
	})
}

type aclHarness struct {
	nodes  []*itest.Server
	admins []*goredis.Client
	pw     string
	prefix string
}

func (h *aclHarness) Locker(t *testing.T) backend.Locker {
	var cs []goredis.UniversalClient
	for _, n := range h.nodes {
		cs = append(cs, itest.RedisClientAt(t, n.Endpoint(), &goredis.Options{Username: "locker", Password: h.pw,
			ContextTimeoutEnabled: true, MaxRetries: -1}))
	}
	return redlock.New(cs, redlock.WithPrefix(h.prefix), redlock.WithNodeTimeout(conformanceNodeTimeout))
}

func (h *aclHarness) Limits() conformance.Limits {
	return conformance.Limits{NotFencing: true, SplitVote: true, IgnoreGoroutines: pubsub.IdleGoroutines, NoOwner: true}
}

func (h *aclHarness) Size(t *testing.T) int {
	total := 0
	for _, a := range h.admins {
		keys, err := a.Keys(t.Context(), h.prefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		total += len(keys)
	}
	return total
}
