package etcd_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xsync-go/xsync/backend"
	xetcd "github.com/xsync-go/xsync/backend/etcd"
	"github.com/xsync-go/xsync/conformance"
	"github.com/xsync-go/xsync/internal/itest"
)

func TestMain(m *testing.M) { itest.Main(m) }

var prefixes atomic.Int64

func newPrefix() string { return fmt.Sprintf("xsync-test-%d/", prefixes.Add(1)) }

func TestConformance(t *testing.T) {
	srv := itest.StartEtcd(t)
	admin := itest.EtcdClient(t, srv)
	// Bring its connection up now, so that its goroutines exist before the
	// suite's first goroutine-leak snapshot.
	if _, err := admin.Get(t.Context(), "warm-up"); err != nil {
		t.Fatal(err)
	}
	prefixOf := map[backend.Locker]string{}
	conformance.Run(t, func(t *testing.T) backend.Locker {
		p := newPrefix()
		l := xetcd.New(itest.EtcdClient(t, srv), xetcd.WithPrefix(p))
		prefixOf[l] = p
		return l
	}, conformance.Options{
		Peer: func(t *testing.T, l backend.Locker) backend.Locker {
			return xetcd.New(itest.EtcdClient(t, srv), xetcd.WithPrefix(prefixOf[l]))
		},
		MinTTL:          xetcd.MinTTL,
		ExpiryTolerance: time.Second,
		// Keys under the prefix, and every lease on the server: a lock
		// leaves neither behind.
		Size: func(t *testing.T, l backend.Locker) int {
			ctx := context.Background()
			keys, err := admin.Get(ctx, prefixOf[l], clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err != nil {
				t.Fatal(err)
			}
			leases, err := admin.Leases(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return int(keys.Count) + len(leases.Leases)
		},
	})
}
