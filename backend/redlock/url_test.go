package redlock_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend/redlock"
	"github.com/xsync-go/xsync/internal/itest"
)

func TestOpenURLBad(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"redlock://", "no nodes"},
		{"redlock://:secret@h1:6379,,h3:6379", "empty node address"},
		{"redlock://:secret@h1:6379/2", "unexpected path"},
		{"redlock://:secret@h1:6379?colour=blue", `unknown option "colour"`},
		{"redlock://:secret@h1:6379?node_timeout=0s", "node_timeout"},
		{"redlock://:secret@h1:6379?drift_factor=0.7", "drift_factor"},
		{"redlock://:secret@h1:6379?db=x", "db"},
		{"redlock://:secret@h1:6379?skip_verify=true", "without tls=true"},
	} {
		_, _, err := xsync.Open(t.Context(), tc.url)
		require.ErrorIs(t, err, xsync.ErrInvalid, tc.url)
		assert.Contains(t, err.Error(), tc.want, tc.url)
		assert.NotContains(t, err.Error(), "secret", "the password must not be shown")
	}
}

func TestOpenURLWorks(t *testing.T) {
	nodes := itest.StartRedisN(t, 3)
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.Endpoint())
	}
	l, closer, err := xsync.Open(t.Context(), "redlock://"+strings.Join(addrs, ",")+"?prefix=app1:&node_timeout=200ms&drift_factor=0.02&db=1&tls=false")
	require.NoError(t, err)
	t.Cleanup(func() { closer.Close() })
	require.IsType(t, &redlock.Locker{}, l)
	t.Cleanup(xsync.Swap("url", l))
	ctx := context.Background()
	item, err := xsync.Lock(ctx, "url", "user:1", 5)
	require.NoError(t, err)
	require.True(t, item.HasLock())
	holding := 0
	for _, n := range nodes {
		db1 := itest.RedisClientWith(t, n, &goredis.Options{DB: 1})
		holding += int(db1.Exists(ctx, "app1:m:user:1").Val())
	}
	assert.GreaterOrEqual(t, holding, 2, "the lock is in DB 1, under the prefix, on a majority")
	ok, err := item.Unlock(ctx, "url", "user:1")
	require.NoError(t, err)
	assert.True(t, ok)
}

// Programmer's errors panic at construction with a clear message; the same
// values in a URL are errors (see TestOpenURLBad).
func TestConstructorPanics(t *testing.T) {
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { c.Close() })
	for _, tc := range []struct {
		name string
		fn   func()
		want string
	}{
		{"no clients", func() { redlock.New(nil) }, "at least one client"},
		{"nil client", func() { redlock.New([]goredis.UniversalClient{c, nil}) }, "client 1 is nil"},
		{"node timeout", func() { redlock.WithNodeTimeout(0) }, "WithNodeTimeout(0s)"},
		{"quorum timeout", func() { redlock.WithQuorumTimeout(-time.Second) }, "WithQuorumTimeout(-1s)"},
		{"drift factor", func() { redlock.WithDriftFactor(0.5) }, "WithDriftFactor(0.5)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				require.NotNil(t, r, "no panic")
				assert.Contains(t, fmt.Sprint(r), tc.want)
			}()
			tc.fn()
		})
	}
}
