package xsync

import "time"

// Clock is the time source of a [Client]: when a lease's validity runs
// out, when to retry, when to renew. The default is the system clock. A
// test passes a manual clock ([WithClock]) to expire or lose a lock
// without sleeping; memory.ManualClock is one, and a memory backend built
// with the same clock expires its locks on it too.
//
// AfterFunc calls f in its own goroutine once d has passed on the clock,
// and returns a function that cancels the call if it has not started (it
// reports whether it did so), as time.AfterFunc does.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// systemClock is the real clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// sleepCh returns a channel that is closed once d has passed on clock, and
// a function that stops it.
func sleepCh(clock Clock, d time.Duration) (<-chan time.Time, func() bool) {
	ch := make(chan time.Time)
	stop := clock.AfterFunc(d, func() { close(ch) })
	return ch, stop
}

// alarm is a timer on a client's clock. On the system clock it is a
// time.Timer, reused by reset (no allocation per renewal); on other clocks
// each reset arms a new AfterFunc.
type alarm struct {
	t *time.Timer
	m *clockAlarm
}

type clockAlarm struct {
	stop  func() bool
	clock Clock
	f     func()
}

func newAlarm(clock Clock, d time.Duration, f func()) alarm {
	if _, ok := clock.(systemClock); ok {
		return alarm{t: time.AfterFunc(d, f)}
	}
	return alarm{m: &clockAlarm{stop: clock.AfterFunc(d, f), clock: clock, f: f}}
}

// Stop stops the alarm; it reports whether that kept f from running.
func (a *alarm) Stop() bool {
	if a.t != nil {
		return a.t.Stop()
	}
	return a.m.stop()
}

// Reset arms a stopped alarm again for d.
func (a *alarm) Reset(d time.Duration) {
	if a.t != nil {
		a.t.Reset(d)
		return
	}
	a.m.stop = a.m.clock.AfterFunc(d, a.m.f)
}

// ticker waits on a client's clock, reusing one time.Timer on the system
// clock.
type ticker struct {
	clock Clock
	t     *time.Timer
	stop  func() bool
}

// wait returns a channel that delivers once d has passed.
func (k *ticker) wait(d time.Duration) <-chan time.Time {
	if _, ok := k.clock.(systemClock); ok {
		if k.t == nil {
			k.t = time.NewTimer(d)
		} else {
			k.t.Reset(d)
		}
		return k.t.C
	}
	var ch <-chan time.Time
	ch, k.stop = sleepCh(k.clock, d)
	return ch
}

// done stops the ticker.
func (k *ticker) done() {
	if k.t != nil {
		k.t.Stop()
	}
	if k.stop != nil {
		k.stop()
	}
}
