// Package conformance is the test suite every xsync backend must pass. A
// backend's own tests call [Run] with a function that makes a [Harness] for
// each subtest, in the shape of gocloud.dev's drivertest:
//
//	func TestConformance(t *testing.T) {
//		srv := startServer(t)
//		conformance.Run(t, func(t *testing.T) conformance.Harness {
//			return &harness{srv: srv, prefix: uniquePrefix()} // a fresh namespace
//		})
//	}
//
// The harness hands out clients of one store and namespace (the Locker
// under test and a peer, as a second process would have), declares the
// backend's limits ([Limits]), and, if it can, counts the keys it keeps
// ([Sizer]) and breaks the link between a client and the store
// ([Faulter]).
//
// The suite drives the backend through package xsync (Lock, Unlock, Run,
// a Client's leases of every kind), so it checks the rules of the whole
// stack as an application sees them: mutual exclusion, one winner of N,
// contention as a value, expiry, owner-only release, fencing tokens, the
// callback context, waiting and notification, release on error and
// panic, cancellation, odd and long keys, the shortest TTL, and that no
// goroutine or key is leaked; at the edges: a deadline passing during an
// attempt, an unreachable store never reported as contention, no lock
// orphaned by an acquire cut short; and the rules of each kind of lock
// the backend has.
//
// Each subtest says which rule it checks, runs with a timeout guard, and
// fails if goroutines it started (directly, or through goroutines it
// started) are still running at its end. The subtests run in parallel, as
// many at once as go test's -parallel flag allows (GOMAXPROCS by default):
// newHarness is called from several goroutines, and each harness's
// namespace keeps the subtests apart. Results are only trustworthy under
// the race detector (go test -race).
//
// What a backend has is found as the core finds it, by type assertion:
// the abilities of its mutex (backend.Refresher for auto-extension,
// backend.Watcher for waking waiters, backend.Inspector and
// backend.ForceReleaser for operators), and its kinds (backend.Semaphorer,
// backend.RWLocker, backend.MultiLocker). What the suite cannot find out,
// the harness declares in [Limits] (fencing, queueing, owner metadata,
// TTL precision). Subtests for what a backend lacks are skipped, and so
// are those that need a [Sizer] or a [Faulter] harness.
//
// The rules about the core alone (validation, retry policy, the timer that
// keeps a lease's deadline, the observer's events) hold or fail the same
// way on every backend: [RunCore] runs them, and the suite's own tests do,
// once; a backend's tests need not.
//
// Subtests that wait for a TTL to pass take about MinTTL each; the whole
// suite takes 30 to 60 seconds on a backend with one-second TTLs, one
// subtest at a time, and about half that two at a time.
// Histories under faults, which check the same claims the way Jepsen and
// etcd's robustness tests do, are in package conformance/history.
package conformance

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/wrap"
)

// Harness is one subtest's view of the store under test: a fresh
// namespace (a key prefix, say) that no other subtest uses.
type Harness interface {
	// Locker returns a new client of the namespace: a separate connection
	// to the same store, as another process would have. Lockers from one
	// Harness share their locks. Clean-up goes to t.Cleanup.
	Locker(t *testing.T) backend.Locker

	// Limits declares what the suite cannot find out by itself.
	Limits() Limits
}

// Sizer is implemented by harnesses that can count what the backend keeps
// in the store for the namespace.
type Sizer interface {
	// Size returns how many keys the namespace holds, including any per-key
	// bookkeeping such as fencing counters. The suite checks that it
	// returns to its starting value once locks are released or have
	// expired (plus Limits.SizeSettle).
	Size(t *testing.T) int
}

// Faulter is implemented by harnesses that can break the link between a
// client and the store (for a network backend, a TCP proxy between them).
// The subtests that check outcomes under faults use it: a failing store is
// not reported as contention, and an acquire cut short by its context
// leaves no lock behind. A backend without a network (memory) has none,
// and those subtests skip.
type Faulter interface {
	// Faulty returns a new client of the namespace whose link to the store
	// goes through the returned Fault.
	Faulty(t *testing.T) (backend.Locker, Fault)
}

// Limits describes what the suite cannot find out about a backend by
// itself. The zero value describes a strict backend with one-second TTLs.
type Limits struct {
	// MinTTL is the shortest lock lifetime the backend honours as asked;
	// tests that wait for expiry use it. Zero means one second.
	MinTTL time.Duration

	// ExpiryTolerance is how long after its TTL a lock may still be held
	// (clock precision, server expiry cycle). Zero means 250ms.
	ExpiryTolerance time.Duration

	// NotFencing declares that the backend's tokens are unique but not
	// monotonic (for example Redlock). The suite then checks uniqueness
	// instead of order.
	NotFencing bool

	// SplitVote declares that of several clients locking a free key at
	// the same moment, possibly none wins. OneOfN then checks that at most
	// one wins, instead of exactly one.
	SplitVote bool

	// NoOwner declares that the backend stores no owner metadata with a
	// lock (Request.Owner), so that Inspect cannot show it.
	NoOwner bool

	// FIFO declares that the backend hands a held mutex to its waiters
	// in the order they came (waiters that watch keep a place in a
	// queue). The queue rules run only then.
	FIFO bool

	// SizeSettle is how long after the last lock expired Sizer.Size may
	// take to return to its starting value (for example the idle TTL of
	// fencing counters). Zero means ExpiryTolerance.
	SizeSettle time.Duration

	// IgnoreGoroutines names functions (as a stack trace shows them, for
	// example "example.com/backend.(*conn).read") of goroutines that the
	// backend keeps beyond one subtest, such as idle connections it closes
	// later by itself; the goroutine leak check ignores every goroutine
	// with one of them anywhere on its stack.
	IgnoreGoroutines []string

	// Timeout guards each subtest. Zero means 60 seconds.
	Timeout time.Duration
}

// WithDefaults returns o with its zero fields set to their defaults.
func (o Limits) WithDefaults() Limits {
	if o.MinTTL == 0 {
		o.MinTTL = time.Second
	}
	if o.ExpiryTolerance == 0 {
		o.ExpiryTolerance = 250 * time.Millisecond
	}
	if o.SizeSettle == 0 {
		o.SizeSettle = o.ExpiryTolerance
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	return o
}

// Fault breaks the link between one client and its store. The suite
// calls its methods from one goroutine at a time.
type Fault interface {
	// Delay holds every reply from the store for d before the client sees
	// it; requests still reach the store at once. Delay(0) ends it.
	Delay(d time.Duration)
	// Down makes the store unreachable for this client: open connections
	// are cut, and new ones are cut as soon as they are made.
	Down()
	// Heal ends Delay and Down.
	Heal()
}

// Run runs the suite, its subtests in parallel. newHarness is called once
// per subtest, from the subtest's goroutine, and must return a harness
// with a namespace of its own. Parallel subtests run once the calling
// test's function has returned: code after Run in the same function runs
// before them, so a test that must change the store after the suite puts
// Run in a t.Run of its own.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := setUp(t, newHarness, run)
			t.Logf("rule: %s", c.rule)
			c.fn(e)
		})
	}
}

// RunCore runs the rules about the core alone on the harness's backend.
// Every backend shares them: the suite's own tests run them, once.
func RunCore(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	for _, c := range coreCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := setUp(t, newHarness, run)
			t.Logf("rule: %s", c.rule)
			c.fn(e)
		})
	}
}

type testCase struct {
	name string
	rule string
	fn   func(e *env)
}

// env is one subtest's world: the backend registered under name, a peer
// client of the same store registered under peer, and a guarded context.
type env struct {
	t      *testing.T
	ctx    context.Context
	opts   Limits
	h      Harness
	newH   func(*testing.T) Harness // for a second namespace on the same store
	l      backend.Locker
	name   string // xsync name of l
	peer   string // xsync name of the peer client
	prefix string // unique key prefix of this subtest
	exp    int32  // opts.MinTTL in whole seconds, rounded up
	wraps  int    // counting wrappers registered so far
}

func setUp(t *testing.T, newHarness func(*testing.T) Harness, run string) *env {
	h := newHarness(t)
	if h == nil {
		t.Fatal("newHarness returned nil")
	}
	opts := h.Limits().WithDefaults()
	// Registered first, so it runs last: after the backend's own clean-up.
	// The goroutines checked are those the subtest starts from here on:
	// the harness's own clients, started before, are not the rule's.
	id := trackGoroutines()
	t.Cleanup(func() {
		if stacks := leaked(id, opts.IgnoreGoroutines, 2*time.Second); stacks != "" {
			t.Errorf("goroutines leaked by this subtest (rule: no goroutine outlives Run or Unlock):\n%s", stacks)
		}
	})

	ctx, cancel := context.WithTimeout(t.Context(), opts.Timeout)
	guard := time.AfterFunc(opts.Timeout, func() {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("subtest still running after its %v guard; goroutines:\n%s", opts.Timeout, buf)
	})
	t.Cleanup(func() { guard.Stop(); cancel() })

	l, p := h.Locker(t), h.Locker(t)
	if l == nil || p == nil {
		t.Fatal("Harness.Locker returned nil")
	}
	e := &env{
		t: t, ctx: ctx, opts: opts, h: h, newH: newHarness, l: l,
		name:   "conformance:" + t.Name(),
		peer:   "conformance-peer:" + t.Name(),
		prefix: "xsync-conformance:" + run + ":" + t.Name() + ":",
		exp:    int32((opts.MinTTL + time.Second - 1) / time.Second),
	}
	t.Cleanup(xsync.Swap(e.name, l))
	t.Cleanup(xsync.Swap(e.peer, p))
	return e
}

func (e *env) key(s string) string { return e.prefix + s }

func (e *env) ttl() time.Duration { return time.Duration(e.exp) * time.Second }

// lock takes key through name and fails the test if it cannot.
func (e *env) lock(name, key string, exp int32) xsync.Item {
	e.t.Helper()
	item, err := xsync.Lock(e.ctx, name, key, exp)
	if err != nil {
		e.t.Fatalf("Lock(%q): %v", key, err)
	}
	if !item.HasLock() {
		e.t.Fatalf("Lock(%q) = %d: not obtained, but the key should be free", key, item)
	}
	return item
}

// mustBeHeld fails the test if name can lock key: someone should hold it.
func (e *env) mustBeHeld(name, key string) {
	e.t.Helper()
	item, err := xsync.Lock(e.ctx, name, key, e.exp)
	if err != nil {
		e.t.Fatalf("Lock(%q) on a held key: %v; want (0, nil)", key, err)
	}
	if item != 0 {
		e.t.Fatalf("Lock(%q) on a held key = %d; want 0: two holders at once", key, item)
	}
}

// mustBeFree takes key through name and releases it again.
func (e *env) mustBeFree(name, key string) xsync.Item {
	e.t.Helper()
	item := e.lock(name, key, e.exp)
	e.unlock(name, key, item, true)
	return item
}

func (e *env) unlock(name, key string, item xsync.Item, want bool) {
	e.t.Helper()
	ok, err := item.Unlock(e.ctx, name, key)
	if err != nil {
		e.t.Fatalf("Unlock(%q, item %d): %v", key, item, err)
	}
	if ok != want {
		e.t.Fatalf("Unlock(%q, item %d) = %v; want %v", key, item, ok, want)
	}
}

// checkNewer checks the fencing rule between an earlier and a later token.
func (e *env) checkNewer(earlier, later xsync.Item) {
	e.t.Helper()
	if later == earlier {
		e.t.Fatalf("token %d handed out twice", later)
	}
	if !e.opts.NotFencing && later < earlier {
		e.t.Fatalf("token %d after token %d: fencing tokens must grow", later, earlier)
	}
}

// sleepUntil waits until t; where this suite sleeps, time itself must pass
// (a TTL), and no event could be awaited instead.
func (e *env) sleepUntil(t time.Time) {
	select {
	case <-time.After(time.Until(t)):
	case <-e.ctx.Done():
		e.t.Fatalf("guard expired while waiting: %v", e.ctx.Err())
	}
}

// counting counts every call a wrapped backend gets and records every
// mutex attempt and its outcome.
type counting struct {
	mu       sync.Mutex
	acquires []acquireCall
	calls    atomic.Int64
	onHeld   func() // called (once per contended attempt) after an attempt found the key held
}

type acquireCall struct {
	at    time.Time
	token int64
	err   error
}

func (c *counting) attempts() []acquireCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]acquireCall(nil), c.acquires...)
}

// instrument registers a counting wrapper of e.l under a new name.
func (e *env) instrument(onHeld func()) (string, *counting) {
	c := &counting{onHeld: onHeld}
	w := &wrap.Locker{Base: e.l}
	w.Hooks.Acquire = func(ctx context.Context, _ wrap.Ref, base backend.Lock, r backend.Request) (int64, error) {
		c.calls.Add(1)
		tok, err := base.Acquire(ctx, r)
		c.mu.Lock()
		c.acquires = append(c.acquires, acquireCall{at: time.Now(), token: tok, err: err})
		onHeld := c.onHeld
		c.mu.Unlock()
		if err == nil && tok <= 0 && onHeld != nil {
			onHeld()
		}
		return tok, err
	}
	w.Hooks.Release = func(ctx context.Context, _ wrap.Ref, base backend.Lock, token int64) (bool, error) {
		c.calls.Add(1)
		return base.Release(ctx, token)
	}
	return e.register("counting", w), c
}

// register puts a wrapper of e.l behind a new xsync name for the subtest.
func (e *env) register(kind string, w *wrap.Locker) string {
	e.wraps++
	name := fmt.Sprintf("conformance-%s-%d:%s", kind, e.wraps, e.t.Name())
	e.t.Cleanup(xsync.Swap(name, w))
	return name
}

// mutex is the mutex of key on l, as the core takes it.
func mutex(l backend.Locker, key string) backend.Lock { return wrap.Mutex(l, key) }

// notifies reports whether the backend wakes a mutex's waiters.
func (e *env) notifies() bool {
	_, ok := mutex(e.l, e.key("probe")).(backend.Watcher)
	return ok
}

// refreshes reports whether the backend can refresh a mutex.
func (e *env) refreshes() bool {
	_, ok := mutex(e.l, e.key("probe")).(backend.Refresher)
	return ok
}

// signal is a one-shot event usable from any goroutine.
type signal struct {
	once sync.Once
	ch   chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }
func (s *signal) fire()  { s.once.Do(func() { close(s.ch) }) }

func (e *env) await(s *signal, what string) {
	e.t.Helper()
	select {
	case <-s.ch:
	case <-e.ctx.Done():
		e.t.Fatalf("guard expired waiting for %s", what)
	}
}

// oddKeys are keys a backend must store and isolate faithfully.
var oddKeys = []string{
	"plain",
	"with spaces and\ttab",
	"unicode:锁:用户:42:ünïcødé:🔒",
	"{braces}:hash{tag}",
	"}{",
	"colon:separated:key",
	"slash/separated/key",
	"nul\x00byte",
	"percent%25and?query=1&x#frag",
	"Plain", // differs from "plain" only in case
	"plain ",
	strings.Repeat("k", 1024),
}
