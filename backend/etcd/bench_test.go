package etcd_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/xsync-go/xsync"
	xetcd "github.com/xsync-go/xsync/backend/etcd"
	"github.com/xsync-go/xsync/internal/benchutil"
	"github.com/xsync-go/xsync/internal/itest"
)

// BenchmarkPaired interleaves, op by op on one server (benchutil.Interleave): xsync's Lock+Unlock;
// one Put (the unit: a write round trip); concurrency.Mutex Lock+Unlock on
// one shared session; and concurrency.Mutex with a new session per lock
// (what a per-lock TTL costs there). It reports each mean in Puts.
func BenchmarkPaired(b *testing.B) {
	srv := itest.StartEtcd(b)
	c := itest.EtcdClient(b, srv)
	b.Cleanup(xsync.Swap("bench", xetcd.New(c, xetcd.WithPrefix(newPrefix()))))
	ctx := context.Background()
	shared, err := concurrency.NewSession(c, concurrency.WithTTL(10))
	if err != nil {
		b.Fatal(err)
	}
	defer shared.Close()
	m := benchutil.Interleave(b,
		benchutil.Op{Name: "xsync", Fn: benchutil.LockUnlock(b, "bench", "k")},
		benchutil.Op{Name: "put", Fn: func() {
			if _, err := c.Put(ctx, "bench-put", "v"); err != nil {
				b.Fatal(err)
			}
		}},
		benchutil.Op{Name: "mutex-shared", Fn: func() {
			m := concurrency.NewMutex(shared, "bench-mutex-shared")
			if err := m.Lock(ctx); err != nil {
				b.Fatal(err)
			}
			if err := m.Unlock(ctx); err != nil {
				b.Fatal(err)
			}
		}},
		benchutil.Op{Name: "mutex-new-session", Fn: func() {
			s, err := concurrency.NewSession(c, concurrency.WithTTL(10))
			if err != nil {
				b.Fatal(err)
			}
			m := concurrency.NewMutex(s, "bench-mutex-new")
			if err := m.Lock(ctx); err != nil {
				b.Fatal(err)
			}
			if err := m.Unlock(ctx); err != nil {
				b.Fatal(err)
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
		}},
	)
	b.ReportMetric(float64(m["put"].Nanoseconds()), "put-ns")
	b.ReportMetric(benchutil.Ratio(m["xsync"], m["put"]), "xsync-puts")
	b.ReportMetric(benchutil.Ratio(m["mutex-shared"], m["put"]), "mutex-shared-puts")
	b.ReportMetric(benchutil.Ratio(m["mutex-new-session"], m["put"]), "mutex-new-session-puts")
}

// BenchmarkContended8 compares xsync and concurrency.Mutex with 8 clients
// on one key, on the same server.
func BenchmarkContended8(b *testing.B) {
	srv := itest.StartEtcd(b)
	prefix := newPrefix()
	var ids atomic.Int64
	b.Run("xsync", func(b *testing.B) {
		benchutil.ContendMetered(b, 8, func(int) func(context.Context, func()) error {
			c := itest.EtcdClient(b, srv)
			name := fmt.Sprint("bench", ids.Add(1))
			b.Cleanup(xsync.Swap(name, xetcd.New(c, xetcd.WithPrefix(prefix))))
			a := xsync.New(name, "k")
			if err := a.SetRetry(1<<30, time.Second); err != nil {
				b.Fatal(err)
			}
			return func(ctx context.Context, work func()) error {
				return a.Run(ctx, func(context.Context) error { work(); return nil })
			}
		}, &benchutil.RaftEntries{B: b, Client: itest.EtcdClient(b, srv)})
	})
	b.Run("concurrency.Mutex", func(b *testing.B) {
		benchutil.ContendMetered(b, 8, func(int) func(context.Context, func()) error {
			c := itest.EtcdClient(b, srv)
			s, err := concurrency.NewSession(c, concurrency.WithTTL(10))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			m := concurrency.NewMutex(s, "bench-mutex")
			return func(ctx context.Context, work func()) error {
				if err := m.Lock(ctx); err != nil {
					return err
				}
				work()
				return m.Unlock(context.WithoutCancel(ctx))
			}
		}, &benchutil.RaftEntries{B: b, Client: itest.EtcdClient(b, srv)})
	})
}

// BenchmarkKinds8 has 8 clients take one lock in turn, each waiting as
// xsync does (a watch of the lock's entries, which wakes every waiter at
// each release): the permits of a semaphore of limit 2, and the write
// lock of a read-write lock. It reports acquisitions per second and the
// Raft entries (writes) etcd appends per acquisition.
func BenchmarkKinds8(b *testing.B) {
	srv := itest.StartEtcd(b)
	prefix := newPrefix()
	wait := []xsync.AcquireOption{xsync.WithWait(time.Hour), xsync.WithRetryInterval(time.Second)}
	for _, kind := range []struct {
		name string
		run  func(c *xsync.Client, ctx context.Context, cb func(context.Context) error) error
	}{
		{"semaphore", func(c *xsync.Client, ctx context.Context, cb func(context.Context) error) error {
			return c.Semaphore("s", 2).Run(ctx, cb, wait...)
		}},
		{"write", func(c *xsync.Client, ctx context.Context, cb func(context.Context) error) error {
			return c.RWLock("rw").RunWrite(ctx, cb, wait...)
		}},
	} {
		b.Run(kind.name, func(b *testing.B) {
			benchutil.ContendMetered(b, 8, func(int) func(context.Context, func()) error {
				c := xsync.NewClient(xetcd.New(itest.EtcdClient(b, srv), xetcd.WithPrefix(prefix)))
				return func(ctx context.Context, work func()) error {
					return kind.run(c, ctx, func(context.Context) error { work(); return nil })
				}
			}, &benchutil.RaftEntries{B: b, Client: itest.EtcdClient(b, srv)})
		})
	}
}

// BenchmarkDeletedEntries measures an uncontended acquire+release on a key
// whose queue range holds n deleted entries (etcd keeps them in its index
// until a compaction, and the acquire's comparison of the queue visits
// them): what each attempt on a busy key would pay if every wait left a
// name of its own behind, which is why a Locker reuses its waiters' names
// (see queue.go).
func BenchmarkDeletedEntries(b *testing.B) {
	srv := itest.StartEtcd(b)
	c := itest.EtcdClient(b, srv)
	ctx := context.Background()
	for _, n := range []int{0, 10000} {
		b.Run(fmt.Sprint("deleted=", n), func(b *testing.B) {
			prefix := newPrefix()
			name := fmt.Sprint("deleted", n)
			b.Cleanup(xsync.Swap(name, xetcd.New(c, xetcd.WithPrefix(prefix))))
			queue := prefix + "q/" + hex.EncodeToString([]byte("k")) + "/"
			for i := 0; i < n; i += 100 {
				ops := make([]clientv3.Op, 0, 100)
				for j := i; j < min(i+100, n); j++ {
					ops = append(ops, clientv3.OpPut(fmt.Sprint(queue, "w", j), ""))
				}
				if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := c.Delete(ctx, queue, clientv3.WithPrefix()); err != nil {
				b.Fatal(err)
			}
			lockUnlock := benchutil.LockUnlock(b, name, "k")
			b.ResetTimer()
			for range b.N {
				lockUnlock()
			}
		})
	}
}

// BenchmarkTypes interleaves an uncontended acquire+release of each lock
// type (the mutex, a semaphore's permit, a read lock, the write lock, two
// keys at once) and one Put, on one client and server, and reports each
// type against the mutex and in Puts.
func BenchmarkTypes(b *testing.B) {
	srv := itest.StartEtcd(b)
	c := itest.EtcdClient(b, srv)
	ctx := context.Background()
	ops := benchutil.TypeOps(b, xsync.NewClient(xetcd.New(c, xetcd.WithPrefix(newPrefix()))), "")
	ops = append(ops, benchutil.Op{Name: "put", Fn: func() {
		if _, err := c.Put(ctx, "bench-put", "v"); err != nil {
			b.Fatal(err)
		}
	}})
	benchutil.ReportTypes(b, benchutil.Interleave(b, ops...), "put")
}
