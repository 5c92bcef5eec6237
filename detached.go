package xsync

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// detached is the context a lock is released with: it keeps the values of
// the caller's ctx but not its cancellation, and it ends at a deadline.
// Unlike context.WithTimeout(context.WithoutCancel(ctx), d) it starts a
// timer only when somebody asks for Done, which an in-process backend
// never does; that saves a timer and four allocations per Run.
type detached struct {
	values   context.Context
	deadline time.Time
	once     sync.Once
	done     chan struct{}
	timer    *time.Timer
	stopped  atomic.Bool
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func newDetached(ctx context.Context, timeout time.Duration) *detached {
	return &detached{values: ctx, deadline: time.Now().Add(timeout)}
}

func (d *detached) Deadline() (time.Time, bool) { return d.deadline, true }

func (d *detached) Done() <-chan struct{} {
	d.once.Do(func() {
		wait := time.Until(d.deadline)
		if wait <= 0 {
			d.done = closedChan
			return
		}
		d.done = make(chan struct{})
		d.timer = time.AfterFunc(wait, func() { close(d.done) })
	})
	return d.done
}

func (d *detached) Err() error {
	if !d.stopped.Load() && time.Now().Before(d.deadline) {
		return nil // Done cannot be closed yet
	}
	select {
	case <-d.Done():
		if d.stopped.Load() {
			return context.Canceled
		}
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func (d *detached) Value(key any) any { return d.values.Value(key) }

// stop ends the context and its timer, if one was started.
func (d *detached) stop() {
	d.stopped.Store(true)
	d.once.Do(func() { d.done = closedChan })
	if d.timer != nil && d.timer.Stop() {
		close(d.done)
	}
}
