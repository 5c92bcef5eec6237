package redlock_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/internal/itest"
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
