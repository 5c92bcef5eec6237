package xsync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// Election is the leader election of one name across every client of the
// store: at most one candidate leads at a time, for a term with an epoch
// (its token), until it resigns or its term is lost. An election is a
// lock of its own kind, apart from the mutex of the same key, held the
// way every lock is held: the engine that takes, renews and releases
// leases takes, renews and resigns terms.
//
// What is guaranteed is what the backend guarantees of its locks (see its
// package documentation): at most one leader within its term's validity;
// on fencing backends (memory, redis, etcd) every term's epoch is larger
// than every earlier term's, so a resource that remembers the largest
// epoch it has seen rejects a deposed leader's writes; Redlock's epochs
// are unique, not fencing. A leader that stalls past its TTL (a GC pause,
// a frozen VM) has its term end at the validity deadline on its own
// clock, and [Election.Lead] cancels its work then; a leader that ignores
// that can overlap with the next one.
type Election struct {
	c    *Client
	name string
}

// Election returns the election of name. A bad name is reported by its
// methods.
func (c *Client) Election(name string) *Election { return &Election{c: c, name: name} }

func (e *Election) target() (target, error) {
	if err := checkKey(e.name); err != nil {
		return target{}, err
	}
	b, ok := e.c.l.(backend.Electioner)
	if !ok {
		return target{}, e.c.unsupported("election")
	}
	lk := b.Election(e.name)
	if lk == nil { // a wrapper of a backend without elections
		return target{}, e.c.unsupported("election")
	}
	return target{lock: lk, kind: "election", name: e.name}, nil
}

// Term is one candidate's term as leader: a [Lease] on the election,
// renewed by auto-extension unless the campaign's options said otherwise.
// Its token is the term's epoch; Done closes when the term ends (lost:
// Err matches [ErrLockLost]; resigned: [ErrReleased]).
type Term struct {
	*Lease
}

// Epoch is the term's epoch: its fencing token on fencing backends.
func (t *Term) Epoch() Item { return t.Token() }

// Resign ends the term and frees the election for the next candidate,
// who takes over within about a round trip where the backend wakes
// waiters. It reports whether the term still held the election.
func (t *Term) Resign(ctx context.Context) (bool, error) { return t.Release(ctx) }

// Campaign waits until this candidate leads, and returns its term. The
// options are those of [Client.Acquire], with two defaults of its own: it
// waits until ctx ends ([WaitForever]; WithWait sets a limit) and its term
// is renewed by auto-extension for as long as it holds
// (WithAutoExtend(0)). [WithOwner] is the candidate's identity, which
// [Election.Leader] and [Election.Observe] show (after host/pid). The
// errors are those of Acquire: [ErrMissingLock] if another candidate led
// for the whole wait.
func (e *Election) Campaign(ctx context.Context, opts ...AcquireOption) (*Term, error) {
	t, err := e.target()
	if err != nil {
		return nil, err
	}
	all := append([]AcquireOption{WithWait(WaitForever), WithAutoExtend(0)}, opts...)
	l, err := e.c.acquire(ctx, &t, all)
	if err != nil {
		return nil, err
	}
	return &Term{l}, nil
}

// Leader is who leads an election, as its backend sees it.
type Leader struct {
	Name     string // the election's name
	Held     bool   // somebody leads; false: no leader
	Epoch    Item   // the leader's epoch (0 if none)
	Identity string // the leader's owner metadata, where the backend stores it
	// TTL is how long the leader's term has left on the server's clock
	// unless it is renewed.
	TTL time.Duration
}

// same reports whether a and b name the same term (or both no leader).
func (a Leader) same(b Leader) bool {
	return a.Held == b.Held && a.Epoch == b.Epoch && a.Identity == b.Identity
}

// Leader reads who leads the election now. It changes nothing.
func (e *Election) Leader(ctx context.Context) (Leader, error) {
	t, err := e.target()
	if err != nil {
		return Leader{}, err
	}
	return e.leader(ctx, &t)
}

func (e *Election) leader(ctx context.Context, t *target) (Leader, error) {
	in, err := e.c.inspect(ctx, t, "election")
	if err != nil {
		return Leader{}, err
	}
	return Leader{Name: e.name, Held: in.Held, Epoch: in.Token, Identity: in.Owner, TTL: in.TTL}, nil
}

// ForceRelease ends the current term whoever leads, as an operator moves
// leadership: the leader learns of it at its next renewal (its term is
// then lost), waiting candidates are woken, and epochs keep growing. It
// reports whether anybody led.
func (e *Election) ForceRelease(ctx context.Context) (bool, error) {
	t, err := e.target()
	if err != nil {
		return false, err
	}
	return e.c.forceRelease(ctx, &t, "election")
}

// observeInterval is how often Observe reads the leader of a backend that
// cannot tell of changes, and how long it waits before reading again
// after a failed read.
const observeInterval = time.Second

// Observe reports every change of the election's leader, in order, until
// ctx ends: first the state when it starts, then a value each time the
// leader changes, including to no leader (a resignation, or a term that
// expired). Between two terms there is always a vacancy (terms do not
// overlap within their validity), and Observe reports one even where it
// read the second term before it saw the first end. Consecutive reads of
// the same term coalesce; values are never dropped or reordered (they
// queue while the reader is slow). The channel is closed when ctx ends.
//
// It listens to the backend's notification of changes where it has one
// (Redis pub/sub, an etcd watch, the memory backend's channels), reads
// the leader again when the leader's TTL runs out, and otherwise reads it
// every second. A read that fails is tried again a second later; Observe
// returns an error only if the election cannot be observed at all.
func (e *Election) Observe(ctx context.Context) (<-chan Leader, error) {
	t, err := e.target()
	if err != nil {
		return nil, err
	}
	if _, ok := t.lock.(backend.Inspector); !ok {
		return nil, fmt.Errorf("xsync: observe election %s: %s cannot inspect it: %w", keyString(e.name), e.c.name, errors.ErrUnsupported)
	}
	var changes <-chan struct{}
	stop := func() {}
	if n, ok := t.lock.(backend.Notifier); ok {
		ch, s, err := n.Changes(ctx)
		if err != nil && !errors.Is(err, errors.ErrUnsupported) {
			return nil, fmt.Errorf("xsync: observe election %s on %s: %w", keyString(e.name), e.c.name, err)
		}
		if err == nil {
			changes, stop = ch, s
		}
	}
	out := make(chan Leader)
	go func() {
		defer close(out)
		defer stop()
		e.observe(ctx, &t, changes, out)
	}()
	return out, nil
}

// observe is Observe's loop: it reads the leader when told of a change or
// when a timer says, and hands the changes out in order.
func (e *Election) observe(ctx context.Context, t *target, changes <-chan struct{}, out chan<- Leader) {
	var (
		queue []Leader
		last  Leader
		first = true
		timer ticker
		tick  <-chan time.Time
	)
	timer.clock = e.c.clock
	defer timer.done()
	read := func() {
		next := observeInterval
		l, err := e.leader(ctx, t)
		if err == nil && (first || !l.same(last)) {
			if !first && last.Held && l.Held {
				queue = append(queue, Leader{Name: e.name}) // the vacancy between two terms
			}
			queue = append(queue, l)
			first, last = false, l
		}
		switch {
		case err == nil && l.Held && changes != nil:
			// The notification tells of grants and releases; the TTL,
			// of an expiry nobody announces.
			next = l.TTL + time.Millisecond
		case err == nil && l.Held:
			next = min(observeInterval, l.TTL+time.Millisecond)
		case err == nil && changes != nil:
			next = 0 // nothing to expire: wait for a change
		}
		timer.done() // the previous wait, if it has not fired
		tick = nil
		if next > 0 {
			tick = timer.wait(next)
		}
	}
	read()
	for {
		var send chan<- Leader
		var head Leader
		if len(queue) > 0 {
			send, head = out, queue[0]
		}
		select {
		case send <- head:
			queue = queue[1:]
		case <-ctx.Done():
			return
		case <-changes:
			read()
		case <-tick:
			read()
		}
	}
}

// Lead runs fn whenever this candidate leads, until ctx ends: it
// campaigns (with the options of [Election.Campaign]), runs fn with a
// context that carries the epoch ([ItemFromContext]) and ends when the
// term is lost, waits for fn to return, resigns, and campaigns again.
// It never resigns while fn runs: when ctx ends it cancels fn's context,
// waits for fn, then resigns.
//
// Lead returns ctx's cause once ctx ends; fn's error if fn returns one
// while it still leads and ctx has not ended (after resigning: a leader
// whose work fails steps down and lets the caller decide); and at once,
// bad input or a backend without elections. A term lost while fn ran
// (fn's context then ends with a cause matching [ErrLockLost]) is not an
// error: Lead waits for fn and campaigns again. A campaign that fails
// (the backend is down) is tried again after the retry interval. An fn
// that returns nil while it still leads makes Lead resign and campaign
// again at once, with no pause: fn should run until its context ends,
// or return an error to stop Lead.
func (e *Election) Lead(ctx context.Context, fn func(ctx context.Context) error, opts ...AcquireOption) error {
	if fn == nil {
		return fmt.Errorf("%w: nil callback", ErrInvalid)
	}
	t, err := e.target()
	if err != nil {
		return err
	}
	s, err := e.c.spec(append([]AcquireOption{WithWait(WaitForever), WithAutoExtend(0)}, opts...))
	if err != nil {
		return err
	}
	if err := e.c.check(&t, &s); err != nil {
		return err
	}
	var pause ticker
	pause.clock = e.c.clock
	defer pause.done()
	for {
		term, err := e.Campaign(ctx, opts...)
		switch {
		case ctx.Err() != nil:
			if term != nil {
				term.Resign(context.WithoutCancel(ctx))
			}
			return context.Cause(ctx)
		case err != nil:
			// The backend failed: campaign again after a pause.
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-pause.wait(s.interval):
			}
			continue
		}
		if err := e.serve(ctx, term, fn); err != nil || ctx.Err() != nil {
			if err != nil {
				return err
			}
			return context.Cause(ctx)
		}
	}
}

// serve runs fn for term and resigns after it returned. It returns fn's
// error if fn failed while it still led and ctx had not ended.
func (e *Election) serve(ctx context.Context, term *Term, fn func(ctx context.Context) error) error {
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lost := make(chan struct{})
	go func() {
		defer close(lost)
		select {
		case <-term.Done():
			if err := term.Err(); errors.Is(err, ErrLockLost) {
				cancel(err)
			}
		case <-fctx.Done():
		}
	}()
	err := fn(&itemCtx{Context: fctx, item: term.Epoch()})
	cancel(nil)
	<-lost
	leading := term.Err() == nil
	// fn has returned: only now may the term end.
	term.Resign(context.WithoutCancel(ctx))
	if err != nil && leading && ctx.Err() == nil {
		return err
	}
	return nil
}
