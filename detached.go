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
// never does: no timer, and fewer allocations, on the path every Run
// takes. Contexts derived from it (a client's per-call timeout, grpc's
// stream contexts) register through its AfterFunc method, so the context
// package starts no goroutine to watch it.
type detached struct {
	values   context.Context
	deadline time.Time
	once     sync.Once
	done     chan struct{}
	timer    *time.Timer
	stopped  atomic.Bool

	mu     sync.Mutex
	fired  bool
	afters map[*func()]struct{}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func newDetached(ctx context.Context, timeout time.Duration) *detached {
	d := new(detached)
	d.init(ctx, timeout)
	return d
}

// init readies a zero detached in place (it may live inside a larger
// struct, saving an allocation).
func (d *detached) init(ctx context.Context, timeout time.Duration) {
	d.values, d.deadline = ctx, time.Now().Add(timeout)
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
		d.timer = time.AfterFunc(wait, func() { close(d.done); d.fire() })
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
	d.fire()
}

// AfterFunc arranges to call f once the context is done, and returns a
// function that cancels the call (true if it did). The context package
// uses it for contexts derived from this one, instead of a goroutine that
// waits on Done. f runs on the goroutine that ends the context (the timer's,
// or the one that calls stop); if the context is done already, f runs in a
// goroutine of its own, as with context.AfterFunc.
func (d *detached) AfterFunc(f func()) (stop func() bool) {
	d.Done() // the timer must run for f to be called at the deadline
	d.mu.Lock()
	if d.fired {
		d.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	if d.afters == nil {
		d.afters = make(map[*func()]struct{})
	}
	key := &f
	d.afters[key] = struct{}{}
	d.mu.Unlock()
	return func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		_, ok := d.afters[key]
		delete(d.afters, key)
		return ok
	}
}

// fire calls the functions registered with AfterFunc, once.
func (d *detached) fire() {
	d.mu.Lock()
	if d.fired {
		d.mu.Unlock()
		return
	}
	d.fired = true
	afters := d.afters
	d.afters = nil
	d.mu.Unlock()
	for f := range afters {
		(*f)()
	}
}
