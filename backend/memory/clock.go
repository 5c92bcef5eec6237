package memory

import (
	"context"
	"slices"
	"sync"
	"time"
)

// ManualClock is a clock for tests that moves only when told to. Pass its
// Now method to [WithClock], and the clock itself to xsync.WithClock. It
// is safe for concurrent use.
type ManualClock struct {
	mu      sync.Mutex
	t       time.Time
	timers  []*manualTimer
	changed chan struct{} // closed and replaced whenever timers change
}

type manualTimer struct {
	at    time.Time
	f     func()
	fired bool
}

// NewManualClock returns a clock that reads start until it is advanced.
func NewManualClock(start time.Time) *ManualClock {
	return &ManualClock{t: start, changed: make(chan struct{})}
}

// notifyLocked wakes BlockUntil.
func (c *ManualClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// BlockUntil waits until at least n functions of AfterFunc are pending
// (registered and not yet due), or ctx ends: a test calls it before
// Advance, so that the goroutine it waits for has armed its timer. Give
// ctx a timeout: a wrong n then fails the test instead of hanging it.
//
// What an xsync.Client on this clock registers, to count n:
//   - each lease (Acquire, and every Run on a manual clock): one timer for
//     its validity deadline, one more with a hold cap
//     (WithAutoExtend(maxHold > 0)), and with auto-extension one for its
//     next renewal, re-armed after each;
//   - each acquisition that waits (WithWait, SetRetry): one timer for its
//     next attempt while it sleeps;
//   - each memory Locker on the clock registers none (its expiries are
//     read from the clock).
//
// [ManualClock.Pending] tells how many are pending now.
func (c *ManualClock) BlockUntil(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		pending, changed := len(c.timers), c.changed
		c.mu.Unlock()
		if pending >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// Pending returns how many functions of AfterFunc are pending: registered
// and not yet due.
func (c *ManualClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// AfterFunc calls f in its own goroutine once the clock has been advanced
// by d or more (at once if d <= 0), and returns a function that cancels
// the call if it has not started, as time.AfterFunc does.
func (c *ManualClock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{at: c.t.Add(d), f: f}
	if d <= 0 {
		t.fired = true
		go f()
	} else {
		c.timers = append(c.timers, t)
		c.notifyLocked()
	}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if t.fired {
			return false
		}
		t.fired = true
		c.timers = slices.DeleteFunc(c.timers, func(x *manualTimer) bool { return x == t })
		c.notifyLocked()
		return true
	}
}

// Advance moves the clock forward by d and starts the functions of
// AfterFunc that are due. A negative d is ignored: the clock never goes
// backwards.
func (c *ManualClock) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	c.t = c.t.Add(d)
	var due []*manualTimer
	c.timers = slices.DeleteFunc(c.timers, func(x *manualTimer) bool {
		if !x.at.After(c.t) {
			x.fired = true
			due = append(due, x)
			return true
		}
		return false
	})
	c.mu.Unlock()
	slices.SortStableFunc(due, func(a, b *manualTimer) int { return a.at.Compare(b.at) })
	for _, x := range due {
		go x.f()
	}
}
