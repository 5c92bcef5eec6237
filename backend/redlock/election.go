package redlock

import (
	"context"
	"sync"

	"github.com/xsync-go/xsync/backend"
)

// electionSpace comes after the prefix for elections: an election's key
// on every node is {prefix}e:m:{name}, apart from the mutexes.
const electionSpace = "e:"

// Election implements [backend.Electioner]: name's election is a mutex of
// the election space, taken by a Redlock round as a mutex is; a grant is
// also published on every node, for observers. Its epochs are the
// mutex's tokens: unique, not fencing. Redlock stores no owner metadata,
// so observers cannot tell who leads, only that somebody does.
func (l *Locker) Election(name string) backend.Lock {
	l.electOnce.Do(func() {
		v := *l // the same nodes, pools and hubs, under another space
		v.prefix = l.prefix + electionSpace
		v.electOnce = &sync.Once{}
		l.elect = &v
	})
	return election{mutex{l.elect, name}}
}

type election struct{ mutex }

var _ backend.Notifier = election{}

// granted is the payload that tells observers of a new term.
const granted = "granted"

// Acquire is the mutex's attempt, then, if it won, a message on every
// node (best effort, within the node timeout).
func (e election) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	tok, err := e.mutex.Acquire(ctx, r)
	if tok > 0 {
		l, k := e.l, e.l.prefix+mutexSpace+e.key
		var wg sync.WaitGroup
		for _, c := range l.clients {
			wg.Go(func() {
				pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.nodeTimeout)
				defer cancel()
				_ = c.Publish(pctx, k, granted).Err()
			})
		}
		wg.Wait()
	}
	return tok, err
}

// Changes hears releases and grants on any node (as a waiter's watch
// does, with its wake-up at the holder's expiry), and fires once at once.
func (e election) Changes(ctx context.Context) (<-chan struct{}, func(), error) {
	in, stop, err := e.l.watch(ctx, e.key, false, "")
	if err != nil {
		return nil, nil, err
	}
	out := make(chan struct{}, 1)
	out <- struct{}{}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-in:
				select {
				case out <- struct{}{}:
				default:
				}
			case <-done:
				return
			}
		}
	}()
	return out, sync.OnceFunc(func() { close(done); stop() }), nil
}
