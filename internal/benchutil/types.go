package benchutil

import (
	"context"
	"testing"
	"time"

	"github.com/xsync-go/xsync"
)

// TypeOps returns one uncontended acquire+release of each lock type on c,
// under keys beginning with prefix: the mutex (Client.Acquire), a permit
// of a 4-permit semaphore, a read lock, the write lock, and two keys at
// once (one hash tag, for Redis Cluster).
func TypeOps(b *testing.B, c *xsync.Client, prefix string) []Op {
	ctx := context.Background()
	hold := func(l *xsync.Lease, err error) {
		if err != nil {
			b.Fatal(err)
		}
		if ok, err := l.Release(ctx); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	rw := c.RWLock(prefix + "rw")
	sem := c.Semaphore(prefix+"sem", 4)
	keys := []string{"{" + prefix + "m}:a", "{" + prefix + "m}:b"}
	return []Op{
		{Name: "mutex", Fn: func() { hold(c.Acquire(ctx, prefix+"mutex")) }},
		{Name: "semaphore", Fn: func() { hold(sem.Acquire(ctx)) }},
		{Name: "read", Fn: func() { hold(rw.AcquireRead(ctx)) }},
		{Name: "write", Fn: func() { hold(rw.AcquireWrite(ctx)) }},
		{Name: "multi2", Fn: func() { hold(c.AcquireAll(ctx, keys)) }},
	}
}

// ReportTypes reports the mean of each lock type's op (TypeOps) in ns, as
// a ratio to the mutex's, and in units of m[unit] (a round trip: PING, a
// Put) if unit is not "".
func ReportTypes(b *testing.B, m map[string]time.Duration, unit string) {
	for _, name := range []string{"mutex", "semaphore", "read", "write", "multi2"} {
		b.ReportMetric(float64(m[name].Nanoseconds()), name+"-ns")
		if name != "mutex" {
			b.ReportMetric(Ratio(m[name], m["mutex"]), name+"/mutex")
		}
		if unit != "" {
			b.ReportMetric(Ratio(m[name], m[unit]), name+"-"+unit+"s")
		}
	}
}
