package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
)

// HistoryDurationEnv, when set to a duration ("60s"), overrides how long
// every history runs: CI keeps the default of a few seconds per cell; a
// release check soaks each cell for minutes.
const HistoryDurationEnv = "XSYNC_HISTORY_DURATION"

// HistoryReportEnv names a file to which [RunHistory] appends each
// report as one line of JSON (the input of docs/safety.md).
const HistoryReportEnv = "XSYNC_HISTORY_REPORT"

// HistoryOptions shape one history. The zero value runs 3 clients × 3
// goroutines on 2 keys for 6 seconds, without faults.
type HistoryOptions struct {
	// Name names the cell (backend and fault) in logs and reports.
	Name string
	// Clients is how many independent Lockers (separate connections, as
	// separate processes would have) contend. Zero means 3.
	Clients int
	// Workers is how many goroutines use each client. Zero means 3.
	Workers int
	// Keys is how many keys they contend for. Zero means 2.
	Keys int
	// TTL is the locks' TTL, rounded up to whole seconds (Lock takes
	// seconds). Zero means the harness's Limits.MinTTL.
	TTL time.Duration
	// Duration is how long new operations start; [HistoryDurationEnv]
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

	client func(Fault) (inject, heal func()) // for faults of one client's link
}

// FreezeClient returns a nemesis that holds every reply to one of the
// history's clients for d (the store still gets the requests at once): a
// stalled link or a frozen client process, during which its renewals
// hang. It needs a [Faulter] harness.
func FreezeClient(d time.Duration) *Nemesis {
	return &Nemesis{
		Name: "freeze-client",
		client: func(f Fault) (func(), func()) {
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

func (o HistoryOptions) withDefaults(t *testing.T, ttl time.Duration) HistoryOptions {
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
	if s := os.Getenv(HistoryDurationEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a positive duration such as 60s", HistoryDurationEnv, s)
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
	return o
}

// RunHistory records a concurrent history on the store behind h while the
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
//   - every attempt that found a key held is explained by a holder, an
//     attempt in flight, or a failed acquisition whose lock may linger
//     until its TTL (an orphan, allowed only under faults).
//
// RunHistory returns the report and, if [HistoryReportEnv] names a file,
// appends it there.
func RunHistory(t *testing.T, h Harness, opts HistoryOptions) HistoryReport {
	t.Helper()
	lim := h.Limits().withDefaults()
	exp := int32((max(opts.TTL, lim.MinTTL) + time.Second - 1) / time.Second)
	ttl := time.Duration(exp) * time.Second
	o := opts.withDefaults(t, ttl)
	seed := uint64(time.Now().UnixNano())
	t.Logf("history %s: %d clients × %d goroutines on %d keys for %v, TTL %v, one hold in %d stalls; seed %d",
		o.Name, o.Clients, o.Workers, o.Keys, o.Duration, ttl, o.StallEvery, seed)

	rec := &historian{start: time.Now(), index: map[holdKey]*hold{}, errors: map[string]int{}, fencing: !lim.NotFencing, top: map[string]int64{}}
	var clientFault Fault
	names := make([]string, o.Clients)
	refresh := true
	for c := range o.Clients {
		var l backend.Locker
		if c == 0 && o.Nemesis != nil && o.Nemesis.client != nil {
			f, ok := h.(Faulter)
			if !ok {
				t.Fatalf("nemesis %s needs a harness that implements conformance.Faulter", o.Nemesis.Name)
			}
			l, clientFault = f.Faulty(t)
		} else {
			l = h.Locker(t)
		}
		if _, ok := l.(backend.Refresher); !ok {
			refresh = false
		}
		names[c] = fmt.Sprintf("conformance-history-%d:%s", c, t.Name())
		t.Cleanup(xsync.Swap(names[c], rec.wrap(c, l).locker()))
	}
	keys := make([]string, o.Keys)
	run := fmt.Sprintf("xsync-history:%x:", seed)
	for i := range keys {
		keys[i] = fmt.Sprintf("%sk%d", run, i)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Also when a nemesis fails the test: no worker outlives it.
	stopWorkers := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWorkers()
	for c := range o.Clients {
		for w := range o.Workers {
			wk := &worker{rec: rec, name: names[c], client: c, keys: keys, ttl: ttl, exp: exp, work: ttl / 8,
				stallEvery: o.StallEvery, refresh: refresh, stop: stop,
				rng: rand.New(rand.NewPCG(seed, uint64(c*1000+w)))}
			wg.Go(wk.loop)
		}
	}

	end := rec.start.Add(o.Duration)
	if n := o.Nemesis; n != nil {
		inject, heal := n.Inject, n.Heal
		if n.client != nil {
			i, hl := n.client(clientFault)
			inject, heal = func(*testing.T) { i() }, func(*testing.T) { hl() }
		}
		length, calm := n.schedule(ttl)
		for time.Now().Add(calm + length + ttl).Before(end) {
			time.Sleep(calm) // the schedule: time must pass, nothing to await
			f := fault{start: rec.now()}
			inject(t)
			time.Sleep(length)
			heal(t)
			f.heal = rec.now()
			rec.mu.Lock()
			rec.faults = append(rec.faults, f)
			rec.mu.Unlock()
		}
	}
	time.Sleep(time.Until(end))
	stopWorkers()

	hist := rec.history()
	rep := check(hist, checkLimits{fencing: !lim.NotFencing, tolerance: int64(lim.ExpiryTolerance), late: int64(signalTolerance), orphans: o.Expect.MayOrphan})
	rep.Name, rep.Expect, rep.TTL, rep.Fencing, rep.Nemesis = o.Name, o.Expect, ttl, !lim.NotFencing, o.Nemesis != nil
	t.Logf("history %s: %s", o.Name, rep.summary())
	for _, v := range rep.Violations {
		t.Logf("  %s", v)
	}
	if path := os.Getenv(HistoryReportEnv); path != "" {
		appendReport(t, path, rep)
	}
	for _, b := range rep.Breaches() {
		t.Errorf("history %s: %s", rep.Name, b)
	}
	return rep
}

// summary is the report in one line.
func (r HistoryReport) summary() string {
	return fmt.Sprintf("%d acquisitions (%d by Run, %d stalled, %d granted after their validity), %d contended, %d failed, %d faults; "+
		"overlaps %d (worst %v), token order %d, model %s; writes %d, stale rejected %d, stale accepted %d; "+
		"signals %d, late %d (worst %v), unreported %d; foreign releases %d; orphans %d (worst %v), phantoms %d; errors %v",
		r.Acquired, r.Runs, r.Stalled, r.LateGrant, r.Contended, r.Failed, r.Faults,
		r.Overlaps, r.WorstOverlap.Round(time.Millisecond), r.TokenOrder, r.Model, r.Writes, r.StaleRejected, r.StaleAccepted,
		r.Signals, r.LateSignals, r.WorstLateness.Round(time.Millisecond), r.LostUnreported, r.ForeignReleases,
		r.Orphans, r.WorstOrphan.Round(time.Millisecond), r.Phantoms, r.Errors)
}

// Breaches returns the claims the history broke that its cell's Expect
// does not waive, one line each; none means the backend behaved as its
// documentation says under this fault.
func (r HistoryReport) Breaches() []string {
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

func appendReport(t *testing.T, path string, r HistoryReport) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("%s: %v", HistoryReportEnv, err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		t.Fatalf("%s: %v", HistoryReportEnv, err)
	}
}

type holdKey struct {
	client int
	key    string
	token  int64
}

// historian keeps the history as the wrapped backends and the workers
// report it.
type historian struct {
	start   time.Time
	mu      sync.Mutex
	holds   []*hold
	index   map[holdKey]*hold
	atts    []attempt
	writes  []write
	strays  []stray
	queued  []queued
	faults  []fault
	errors  map[string]int
	fencing bool
	top     map[string]int64 // the model resource: per key, the largest token accepted
}

func (r *historian) now() int64 { return int64(time.Since(r.start)) }

// wrap records every call client c makes to l.
func (r *historian) wrap(c int, l backend.Locker) *wrapped {
	validity := func(ttl time.Duration) int64 {
		if v, ok := l.(backend.Validity); ok {
			return int64(min(max(v.Validity(ttl), 0), ttl))
		}
		return int64(ttl)
	}
	w := &wrapped{base: l}
	w.acquire = func(ctx context.Context, key string, ttl time.Duration) (int64, error) {
		return r.acquired(c, key, "", ttl, validity, func() (int64, error) { return l.Acquire(ctx, key, ttl) })
	}
	if q, ok := l.(backend.Queuer); ok {
		w.acquireQueued = func(ctx context.Context, key string, ttl time.Duration, owner, waiter string, keep time.Duration) (int64, error) {
			return r.acquired(c, key, waiter, ttl, validity, func() (int64, error) {
				return q.AcquireQueued(ctx, key, ttl, owner, waiter, keep)
			})
		}
		// A waiter in the queue explains contention: while it is queued,
		// the backend may refuse a free key to those behind it.
		w.watchQueue = func(ctx context.Context, key, waiter string, keep time.Duration) (<-chan struct{}, func(), error) {
			from := r.now()
			ch, stop, err := q.WatchQueue(ctx, key, waiter, keep)
			if err != nil {
				return ch, stop, err
			}
			return ch, func() {
				stop()
				r.mu.Lock()
				defer r.mu.Unlock()
				r.queued = append(r.queued, queued{waiter: waiter, key: key, from: from, to: r.now() + int64(keep)})
			}, nil
		}
	}
	w.release = func(ctx context.Context, key string, token int64) (bool, error) {
		call := r.now()
		ok, err := l.Release(ctx, key, token)
		r.outcome(c, key, token, outcome{call: call, ret: r.now(), ok: ok, failed: err != nil}, true)
		return ok, err
	}
	if rf, ok := l.(backend.Refresher); ok {
		w.refresh = func(ctx context.Context, key string, token int64, ttl time.Duration) (bool, error) {
			call := r.now()
			ok, err := rf.Refresh(ctx, key, token, ttl)
			r.outcome(c, key, token, outcome{call: call, ret: r.now(), ok: ok, failed: err != nil}, false)
			return ok, err
		}
	}
	return w
}

// acquired records one attempt of client c, made by do.
func (r *historian) acquired(c int, key, waiter string, ttl time.Duration, validity func(time.Duration) int64, do func() (int64, error)) (int64, error) {
	call := r.now()
	tok, err := do()
	ret := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil || tok < 0:
		r.atts = append(r.atts, attempt{client: c, key: key, call: call, ret: ret, failed: true, err: fmt.Sprint(err), waiter: waiter})
	case tok == 0:
		r.atts = append(r.atts, attempt{client: c, key: key, call: call, ret: ret, waiter: waiter})
	default:
		h := &hold{id: len(r.holds), client: c, key: key, token: tok, call: call, ret: ret, ttl: int64(ttl), validity: validity(ttl)}
		r.holds = append(r.holds, h)
		r.index[holdKey{c, key, tok}] = h
	}
	return tok, err
}

func (r *historian) outcome(c int, key string, token int64, o outcome, release bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.index[holdKey{c, key, token}]
	switch {
	case h == nil:
		r.strays = append(r.strays, stray{key: key, token: token, call: o.call, ret: o.ret, ok: o.ok && !o.failed})
	case release:
		h.release = &o
	default:
		h.renewals = append(h.renewals, o)
	}
}

// find returns the hold the wrapper recorded for a token a caller got.
func (r *historian) find(c int, key string, token int64) *hold {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.index[holdKey{c, key, token}]
}

// write is a fenced write of h's token on the model resource. Without
// fencing tokens the resource cannot tell old from new and accepts all.
func (r *historian) write(h *hold) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ok := !r.fencing || h.token >= r.top[h.key]
	if ok {
		r.top[h.key] = max(r.top[h.key], h.token)
	}
	r.writes = append(r.writes, write{key: h.key, hold: h.id, token: h.token, at: r.now(), accepted: ok})
}

// fail counts an error a caller saw, by class.
func (r *historian) fail(err error) {
	class := "other"
	var timeout interface{ Timeout() bool }
	switch {
	case errors.Is(err, xsync.ErrLockLost):
		class = "lock lost"
	case errors.Is(err, backend.ErrUnavailable):
		class = "unavailable"
	case errors.Is(err, context.DeadlineExceeded):
		class = "deadline"
	case errors.As(err, &timeout) && timeout.Timeout():
		class = "timeout"
	case errors.Is(err, xsync.ErrMissingLock):
		return // contention: an outcome, not an error
	}
	r.mu.Lock()
	r.errors[class]++
	r.mu.Unlock()
}

func (r *historian) history() *history {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &history{holds: r.holds, attempts: r.atts, writes: r.writes, strays: r.strays, queued: r.queued, faults: r.faults, errors: r.errors, end: r.now()}
}

// worker is one goroutine of one client.
type worker struct {
	rec        *historian
	name       string
	client     int
	keys       []string
	ttl        time.Duration
	exp        int32
	work       time.Duration
	stallEvery int
	refresh    bool
	stop       chan struct{}
	rng        *rand.Rand
}

func (w *worker) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// pause waits for d, or less if the history is stopping. It paces the
// workload; nothing is synchronised by it.
func (w *worker) pause(d time.Duration) {
	select {
	case <-time.After(d):
	case <-w.stop:
	}
}

func (w *worker) loop() {
	for !w.stopped() {
		key := w.keys[w.rng.IntN(len(w.keys))]
		stall := w.stallEvery > 0 && w.rng.IntN(w.stallEvery) == 0
		work := time.Duration(w.rng.Int64N(int64(w.work)))
		switch mode := w.rng.IntN(3); {
		case mode == 0:
			w.lockUnlock(key, work, stall)
		default:
			w.run(key, work, stall, mode == 2 && w.refresh)
		}
	}
}

// stallFor is how long a stalled holder sleeps: well past its validity.
func (w *worker) stallFor(h *hold) time.Duration {
	return time.Duration(h.validity)*13/10 + 50*time.Millisecond
}

// lockUnlock is the seed's way: Lock, work, Unlock; no signal, so a
// holder that stalls writes after its lock has expired.
func (w *worker) lockUnlock(key string, work time.Duration, stall bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*w.ttl)
	item, err := xsync.Lock(ctx, w.name, key, w.exp)
	cancel()
	if err != nil {
		w.rec.fail(err)
		w.pause(w.ttl / 10)
		return
	}
	if !item.HasLock() {
		w.pause(time.Duration(w.rng.Int64N(int64(w.ttl / 20))))
		return
	}
	h := w.rec.find(w.client, key, int64(item))
	w.rec.write(h)
	time.Sleep(work) // the work
	if stall {
		w.rec.mu.Lock()
		h.stall = true
		w.rec.mu.Unlock()
		time.Sleep(w.stallFor(h)) // a GC pause: time must pass
	}
	w.rec.write(h)
	ctx, cancel = context.WithTimeout(context.Background(), 2*w.ttl)
	defer cancel()
	if _, err := item.Unlock(ctx, w.name, key); err != nil {
		w.rec.fail(err)
	}
}

// run takes the key under Run, waiting for it, and works in the callback;
// a careful callback stops when its context ends, a stalled one does not.
func (w *worker) run(key string, work time.Duration, stall, extend bool) {
	a := xsync.New(w.name, key)
	if err := errors.Join(a.SetExp(w.ttl), a.SetRetry(10, w.ttl/10), a.SetAutoExtend(extend, 3*w.ttl)); err != nil {
		panic(err) // the options are valid by construction
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*w.ttl)
	defer cancel()
	var info *runInfo
	err := a.Run(ctx, func(cctx context.Context) error {
		h := w.rec.find(w.client, key, int64(xsync.ItemFromContext(cctx)))
		info = &runInfo{start: w.rec.now()}
		w.rec.mu.Lock()
		h.run = info
		h.stall = stall
		w.rec.mu.Unlock()
		signal := func() {
			lost := errors.Is(context.Cause(cctx), xsync.ErrLockLost) || ctx.Err() != nil
			w.rec.mu.Lock()
			if info.end == 0 && info.signal == 0 {
				info.signal, info.lostCause = w.rec.now(), lost
			}
			w.rec.mu.Unlock()
		}
		if cctx.Err() != nil {
			signal() // granted after its validity had passed: lost on arrival
		}
		defer context.AfterFunc(cctx, signal)()
		w.rec.write(h)
		if stall {
			time.Sleep(w.stallFor(h)) // a GC pause, deaf to cctx
		} else {
			select {
			case <-time.After(work):
			case <-cctx.Done():
			}
		}
		if stall || cctx.Err() == nil {
			w.rec.write(h)
		}
		if cctx.Err() != nil {
			signal() // ended while the callback ran; AfterFunc's goroutine may not have run yet
		}
		w.rec.mu.Lock()
		info.end = w.rec.now()
		w.rec.mu.Unlock()
		return nil
	})
	if info != nil {
		w.rec.mu.Lock()
		info.reported = errors.Is(err, xsync.ErrLockLost) || ctx.Err() != nil
		w.rec.mu.Unlock()
	}
	switch {
	case errors.Is(err, xsync.ErrMissingLock):
		w.pause(time.Duration(w.rng.Int64N(int64(w.ttl / 20))))
	case err != nil:
		w.rec.fail(err)
		if info == nil {
			w.pause(w.ttl / 10) // the store failed: do not spin
		}
	}
}
