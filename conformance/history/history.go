// Package history checks what xsync's backends claim the way Jepsen and
// etcd's robustness tests do: several clients contend for a few locks of
// every kind the backend has while a [Nemesis] injects faults on a
// schedule (the backend's tests build it from their containers: pause,
// kill and restart, a cut network; or [FreezeClient] through a
// conformance.Faulter), every backend call is recorded on one monotonic
// clock, and the whole history is checked: by porcupine
// (github.com/anishathalye/porcupine) against a model of a mutex with
// expiry, and directly for what a sequential model cannot say (overlaps
// within each kind's rule, stale writes on a fenced resource, how late
// lost-lock signals came, orphaned and unexplained locks). [Expect] says
// what a fault may break according to the backend's documentation;
// everything else fails the test.
//
// A cell (a backend under one fault) runs a few seconds by default;
// [DurationEnv] soaks it for longer, and [ReportEnv] collects the reports
// (docs/run-soak.sh turns them into docs/safety.md). It stands beside the
// conformance suite, which states each rule once: a third-party backend
// runs the suite, and may run histories too.
package history

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/conformance"
)

// DurationEnv, when set to a duration ("60s"), overrides how long
// every history runs: CI keeps the default of a few seconds per cell; a
// release check soaks each cell for minutes.
const DurationEnv = "XSYNC_HISTORY_DURATION"

// ReportEnv names a file to which [Run] appends each
// report as one line of JSON (the input of docs/safety.md).
const ReportEnv = "XSYNC_HISTORY_REPORT"

// Options shape one history. The zero value runs 3 clients × 3
// goroutines on 2 keys for 6 seconds, without faults.
type Options struct {
	// Name names the cell (backend and fault) in logs and reports.
	Name string
	// Clients is how many independent Lockers (separate connections, as
	// separate processes would have) contend. Zero means 3.
	Clients int
	// Workers is how many goroutines use each client. Zero means 3.
	Workers int
	// Keys is how many keys they contend for. Zero means 2.
	Keys int
	// Kinds are the kinds of lock the workers take, each operation one
	// of them at random: KindMutex (through the seed API: Lock, Unlock,
	// Run), KindSemaphore (of Permits permits), KindRW (a read or a
	// write), KindKeys (two of the keys at once, which are also the
	// mutexes' keys), KindElection (a campaign's term, or a term under
	// Election.Lead). Nil means KindMutex alone.
	Kinds []Kind
	// TTL is the locks' TTL, rounded up to whole seconds (Lock takes
	// seconds). Zero means the harness's Limits.MinTTL.
	TTL time.Duration
	// Duration is how long new operations start; [DurationEnv]
	// overrides it. Zero means 6 seconds, or with a nemesis, long enough
	// for one fault (Calm + Length + 2 TTLs) if that is longer.
	Duration time.Duration
	// StallEvery makes one hold in StallEvery stall past its validity
	// while ignoring its context, as in a long GC pause (each other hold
	// works up to TTL/8). Zero means 12; negative means never. A fault
	// whose weakness must show (Expect.MustOverlap) needs holders that act
	// across it: give such cells more stalls (3 does for a restart).
	StallEvery int
	// Nemesis injects faults on a schedule; nil means none.
	Nemesis *Nemesis
	// Expect says what the fault may break; the zero value says nothing
	// may break.
	Expect Expect
}

// Kind is a kind of lock a history's workers take.
type Kind string

// The kinds of lock.
const (
	KindMutex     Kind = "mutex"
	KindSemaphore Kind = "semaphore"
	KindRW        Kind = "rw"
	KindKeys      Kind = "keys"
	KindElection  Kind = "election"
)

// AllKinds are the kinds of lock.
var AllKinds = []Kind{KindMutex, KindSemaphore, KindRW, KindKeys, KindElection}

// Permits is the limit of the semaphores a history takes.
const Permits = 2

// Expect is what a backend's documentation allows under a fault. Whatever
// it says, a history must never show a release of another holder's lock,
// a late or missing lost-lock signal, or a lock nobody could hold; and on
// a fencing backend, tokens that do not grow or a stale write accepted.
type Expect struct {
	// MayOverlap allows two holders inside their validity windows at the
	// same time (a store that forgets locks, such as Redis restarted
	// without persistence).
	MayOverlap bool
	// MustOverlap requires the history to show such an overlap, and the
	// linearizability check to reject it: the proof that the checker
	// catches the documented weakness. It implies MayOverlap.
	MustOverlap bool
	// MayOrphan allows attempts to find a key held by an acquisition that
	// failed (its outcome unknown to its caller) until that lock's TTL
	// has passed.
	MayOrphan bool
}

// Nemesis is a fault schedule: after Calm, Inject; after Length, Heal;
// again until the history ends, always healed before it does. Inject and
// Heal run on the test's goroutine and may fail the test.
type Nemesis struct {
	// Name names the fault in reports.
	Name string
	// Inject starts the fault and Heal ends it; Heal returns once the
	// store serves again (a restarted server is up).
	Inject, Heal func(t *testing.T)
	// Length is how long each fault lasts. Zero means twice the TTL.
	Length time.Duration
	// Calm is how long the store runs without the fault before each
	// injection. Zero means twice the TTL.
	Calm time.Duration
	// Renews is how much longer than a whole TTL after the heal the store
	// may keep what lived through the fault (locks, waiters' places): a
	// new etcd leader extends every lease by its election timeout.
	Renews time.Duration

	client func(conformance.Fault) (inject, heal func()) // for faults of one client's link
}

// FreezeClient returns a nemesis that holds every reply to one of the
// history's clients for d (the store still gets the requests at once): a
// stalled link or a frozen client process, during which its renewals
// hang. It needs a [Faulter] harness.
func FreezeClient(d time.Duration) *Nemesis {
	return &Nemesis{
		Name: "freeze-client",
		client: func(f conformance.Fault) (func(), func()) {
			return func() { f.Delay(d) }, f.Heal
		},
	}
}

// schedule returns how long each fault lasts and the calm before it.
func (n *Nemesis) schedule(ttl time.Duration) (length, calm time.Duration) {
	length, calm = n.Length, n.Calm
	if length == 0 {
		length = 2 * ttl
	}
	if calm == 0 {
		calm = 2 * ttl
	}
	return length, calm
}

func (o Options) withDefaults(t *testing.T, ttl time.Duration) Options {
	if o.Clients == 0 {
		o.Clients = 3
	}
	if o.Workers == 0 {
		o.Workers = 3
	}
	if o.Keys == 0 {
		o.Keys = 2
	}
	if o.Duration == 0 {
		o.Duration = 6 * time.Second
		if n := o.Nemesis; n != nil {
			length, calm := n.schedule(ttl)
			o.Duration = max(o.Duration, calm+length+2*ttl)
		}
	}
	if s := os.Getenv(DurationEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a positive duration such as 60s", DurationEnv, s)
		}
		o.Duration = d
	}
	if o.StallEvery == 0 {
		o.StallEvery = 12
	}
	if o.Expect.MustOverlap {
		o.Expect.MayOverlap = true
	}
	if o.Name == "" {
		o.Name = t.Name()
	}
	if len(o.Kinds) == 0 {
		o.Kinds = []Kind{KindMutex}
	}
	return o
}

// Run records a concurrent history on the store behind h while the
// nemesis injects its faults, checks it, and fails t where the history
// breaks a claim that opts.Expect does not waive.
//
// Clients, each a Locker from h, and their goroutines contend for a few
// keys with the TTL of h's Limits.MinTTL. Each goroutine, in turn: takes a
// lock with Lock and releases it with Unlock; or runs a callback under Run
// (waiting for the key); or under Run with auto-extension. Every holder
// writes its token to a model resource that rejects a token smaller than
// one it has accepted (the README's fencing recipe), works a little, and
// writes again; some stall past their validity ignoring their context,
// and write after it. Every backend call is recorded with its invocation
// and return time on one monotonic clock.
//
// The checks, all conservative (no false alarm from measurement):
//
//   - no two holders inside their validity windows at once (direct count,
//     and porcupine's linearizability check of a lock-with-expiry model);
//   - with fencing, a hold requested after another was granted has a larger
//     token, and the resource never accepts a stale write;
//   - every callback that outlives its lock has its context ended by the
//     validity deadline (within scheduling tolerance), with a cause and a
//     Run error matching xsync.ErrLockLost;
//   - no release or renewal succeeds on a lock its token no longer holds;
//   - every attempt that found a key held is explained by a holder, a
//     waiter's place, an attempt in flight, or a failed acquisition whose
//     lock may linger until its TTL (an orphan, allowed only under
//     faults); a fault that begins while any of these lives may renew it
//     for its whole TTL at the heal, as etcd renews its leases.
//
// Run returns the report and, if [ReportEnv] names a file,
// appends it there.
func Run(t *testing.T, h conformance.Harness, opts Options) Report {
	t.Helper()
	lim := h.Limits().WithDefaults()
	exp := int32((max(opts.TTL, lim.MinTTL) + time.Second - 1) / time.Second)
	ttl := time.Duration(exp) * time.Second
	o := opts.withDefaults(t, ttl)
	seed := uint64(time.Now().UnixNano())
	t.Logf("history %s: %d clients × %d goroutines on %d keys (%v) for %v, TTL %v, one hold in %d stalls; seed %d",
		o.Name, o.Clients, o.Workers, o.Keys, o.Kinds, o.Duration, ttl, o.StallEvery, seed)

	rec := newHistorian(!lim.NotFencing, lim.FIFO)
	rec.ttl = ttl
	names, clientFault := rec.clients(t, h, o)
	// One hash tag: a Redis Cluster takes several keys at once in one slot.
	keys := make([]string, o.Keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("{xsync-history:%x}:k%d", seed, i)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Also when a nemesis fails the test: no worker outlives it.
	stopWorkers := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWorkers()
	for c := range o.Clients {
		client, err := xsync.Registered(names[c])
		if err != nil {
			t.Fatal(err)
		}
		for w := range o.Workers {
			wk := &worker{rec: rec, name: names[c], c: client, client: c, keys: keys, kinds: o.Kinds, ttl: ttl, exp: exp,
				work: ttl / 8, stallEvery: o.StallEvery, stop: stop, rng: rand.New(rand.NewPCG(seed, uint64(c*1000+w)))}
			wg.Go(wk.loop)
		}
	}
	rec.schedule(t, o, ttl, clientFault)
	stopWorkers()

	hist := rec.history()
	rep := check(hist, checkLimits{fencing: !lim.NotFencing, tolerance: int64(lim.ExpiryTolerance), minTTL: int64(lim.MinTTL), late: int64(signalTolerance), orphans: o.Expect.MayOrphan})
	rep.Name, rep.Expect, rep.TTL, rep.Fencing, rep.Nemesis = o.Name, o.Expect, ttl, !lim.NotFencing, o.Nemesis != nil
	t.Logf("history %s: %s", o.Name, rep.summary())
	for _, v := range rep.Violations {
		t.Logf("  %s", v)
	}
	if path := os.Getenv(ReportEnv); path != "" {
		appendReport(t, path, rep)
	}
	for _, b := range rep.Breaches() {
		t.Errorf("history %s: %s", rep.Name, b)
	}
	return rep
}

// signalTolerance is how late after the lock's validity deadline the
// callback's context may end: scheduling only, as the core keeps that
// deadline with a timer of its own.
const signalTolerance = 250 * time.Millisecond

// clients registers each client of the history (a Locker of h, the first
// one faulty if the nemesis acts on a client's link) under a name of its
// own, wrapped to record every call.
func (r *historian) clients(t *testing.T, h conformance.Harness, o Options) ([]string, conformance.Fault) {
	var clientFault conformance.Fault
	names := make([]string, o.Clients)
	for c := range o.Clients {
		var l backend.Locker
		if c == 0 && o.Nemesis != nil && o.Nemesis.client != nil {
			f, ok := h.(conformance.Faulter)
			if !ok {
				t.Fatalf("nemesis %s needs a harness that implements conformance.Faulter", o.Nemesis.Name)
			}
			l, clientFault = f.Faulty(t)
		} else {
			l = h.Locker(t)
		}
		names[c] = fmt.Sprintf("history-%d:%s", c, t.Name())
		t.Cleanup(xsync.Swap(names[c], r.wrap(c, l)))
	}
	return names, clientFault
}

// schedule runs the nemesis's faults until the history's end, and
// returns then.
func (r *historian) schedule(t *testing.T, o Options, ttl time.Duration, clientFault conformance.Fault) {
	end := r.start.Add(o.Duration)
	if n := o.Nemesis; n != nil {
		inject, heal := n.Inject, n.Heal
		if n.client != nil {
			i, hl := n.client(clientFault)
			inject, heal = func(*testing.T) { i() }, func(*testing.T) { hl() }
		}
		length, calm := n.schedule(ttl)
		for time.Now().Add(calm + length + ttl).Before(end) {
			time.Sleep(calm) // the schedule: time must pass, nothing to await
			f := fault{start: r.now(), renew: int64(n.Renews)}
			inject(t)
			time.Sleep(length)
			heal(t)
			f.heal = r.now()
			r.mu.Lock()
			r.faults = append(r.faults, f)
			r.mu.Unlock()
		}
	}
	time.Sleep(time.Until(end))
}

// summary is the report in one line.
func (r Report) summary() string {
	return fmt.Sprintf("%d acquisitions (%d by Run, %d stalled, %d granted after their validity), %d contended, %d failed, %d faults; "+
		"overlaps %d (worst %v), token order %d, model %s; writes %d, stale rejected %d, stale accepted %d; "+
		"signals %d, late %d (worst %v), unreported %d; foreign releases %d; orphans %d (worst %v), phantoms %d; errors %v",
		r.Acquired, r.Runs, r.Stalled, r.LateGrant, r.Contended, r.Failed, r.Faults,
		r.Overlaps, short(r.WorstOverlap), r.TokenOrder, r.Model, r.Writes, r.StaleRejected, r.StaleAccepted,
		r.Signals, r.LateSignals, short(r.WorstLateness), r.LostUnreported, r.ForeignReleases,
		r.Orphans, short(r.WorstOrphan), r.Phantoms, r.Errors)
}

// short rounds d for a report: to the millisecond, or to the microsecond
// below one, so that a short breach does not read as none.
func short(d time.Duration) time.Duration {
	if d > -time.Millisecond && d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// Breaches returns the claims the history broke that its cell's Expect
// does not waive, one line each; none means the backend behaved as its
// documentation says under this fault.
func (r Report) Breaches() []string {
	var out []string
	count := func(what string, n int) {
		if n != 0 {
			out = append(out, fmt.Sprintf("%s: %d", what, n))
		}
	}
	if r.Acquired < 10 {
		out = append(out, fmt.Sprintf("only %d acquisitions: the history says too little", r.Acquired))
	}
	if r.Nemesis && r.Faults == 0 {
		out = append(out, "too short for one fault: lengthen it")
	}
	count("releases or renewals that succeeded on a lock held by a later holder (rule: owner-only release)", r.ForeignReleases)
	count("lost-lock signals late or missing (rule: the callback's context ends at the validity deadline)", r.LateSignals)
	count("callbacks that outlived their lock without ErrLockLost as the cause and in Run's error", r.LostUnreported)
	count("attempts that found a key held that nobody could hold", r.Phantoms)
	if r.Fencing {
		count("tokens that did not grow in grant order (rule: fencing tokens)", r.TokenOrder)
		count("stale writes the fenced resource accepted", r.StaleAccepted)
	}
	if !r.Expect.MayOverlap {
		count("pairs of holders inside their validity at the same time (rule: mutual exclusion)", r.Overlaps)
		if r.Model == "Illegal" {
			out = append(out, "not linearizable as a lock with expiry")
		}
	}
	if r.Expect.MustOverlap {
		switch {
		case r.Overlaps == 0:
			out = append(out, "the fault's documented weakness (two holders at once) did not show: the run cannot prove the checker catches it")
		case r.Model == "Ok":
			out = append(out, "overlaps found, yet the model check accepted the history")
		}
	}
	if !r.Expect.MayOrphan {
		count("orphaned locks (an acquisition reported failed left the key held)", r.Orphans)
	}
	return out
}

func appendReport(t *testing.T, path string, r Report) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("%s: %v", ReportEnv, err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		t.Fatalf("%s: %v", ReportEnv, err)
	}
}
