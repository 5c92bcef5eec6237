package etcd

import (
	"context"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xsync-go/xsync/backend"
)

// electionSpace comes after the prefix for elections: the election space
// is a Locker of its own under {prefix}e/, so an election's key is
// {prefix}e/m/{name} and its queue {prefix}e/q/..., apart from the
// mutexes.
const electionSpace = "e/"

// Election implements [backend.Electioner]: name's election is a mutex of
// the election space, with the mutex's queue; its epochs are the key's
// create revisions, so every term's epoch is larger than every earlier
// one's in the cluster. Changes watches the key.
func (l *Locker) Election(name string) backend.Lock {
	return election{mutex{l.elections(), name}}
}

// elections returns the Locker's election space, made on first use
// (under l.mu, which Close reads it under; closed already if the Locker
// is).
func (l *Locker) elections() *Locker {
	l.electOnce.Do(func() {
		e := New(l.client, WithPrefix(l.prefix+electionSpace))
		l.mu.Lock()
		defer l.mu.Unlock()
		e.closed = l.closed
		l.elect = e
	})
	return l.elect
}

type election struct{ mutex }

var _ backend.Notifier = election{}

// Changes watches the election's key (every grant is a put, every
// release, force release and expiry a delete) and fires once at once.
func (e election) Changes(ctx context.Context) (<-chan struct{}, func(), error) {
	l := e.l
	if err := l.connected(ctx); err != nil {
		return nil, nil, fmt.Errorf("etcd: changes: %w", err)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	events := l.client.Watch(clientv3.WithRequireLeader(wctx), l.mutexKey(e.key), clientv3.WithCreatedNotify())
	if err := watchCreated(ctx, events); err != nil {
		cancel()
		for range events {
		}
		return nil, nil, fmt.Errorf("etcd: changes: %w", err)
	}
	out := make(chan struct{}, 1)
	out <- struct{}{}
	var wg sync.WaitGroup
	wg.Go(func() {
		for resp := range events {
			if len(resp.Events) > 0 || resp.Err() != nil || resp.Canceled {
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	})
	return out, sync.OnceFunc(func() { cancel(); wg.Wait() }), nil
}
