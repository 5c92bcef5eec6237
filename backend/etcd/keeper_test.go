package etcd_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	xetcd "github.com/xsync-go/xsync/backend/etcd"
	"github.com/xsync-go/xsync/internal/itest"
)

// TestKeeper checks the Locker's lease keep-alive stream on one server: it
// closes when idle, a gone lease is reported as such, a broken stream
// closes and the next keep-alive opens a new one, and a keep-alive whose
// caller left (its place stays in line, for its answer to go to no one)
// does not disturb the next one. Which answer a keep-alive got cannot be
// seen from outside: both carry the same TTL.
func TestKeeper(t *testing.T) {
	defer xetcd.SetIdle(300 * time.Millisecond)()
	srv := itest.StartEtcd(t)
	c := itest.EtcdClient(t, srv)
	ctx := t.Context()
	locker := func(t *testing.T) *xetcd.Locker {
		t.Helper()
		return xetcd.New(c, xetcd.WithPrefix(newPrefix()))
	}
	up := func(t *testing.T) {
		require.Eventually(t, func() bool { _, err := c.Get(ctx, "up"); return err == nil },
			30*time.Second, 50*time.Millisecond, "etcd did not come back")
	}

	t.Run("ClosesWhenIdle", func(t *testing.T) {
		l := locker(t)
		le, err := c.Grant(ctx, 60)
		require.NoError(t, err)
		ttl, err := xetcd.KeepAlive(ctx, l, le.ID)
		require.NoError(t, err)
		require.EqualValues(t, 60, ttl)
		require.True(t, xetcd.StreamOpen(l), "the keep-alive opened no stream")
		require.Eventually(t, func() bool { return !xetcd.StreamOpen(l) }, 10*time.Second, 20*time.Millisecond,
			"the stream stayed open after it went idle")
		// The next keep-alive opens it again.
		_, err = xetcd.KeepAlive(ctx, l, le.ID)
		require.NoError(t, err)
		require.True(t, xetcd.StreamOpen(l))
	})

	t.Run("GoneLease", func(t *testing.T) {
		l := locker(t)
		le, err := c.Grant(ctx, 60)
		require.NoError(t, err)
		_, err = c.Revoke(ctx, le.ID)
		require.NoError(t, err)
		_, err = xetcd.KeepAlive(ctx, l, le.ID)
		require.ErrorContains(t, err, "requested lease not found")
	})

	t.Run("LeftInLine", func(t *testing.T) {
		l := locker(t)
		le, err := c.Grant(ctx, 60)
		require.NoError(t, err)
		_, err = xetcd.KeepAlive(ctx, l, le.ID) // the stream is open
		require.NoError(t, err)
		srv.Pause()
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err = xetcd.KeepAlive(short, l, le.ID)
		require.ErrorIs(t, err, context.DeadlineExceeded, "a keep-alive to a paused server")
		type answer struct {
			ttl int64
			err error
		}
		next := make(chan answer, 1)
		go func() {
			ttl, err := xetcd.KeepAlive(ctx, l, le.ID)
			next <- answer{ttl, err}
		}()
		srv.Unpause()
		a := <-next
		require.NoError(t, a.err)
		require.EqualValues(t, 60, a.ttl)
	})

	t.Run("BrokenStreamReopens", func(t *testing.T) {
		l := locker(t)
		le, err := c.Grant(ctx, 60)
		require.NoError(t, err)
		_, err = xetcd.KeepAlive(ctx, l, le.ID)
		require.NoError(t, err)
		srv.Kill()
		require.Eventually(t, func() bool { return !xetcd.StreamOpen(l) }, 30*time.Second, 20*time.Millisecond,
			"the stream of a killed server stayed open")
		srv.Start()
		up(t)
		// etcd keeps leases across a restart.
		ttl, err := xetcd.KeepAlive(ctx, l, le.ID)
		require.NoError(t, err)
		require.EqualValues(t, 60, ttl)
		require.True(t, xetcd.StreamOpen(l))
	})
}
