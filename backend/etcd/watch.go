package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// absent returns a check that no etcd key is at k (with opts: in the
// range they make of it).
func (l *Locker) absent(k string, opts ...clientv3.OpOption) func(ctx context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		resp, err := l.client.Get(ctx, k, append([]clientv3.OpOption{clientv3.WithCountOnly()}, opts...)...)
		if err != nil {
			return false, err
		}
		return resp.Count == 0, nil
	}
}

// watchKey watches the deletes of the etcd key k, or with opts
// (clientv3.WithPrefix) of the keys it begins. It starts a watch at the
// current revision and waits until etcd has created it, then asks free
// whether the lock may be taken (ready is then sent to at once): a
// release before the read shows in the read, one after it in the watch.
// (A watch from a past revision would wait for etcd's 100ms catch-up.)
func (l *Locker) watchKey(ctx context.Context, k string, free func(ctx context.Context) (bool, error), opts ...clientv3.OpOption) (<-chan struct{}, func(), error) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	events := l.client.Watch(clientv3.WithRequireLeader(wctx), k,
		append([]clientv3.OpOption{clientv3.WithCreatedNotify(), clientv3.WithFilterPut()}, opts...)...)
	fail := func(err error) (<-chan struct{}, func(), error) {
		cancel()
		for range events { // let the watch's goroutines finish
		}
		return nil, nil, fmt.Errorf("etcd: watch: %w", err)
	}
	if err := watchCreated(ctx, events); err != nil {
		return fail(err)
	}
	isFree, err := free(ctx)
	if err != nil {
		return fail(err)
	}

	ready, notify := signal()
	if isFree {
		notify()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range events {
			// A delete, or the end of the watch (cancelled, or the
			// cluster lost its leader): either way, try again.
			notify()
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	return ready, stop, nil
}

// signal returns a watch's ready channel and the function that sends on
// it; values are coalesced, as backend.Watcher allows.
func signal() (<-chan struct{}, func()) {
	ready := make(chan struct{}, 1)
	return ready, func() {
		select {
		case ready <- struct{}{}:
		default:
		}
	}
}

// watchCreated waits for a watch's first response, which says that etcd
// has created it (clientv3.WithCreatedNotify): events from then on reach
// it.
func watchCreated(ctx context.Context, events clientv3.WatchChan) error {
	select {
	case resp, ok := <-events:
		if !ok {
			return errors.New("watch closed before it was created")
		}
		return resp.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}
