package xsync

import (
	"context"
	"errors"
	"time"

	"github.com/xsync-go/xsync/internal/keys"
)

var (
	// ErrMissingLock means the lock was not obtained: another holder had
	// it for the whole wait, or ctx ended while waiting for it (or before
	// an attempt could tell). It never means that the backend failed:
	// those errors do not match it. Use [IsMissingLockErr] or errors.Is.
	ErrMissingLock = errors.New("xsync: missing lock")

	// ErrLockLost means a held lock could no longer be trusted before its
	// holder let it go: its TTL ran out, a renewal failed or found it
	// gone, or the maximum hold time was reached. Mutual exclusion may not
	// have held for the whole hold. It is the cause of a lease's end
	// ([Lease.Err]) and of the cancellation of Run's callback context
	// (see context.Cause), and Run's error matches it.
	ErrLockLost = errors.New("xsync: lock lost")

	// ErrReleased is what [Lease.Err] returns once the lease was released.
	ErrReleased = errors.New("xsync: lease released")

	// ErrUnknownBackend means no backend is registered under the name
	// given.
	ErrUnknownBackend = errors.New("xsync: unknown backend")

	// ErrInvalid means an argument was invalid. The call did not reach the
	// backend.
	ErrInvalid = errors.New("xsync: invalid argument")
)

// IsMissingLockErr reports whether err means that the lock was not
// obtained. It is errors.Is(err, ErrMissingLock).
func IsMissingLockErr(err error) bool {
	return errors.Is(err, ErrMissingLock)
}

// lostError is the cause of a lease's loss. It matches ErrLockLost and,
// if set, err.
type lostError struct {
	why string
	err error
}

func (e *lostError) Error() string {
	if e.err != nil {
		return ErrLockLost.Error() + ": " + e.why + ": " + e.err.Error()
	}
	return ErrLockLost.Error() + ": " + e.why
}

func (e *lostError) Unwrap() []error {
	if e.err != nil {
		return []error{ErrLockLost, e.err}
	}
	return []error{ErrLockLost}
}

var (
	errExpired  = &lostError{why: "its TTL ran out"}
	errMaxHold  = &lostError{why: "the maximum hold time was reached"}
	errNotHeld  = &lostError{why: "the backend no longer held it"}
	errNotFreed = &lostError{why: "the backend no longer held it at release"}
)

// alsoLost is err, returned by a callback, and lost, the loss of its lock
// before it returned: one line that matches both.
type alsoLost struct{ err, lost error }

func (e *alsoLost) Error() string   { return e.err.Error() + " (" + e.lost.Error() + ")" }
func (e *alsoLost) Unwrap() []error { return []error{e.err, e.lost} }

// keyString is key as messages show it (see keys.Short).
func keyString(key string) string { return keys.Short(key) }

// ended reports whether ctx has ended, or its deadline has passed although
// its timer has not fired yet (a client's read deadline can fire first).
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// ctxError is ctx's error once [ended] is true.
func ctxError(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return context.DeadlineExceeded
}
