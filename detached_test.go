package xsync

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

type ctxKey struct{}

func TestDetachedKeepsValuesNotCancellation(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(t.Context(), ctxKey{}, "v"))
	cancel()
	d := newDetached(parent, time.Hour)
	defer d.stop()
	if d.Err() != nil {
		t.Fatalf("Err = %v; the parent's cancellation must not reach it", d.Err())
	}
	if d.Value(ctxKey{}) != "v" {
		t.Fatal("values are kept")
	}
	if dl, ok := d.Deadline(); !ok || time.Until(dl) < 59*time.Minute {
		t.Fatalf("Deadline = %v, %v", dl, ok)
	}
	select {
	case <-d.Done():
		t.Fatal("Done closed before the deadline")
	default:
	}
}

func TestDetachedEndsAtDeadline(t *testing.T) {
	d := newDetached(t.Context(), 20*time.Millisecond)
	defer d.stop()
	select {
	case <-d.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed at the deadline")
	}
	if !errors.Is(d.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err = %v; want DeadlineExceeded", d.Err())
	}
	// Works with the context package: a child ends too.
	child, cancel := context.WithCancel(d)
	defer cancel()
	<-child.Done()
}

func TestDetachedPastDeadline(t *testing.T) {
	d := newDetached(t.Context(), -time.Second)
	if !errors.Is(d.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err = %v; want DeadlineExceeded", d.Err())
	}
	<-d.Done()
}

func TestDetachedStop(t *testing.T) {
	for _, watched := range []bool{false, true} {
		d := newDetached(t.Context(), time.Hour)
		var done <-chan struct{}
		if watched {
			done = d.Done()
		}
		d.stop()
		d.stop()
		if !errors.Is(d.Err(), context.Canceled) {
			t.Fatalf("Err after stop = %v; want Canceled", d.Err())
		}
		if watched {
			<-done // a waiter is let go
		}
		<-d.Done()
	}
}

// A context derived from the release context (a client's per-call
// timeout) is cancelled with it, without a goroutine watching it.
func TestDetachedDerivedWithoutGoroutine(t *testing.T) {
	d := newDetached(t.Context(), time.Hour)
	before := runtime.NumGoroutine()
	child, cancel := context.WithCancel(d)
	defer cancel()
	grand, gcancel := context.WithTimeout(child, time.Hour)
	defer gcancel()
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after deriving contexts; %d before: the context package watches the parent", n, before)
	}
	d.stop()
	select {
	case <-grand.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a derived context was not cancelled by stop")
	}
	if !errors.Is(grand.Err(), context.Canceled) {
		t.Fatalf("derived Err = %v; want context.Canceled", grand.Err())
	}
	// Deriving from an ended context cancels at once.
	late, lcancel := context.WithCancel(d)
	defer lcancel()
	select {
	case <-late.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a context derived after stop was not cancelled")
	}
}

// At the deadline, derived contexts end too.
func TestDetachedDerivedAtDeadline(t *testing.T) {
	d := newDetached(t.Context(), 20*time.Millisecond)
	defer d.stop()
	child, cancel := context.WithCancel(d)
	defer cancel()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a derived context outlived the deadline")
	}
	if !errors.Is(child.Err(), context.DeadlineExceeded) {
		t.Fatalf("derived Err = %v; want context.DeadlineExceeded", child.Err())
	}
}
