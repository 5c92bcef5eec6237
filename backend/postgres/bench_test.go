package postgres_test

import (
	"context"
	"testing"

	"github.com/xsync-go/xsync"
	xpg "github.com/xsync-go/xsync/backend/postgres"
	"github.com/xsync-go/xsync/internal/benchutil"
)

// BenchmarkTypes interleaves an uncontended acquire+release of each lock
// type (the mutex, a semaphore's permit, a read lock, the write lock, two
// keys at once) and one round trip (SELECT 1), on one pool and server,
// and reports each type against the mutex and in round trips.
func BenchmarkTypes(b *testing.B) {
	srv, _ := startMigrated(b)
	p := pool(b, srv.AdminURL())
	l := xpg.New(p, xpg.WithPrefix(newPrefix()))
	b.Cleanup(func() { l.Close() })
	ctx := context.Background()
	ops := benchutil.TypeOps(b, xsync.NewClient(l), "")
	ops = append(ops, benchutil.Op{Name: "select1", Fn: func() {
		var one int
		if err := p.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			b.Fatal(one, err)
		}
	}})
	benchutil.ReportTypes(b, benchutil.Interleave(b, ops...), "select1")
}
