package xsync

import (
	"fmt"
	"time"
)

// DefaultTTL is the TTL of a lock taken through a [Client] without
// [WithTTL].
const DefaultTTL = 10 * time.Second

// DefaultRetryInterval is how often a waiting acquisition tries again at
// most, when no release notification wakes it first.
const DefaultRetryInterval = 100 * time.Millisecond

// WaitForever makes [WithWait] wait until the context ends.
const WaitForever time.Duration = -1

// MaxOwnerLen is the longest owner description [WithOwner] accepts.
const MaxOwnerLen = 256

// AcquireOption configures one acquisition: [Client.Acquire], [Client.Run]
// and the same calls of every lock type.
type AcquireOption func(*spec)

// spec is everything that shapes one acquisition and its hold.
type spec struct {
	ttl      time.Duration
	wait     time.Duration // > 0: give up once it has passed; WaitForever: when ctx ends
	retries  int32         // timed retries after the first attempt; -1: as many as the wait allows
	interval time.Duration
	extend   bool
	maxHold  time.Duration
	owner    string
	atLeast  time.Duration
	run      bool // the hold is a Run's: its events say so
	err      error
}

// WithTTL sets the lock's TTL (default [DefaultTTL]). It must be at least
// a millisecond; backends round it up to their precision (etcd: whole
// seconds, at least 2s), and the lease trusts only what was asked. A TTL
// that the backend can trust for none of its length (Redlock: within its
// allowance for clock drift, about 2ms) is [ErrInvalid].
func WithTTL(ttl time.Duration) AcquireOption {
	return func(s *spec) {
		if ttl < time.Millisecond {
			s.err = fmt.Errorf("%w: ttl %v: must be at least 1ms", ErrInvalid, ttl)
		}
		s.ttl = ttl
	}
}

// WithWait sets how long to wait for a held lock: 0 (the default) makes
// one attempt; d > 0 tries again until d has passed on the client's clock
// (a deadline, not a number of attempts); [WaitForever] waits until ctx
// ends. A waiter tries again as soon as the backend reports a release,
// and otherwise every [DefaultRetryInterval] or so.
func WithWait(d time.Duration) AcquireOption {
	return func(s *spec) {
		if d < 0 && d != WaitForever {
			s.err = fmt.Errorf("%w: wait %v: must be >= 0 or WaitForever", ErrInvalid, d)
		}
		s.wait = d
	}
}

// WithRetryInterval sets the longest time between two timed attempts
// while waiting (default [DefaultRetryInterval]); each wait is random
// between interval/2 and interval. Where the backend keeps its waiters'
// places (Redis's and etcd's queues; every backend's waiting writers), a
// waiter's place stays alive for its keep time, max(3 × interval, 1s),
// after each attempt: a caller that dies while waiting holds the others
// back for its keep time as the backend rounds it (etcd: up to whole
// seconds and at least 2s, plus its expiry delay; see each backend's
// documentation).
func WithRetryInterval(d time.Duration) AcquireOption {
	return func(s *spec) {
		if d <= 0 {
			s.err = fmt.Errorf("%w: retry interval %v: must be > 0", ErrInvalid, d)
		}
		s.interval = d
	}
}

// WithAutoExtend renews the lock every TTL/3 for as long as the lease is
// held (until Release, or until the callback of Run returns). maxHold > 0
// caps the hold: the lease is lost maxHold after the lock was requested;
// 0 means no cap. It needs a backend that can refresh the lock.
func WithAutoExtend(maxHold time.Duration) AcquireOption {
	return func(s *spec) {
		if maxHold < 0 {
			s.err = fmt.Errorf("%w: max hold %v: must be >= 0", ErrInvalid, maxHold)
		}
		s.extend, s.maxHold = true, maxHold
	}
}

// WithOwner adds caller to the owner metadata stored with the lock, after
// the default host/pid: what an operator sees with [Client.Inspect]. It
// never affects who holds the lock. At most [MaxOwnerLen] bytes in all;
// backends that cannot store metadata ignore it.
func WithOwner(caller string) AcquireOption {
	return func(s *spec) {
		s.owner = defaultOwner + " " + caller
		if len(s.owner) > MaxOwnerLen {
			s.err = fmt.Errorf("%w: owner of %d bytes: at most MaxOwnerLen (%d) in all", ErrInvalid, len(s.owner), MaxOwnerLen)
		}
	}
}

// WithHoldAtLeast keeps the lock until at least d after it was requested,
// even if it is released earlier (ShedLock's lockAtLeastFor): a job
// scheduled on several replicas whose clocks or ticks differ then runs
// once per period. Release before that moment sets the lock to expire
// then instead (a refresh), and Run's release does the same. On a backend
// that cannot refresh, the TTL must cover d.
func WithHoldAtLeast(d time.Duration) AcquireOption {
	return func(s *spec) {
		if d < 0 {
			s.err = fmt.Errorf("%w: hold at least %v: must be >= 0", ErrInvalid, d)
		}
		s.atLeast = d
	}
}

// spec applies opts to the client's defaults.
func (c *Client) spec(opts []AcquireOption) (spec, error) {
	s := spec{ttl: DefaultTTL, interval: DefaultRetryInterval, owner: c.owner}
	for _, o := range opts {
		o(&s)
	}
	if s.wait != 0 {
		s.retries = -1
	}
	return s, s.err
}

// MaxKeyLen is the longest key xsync accepts, in bytes, on every backend.
// A lock key names a resource ("checkin:42:20261127"); a longer one is
// refused with [ErrInvalid] before it reaches a backend (etcd, for one,
// refuses requests from about 0.7 MiB of key).
const MaxKeyLen = 64 << 10

// checkKey validates a key.
func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalid)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: key %s: longer than MaxKeyLen (%d bytes)", ErrInvalid, keyString(key), MaxKeyLen)
	}
	return nil
}
