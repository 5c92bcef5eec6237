package xsync

import (
	"context"
	"errors"
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
