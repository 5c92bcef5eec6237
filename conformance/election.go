package conformance

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/wrap"
)

// The rules of elections (backend.Electioner): one leader, epochs that
// grow, observation in order with vacancies, handover at resignation,
// failover at the TTL, and Election.Lead's loop.

func needElection(e *env) {
	if _, ok := e.l.(backend.Electioner); !ok {
		e.t.Skip("the backend has no election (no backend.Electioner)")
	}
}

// electionsNotify reports whether the backend wakes a waiting candidate.
func (e *env) electionsNotify() bool {
	_, ok := e.l.(backend.Electioner).Election(e.key("probe")).(backend.Watcher)
	return ok
}

// electionOneLeader: candidates on separate clients under Lead never lead
// at once, and each leads in turn; an election is apart from the mutex of
// its name.
func electionOneLeader(e *env) {
	needElection(e)
	name := e.key("e")
	m, err := e.client().Acquire(e.ctx, name, xsync.WithTTL(e.longTTL()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer e.mustRelease(m, "the mutex of the election's name")
	const n = 4
	var leaders, served atomic.Int32
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		c := e.separate()
		wg.Go(func() {
			errs <- c.Election(name).Lead(e.ctx, func(ctx context.Context) error {
				if got := leaders.Add(1); got != 1 {
					e.t.Errorf("candidate %d leads while %d others do", i, got-1)
				}
				select {
				case <-time.After(typesHold):
				case <-ctx.Done():
				}
				leaders.Add(-1)
				served.Add(1)
				return errStepDown // the leader steps down: the next one leads
			}, xsync.WithTTL(e.longTTL()), xsync.WithRetryInterval(50*time.Millisecond))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, errStepDown) {
			e.t.Errorf("Lead = %v; want its fn's error", err)
		}
	}
	if served.Load() != n {
		e.t.Errorf("%d terms served; want %d, one per candidate", served.Load(), n)
	}
}

// errStepDown is what a rule's leader returns to step down.
var errStepDown = errors.New("step down")

// electionEpochGrows: every new term's epoch is larger than every earlier
// one's (unique, on a backend whose tokens do not fence), across
// candidates.
func electionEpochGrows(e *env) {
	needElection(e)
	name := e.key("e")
	var last xsync.Item
	for i := range 5 {
		term, err := e.separate().Election(name).Campaign(e.ctx, xsync.WithTTL(e.longTTL()), xsync.WithOwner("candidate"))
		if err != nil {
			e.t.Fatalf("campaign %d on a free election: %v", i, err)
		}
		if term.Epoch() <= 0 {
			e.t.Fatalf("epoch %d; want > 0", term.Epoch())
		}
		if i > 0 {
			e.checkNewer(last, term.Epoch())
		}
		last = term.Epoch()
		if ok, err := term.Resign(e.ctx); !ok || err != nil {
			e.t.Fatalf("resign = (%v, %v); want (true, nil)", ok, err)
		}
	}
}

// electionObserve: Observe reports the state it starts in, every new
// leader with its epoch and identity, and every vacancy, in order.
func electionObserve(e *env) {
	needElection(e)
	name := e.key("e")
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	seen, err := e.client().Election(name).Observe(ctx)
	if err != nil {
		e.t.Fatalf("Observe: %v", err)
	}
	next := func(what string) xsync.Leader {
		e.t.Helper()
		select {
		case l, ok := <-seen:
			if !ok {
				e.t.Fatalf("Observe's channel closed before %s", what)
			}
			return l
		case <-time.After(e.opts.Timeout / 4):
			e.t.Fatalf("Observe did not report %s", what)
		}
		return xsync.Leader{}
	}
	if l := next("the state at the start"); l.Held {
		e.t.Fatalf("first value %+v; want no leader", l)
	}
	for i := range 3 {
		term, err := e.separate().Election(name).Campaign(e.ctx, xsync.WithTTL(e.longTTL()), xsync.WithOwner("observed-candidate"))
		if err != nil {
			e.t.Fatal(err)
		}
		l := next("a new leader")
		if !l.Held || l.Epoch != term.Epoch() {
			e.t.Fatalf("term %d: Observe reported %+v; want the leader of epoch %d", i, l, term.Epoch())
		}
		if !e.opts.NoOwner && !containsOwner(l.Identity, "observed-candidate") {
			e.t.Errorf("Observe's identity %q; want it to contain the candidate's", l.Identity)
		}
		if ok, err := term.Resign(e.ctx); !ok || err != nil {
			e.t.Fatalf("resign = (%v, %v)", ok, err)
		}
		if l := next("the vacancy after a resignation"); l.Held {
			e.t.Fatalf("after resigning term %d, Observe reported %+v; want no leader", term.Epoch(), l)
		}
	}
	// A term that expires: the vacancy is reported once its TTL passed.
	if _, err := e.separate().Election(name).Campaign(e.ctx, xsync.WithTTL(e.opts.MinTTL), xsync.WithAutoExtend(e.opts.MinTTL)); err != nil {
		e.t.Fatal(err)
	}
	if l := next("a leader that will vanish"); !l.Held {
		e.t.Fatalf("Observe reported %+v; want a leader", l)
	}
	start := time.Now()
	if l := next("the vacancy at the vanished leader's expiry"); l.Held {
		e.t.Fatalf("Observe reported %+v; want no leader once the term expired", l)
	}
	e.t.Logf("Observe reported the vacancy %v after the term's cap", time.Since(start).Round(time.Millisecond))
}

func containsOwner(identity, owner string) bool {
	return len(identity) >= len(owner) && identity[len(identity)-len(owner):] == owner
}

// electionResignHandsOver: a candidate waiting in Campaign leads soon
// after the leader resigns: where the backend wakes waiters, well before
// its retry interval.
func electionResignHandsOver(e *env) {
	needElection(e)
	name := e.key("e")
	leader, err := e.separate().Election(name).Campaign(e.ctx, xsync.WithTTL(e.longTTL()))
	if err != nil {
		e.t.Fatal(err)
	}
	notifies := e.electionsNotify()
	interval := time.Second
	if notifies {
		interval = time.Minute
	}
	held := newSignal()
	standby := e.separateInstrumented(held.fire)
	got := make(chan *xsync.Term, 1)
	errc := make(chan error, 1)
	go func() {
		t, err := standby.Election(name).Campaign(e.ctx, xsync.WithTTL(e.longTTL()), xsync.WithRetryInterval(interval))
		if err != nil {
			errc <- err
			return
		}
		got <- t
	}()
	e.await(held, "the standby to find the election led")
	resigned := time.Now()
	if ok, err := leader.Resign(e.ctx); !ok || err != nil {
		e.t.Fatalf("resign = (%v, %v)", ok, err)
	}
	select {
	case t := <-got:
		took := time.Since(resigned)
		e.t.Logf("the standby led %v after the resignation (notification: %v)", took, notifies)
		if notifies && took > interval/4 {
			e.t.Errorf("with notification the standby led %v after the resignation; its retry interval is %v", took, interval)
		}
		e.checkNewer(leader.Epoch(), t.Epoch())
		e.mustRelease(t.Lease, "the new term")
	case err := <-errc:
		e.t.Fatalf("the standby's campaign: %v", err)
	case <-e.ctx.Done():
		e.t.Fatal("the standby never led")
	}
}

// separateInstrumented is a Client on a new Locker of the store whose
// attempts call onHeld when they find the lock held.
func (e *env) separateInstrumented(onHeld func()) *xsync.Client {
	w := &wrap.Locker{Base: e.h.Locker(e.t)}
	w.Hooks.Acquire = func(ctx context.Context, _ wrap.Ref, base backend.Lock, r backend.Request) (int64, error) {
		tok, err := base.Acquire(ctx, r)
		if tok == 0 && err == nil {
			onHeld()
		}
		return tok, err
	}
	return xsync.NewClient(w)
}

// electionFailover: a leader that vanishes (neither renews nor resigns)
// is replaced once its term's TTL has passed, within the backend's
// expiry tolerance and a retry interval.
func electionFailover(e *env) {
	needElection(e)
	name := e.key("e")
	ttl := e.ttl()
	vanished, err := e.separate().Election(name).Campaign(e.ctx, xsync.WithTTL(ttl), xsync.WithAutoExtend(ttl)) // renewals stop at the cap
	if err != nil {
		e.t.Fatal(err)
	}
	start := time.Now()
	const interval = 100 * time.Millisecond
	t, err := e.separate().Election(name).Campaign(e.ctx, xsync.WithTTL(e.longTTL()), xsync.WithRetryInterval(interval))
	if err != nil {
		e.t.Fatalf("the standby's campaign: %v", err)
	}
	took := time.Since(start)
	e.t.Logf("a vanished leader (TTL %v, renewed until %v) was replaced %v after it was elected", ttl, ttl, took.Round(time.Millisecond))
	if took < ttl {
		e.t.Errorf("the standby led %v after a leader whose term lasts %v at least", took, ttl)
	}
	if limit := 2*ttl + e.opts.ExpiryTolerance + interval + time.Second; took > limit {
		e.t.Errorf("a vanished leader held the election %v; want at most %v", took, limit)
	}
	e.checkNewer(vanished.Epoch(), t.Epoch())
	e.mustRelease(t.Lease, "the new term")
}

// electionLeadRecampaigns: under Lead, a term lost while fn runs (an
// operator forced the election free) ends fn's context with ErrLockLost;
// Lead waits for fn to return before it lets go, then campaigns again and
// leads a new term.
func electionLeadRecampaigns(e *env) {
	needElection(e)
	name := e.key("e")
	operator := e.client().Election(name)
	if _, ok := e.l.(backend.Electioner).Election(e.key("probe")).(backend.ForceReleaser); !ok {
		e.t.Skip("the backend cannot force an election free")
	}
	type term struct {
		epoch xsync.Item
		cause error
	}
	started, terms := make(chan xsync.Item, 4), make(chan term, 4)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- e.separate().Election(name).Lead(ctx, func(fctx context.Context) error {
			epoch := xsync.ItemFromContext(fctx)
			started <- epoch
			<-fctx.Done()
			terms <- term{epoch, context.Cause(fctx)}
			return nil
		}, xsync.WithTTL(e.ttl()), xsync.WithRetryInterval(50*time.Millisecond))
	}()
	next := func(what string) xsync.Item {
		e.t.Helper()
		select {
		case epoch := <-started:
			return epoch
		case <-e.ctx.Done():
			e.t.Fatalf("Lead never ran fn for %s", what)
		}
		return 0
	}
	first := next("a first term")
	if l, err := operator.Leader(e.ctx); err != nil || !l.Held || l.Epoch != first {
		e.t.Fatalf("while fn runs for term %d: leader %+v, %v", first, l, err)
	}
	forceElection(e, name)
	t1 := <-terms
	if !errors.Is(t1.cause, xsync.ErrLockLost) || t1.epoch != first {
		e.t.Fatalf("the forced-out term %d ended fn's context with %v; want term %d, ErrLockLost", t1.epoch, t1.cause, first)
	}
	second := next("a term after the loss")
	e.checkNewer(first, second)
	cancel()
	if t2 := <-terms; t2.epoch != second {
		e.t.Fatalf("the second term's fn ended for epoch %d; it ran for %d", t2.epoch, second)
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		e.t.Fatalf("Lead after ctx ended = %v; want context.Canceled", err)
	}
	if l, err := operator.Leader(e.ctx); err != nil || l.Held {
		e.t.Fatalf("after Lead returned: leader %+v, %v; want none (it resigned)", l, err)
	}
}

// forceElection frees the election as an operator would.
func forceElection(e *env, name string) {
	e.t.Helper()
	lk := e.l.(backend.Electioner).Election(name)
	if ok, err := lk.(backend.ForceReleaser).ForceRelease(e.ctx); !ok || err != nil {
		e.t.Fatalf("force release of the election = (%v, %v); want (true, nil)", ok, err)
	}
}

// electionLeadWaitsForFn: when Lead's ctx ends, fn's context ends, and
// Lead resigns only after fn returned: the election stays led while fn
// still runs.
func electionLeadWaitsForFn(e *env) {
	needElection(e)
	name := e.key("e")
	operator := e.client().Election(name)
	ctx, cancel := context.WithCancel(e.ctx)
	started, ended := make(chan struct{}), make(chan struct{})
	finish := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- e.separate().Election(name).Lead(ctx, func(fctx context.Context) error {
			close(started)
			<-fctx.Done()
			close(ended)
			<-finish // fn is still winding down
			return nil
		}, xsync.WithTTL(e.longTTL()))
	}()
	select {
	case <-started:
	case <-e.ctx.Done():
		e.t.Fatal("Lead never ran fn")
	}
	cancel()
	<-ended
	if l, err := operator.Leader(e.ctx); err != nil || !l.Held {
		e.t.Fatalf("while fn still ran after ctx ended: leader %+v, %v; want still led", l, err)
	}
	close(finish)
	if err := <-done; !errors.Is(err, context.Canceled) {
		e.t.Fatalf("Lead = %v; want context.Canceled", err)
	}
	if l, err := operator.Leader(e.ctx); err != nil || l.Held {
		e.t.Fatalf("after Lead returned: leader %+v, %v; want none", l, err)
	}
}
