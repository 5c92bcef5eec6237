package etcd

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// SetIdle sets how long the keep-alive stream stays open after its last
// answer, until the returned function restores it. Not for parallel tests.
func SetIdle(d time.Duration) (restore func()) {
	old := idleAfter.Swap(int64(d))
	return func() { idleAfter.Store(old) }
}

// KeepAlive is one keep-alive of lease id on l's stream.
func KeepAlive(ctx context.Context, l *Locker, id clientv3.LeaseID) (int64, error) {
	return l.keeper.keepAlive(ctx, id)
}

// StreamOpen says whether l's keep-alive stream is open.
func StreamOpen(l *Locker) bool {
	l.keeper.mu.Lock()
	defer l.keeper.mu.Unlock()
	return l.keeper.stream != nil
}
