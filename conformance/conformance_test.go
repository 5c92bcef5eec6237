package conformance_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/backend/memory"
	"github.com/xsync-go/xsync/conformance"
)

// toy is a deliberately simple backend whose defects can be switched on,
// to show that the suite catches each of them. With no defect it is a
// correct backend and must pass the whole suite.
type toy struct {
	defect string

	mu     sync.Mutex
	seq    int64
	locks  map[string]toyHeld
	seqs   map[string]int64 // per-key counters, for the "repeats tokens" defect
	queues map[string][]*toyWaiter
	// watching holds each watching waiter by its name, queued or not.
	watching map[string]*toyWaiter
	sems     map[string]*toyGroup
	rws      map[string]*toyGroup

	groupWaiters map[string][]chan struct{}

	electionSpace
}

type toyHeld struct {
	token   int64
	expires time.Time
	ttl     time.Duration
	owner   string
	grantee string // the waiter granted the key, until a release or expiry
}

func newToy(defect string) *toy {
	return &toy{defect: defect, locks: map[string]toyHeld{}, seqs: map[string]int64{}}
}

func (b *toy) live(key string, now time.Time) (toyHeld, bool) {
	l, ok := b.locks[key]
	if ok && b.defect != "never-expires" && !now.Before(l.expires) {
		delete(b.locks, key)
		delete(b.seqs, key)
		return toyHeld{}, false
	}
	return l, ok
}

func (b *toy) acquire(key string, ttl time.Duration, owner string) (int64, error) {
	if b.defect == "leaks-goroutines" {
		go func() { select {} }()
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, held := b.live(key, now); held && b.defect != "no-exclusion" {
		return 0, nil
	}
	if w := b.first(key, now); w != nil { // waiters queued: their turn
		w.wake()
		return 0, nil
	}
	return b.grant(key, ttl, owner, now)
}

// grant gives key to a new holder (under b.mu).
func (b *toy) grant(key string, ttl time.Duration, owner string, now time.Time) (int64, error) {
	var tok int64
	if b.defect == "repeats-tokens" {
		b.seqs[key]++ // forgotten with the key: tokens restart
		tok = b.seqs[key]
	} else {
		b.seq++
		tok = b.seq
	}
	if b.defect == "drops-owner" {
		owner = ""
	}
	b.locks[key] = toyHeld{token: tok, expires: now.Add(ttl), ttl: ttl, owner: owner}
	return tok, nil
}

func (b *toy) Release(_ context.Context, key string, token int64) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.live(key, time.Now())
	if !ok || (l.token != token && b.defect != "releases-others") {
		return false, nil
	}
	if b.defect == "multi-key-outlives" {
		for k, o := range b.locks {
			if o.token == token && k != key {
				o.expires = o.expires.Add(time.Hour)
				b.locks[k] = o
			}
		}
	}
	delete(b.locks, key)
	delete(b.seqs, key)
	b.freed(key, time.Now())
	return true, nil
}

func (b *toy) Refresh(_ context.Context, key string, token int64, ttl time.Duration) (bool, error) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.live(key, now)
	if !ok || l.token != token {
		return b.defect == "refresh-lies", nil
	}
	if b.defect == "refresh-ignores-ttl" {
		ttl = l.ttl
	}
	l.expires = now.Add(ttl)
	b.locks[key] = l
	return true, nil
}

// toyClient is a client of a toy store whose link can be broken: what the
// toy harness's Faulty returns.
type toyClient struct {
	*toy
	mu    sync.Mutex
	delay time.Duration
	down  bool
}

var errToyDown = errors.New("toy: store unreachable")

func (c *toyClient) Delay(d time.Duration) { c.mu.Lock(); c.delay = d; c.mu.Unlock() }
func (c *toyClient) Down()                 { c.mu.Lock(); c.down = true; c.mu.Unlock() }
func (c *toyClient) Heal()                 { c.mu.Lock(); c.delay, c.down = 0, false; c.mu.Unlock() }

func (c *toyClient) link() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.delay, c.down
}

// reply waits out the delay of a reply; false if ctx ended first.
func reply(ctx context.Context, d time.Duration) bool {
	if d == 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (b *toy) Acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	return b.AcquireOwner(ctx, key, ttl, "")
}

func (b *toy) AcquireOwner(_ context.Context, key string, ttl time.Duration, owner string) (int64, error) {
	if b.defect == "huge-keys-fail" && len(key) > 1<<10 {
		return 0, errors.New("toy: key too large")
	}
	if b.defect == "tiny-ttl-unavailable" && ttl < 10*time.Millisecond {
		return 0, fmt.Errorf("%w: toy: no answer within the lock's TTL", backend.ErrUnavailable)
	}
	return b.acquire(key, ttl, owner)
}

func (b *toy) inspect(key string) backend.Info {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.live(key, now)
	if !ok {
		return backend.Info{}
	}
	tok := l.token
	if b.defect == "inspect-wrong-token" {
		tok++
	}
	return backend.Info{Holders: []backend.Holder{{Token: tok, TTL: l.expires.Sub(now), Owner: l.owner}}, Waiting: len(b.queue(key, now))}
}

func (b *toy) forceRelease(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.live(key, time.Now())
	delete(b.locks, key)
	delete(b.seqs, key)
	if b.defect == "force-resets-fence" {
		b.seq = 0
	}
	b.freed(key, time.Now())
	return ok
}

func (b *toy) size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	for k := range b.locks {
		b.live(k, now)
	}
	return len(b.locks)
}

const defectEnv = "XSYNC_CONFORMANCE_DEFECT"

// TestToy runs the suite on the toy backend: the correct one normally, a
// broken one when TestSuiteCatchesDefects runs this binary as a child.
func TestToy(t *testing.T) {
	defect := os.Getenv(defectEnv)
	conformance.Run(t, func(t *testing.T) conformance.Harness { return &toyHarness{store: newToy(defect)} })
}

// TestCore runs the rules about the core alone, once, on the memory
// backend (some need a backend whose waiters do not queue).
func TestCore(t *testing.T) {
	if os.Getenv(defectEnv) != "" {
		t.Skip("running as a child")
	}
	conformance.RunCore(t, func(t *testing.T) conformance.Harness { return memoryHarness{memory.New()} })
}

// memoryHarness gives every subtest a memory Locker of its own.
type memoryHarness struct{ l *memory.Locker }

func (h memoryHarness) Locker(*testing.T) backend.Locker { return h.l }
func (h memoryHarness) Limits() conformance.Limits       { return conformance.Limits{} }

// toyHarness gives every subtest a toy store of its own; all its Lockers
// are that store.
type toyHarness struct{ store *toy }

func (h *toyHarness) Locker(*testing.T) backend.Locker { return h.store }
func (h *toyHarness) Limits() conformance.Limits       { return conformance.Limits{FIFO: true} }
func (h *toyHarness) Size(*testing.T) int              { return h.store.size() }

func (h *toyHarness) Faulty(*testing.T) (backend.Locker, conformance.Fault) {
	c := &toyClient{toy: h.store}
	return c, c
}

// pickedSubtests returns whether the -run pattern's part for t's
// subtests (after the first unbracketed '/', if any) picks a subtest
// name: a rough copy of the testing package's matching, so that a test
// that does work for its subtests up front does only the picked ones'.
func pickedSubtests(t *testing.T) func(name string) bool {
	all := func(string) bool { return true }
	f := flag.Lookup("test.run")
	if f == nil {
		return all
	}
	pattern, depth := f.Value.String(), 0
	for i, r := range pattern {
		switch r {
		case '[':
			depth++
		case ']':
			depth--
		case '/':
			if depth == 0 {
				part, _, _ := strings.Cut(pattern[i+1:], "/")
				re, err := regexp.Compile(part)
				if err != nil {
					t.Fatalf("-run %q: %v", pattern, err)
				}
				return re.MatchString
			}
		}
	}
	return all
}

// childrenAtOnce is how many child processes TestSuiteCatchesDefects
// runs at once.
const childrenAtOnce = 8

// TestSuiteCatchesDefects tests the tester: each defect must fail the
// subtests that check the rule it breaks.
func TestSuiteCatchesDefects(t *testing.T) {
	if os.Getenv(defectEnv) != "" {
		t.Skip("running as a child")
	}
	defects := []struct {
		defect   string
		mustFail []string
	}{
		{"releases-others", []string{"OwnerOnlyRelease", "StaleItemAfterTakeover"}},
		{"repeats-tokens", []string{"LockUnlock", "TokensMonotonic", "Expiry"}},
		{"never-expires", []string{"Expiry", "StaleItemAfterTakeover", "NoKeyLeak"}},
		{"no-exclusion", []string{"LockUnlock", "OneOfN", "MutualExclusion", "ContentionIsQuick", "KeyIsolation"}},
		{"refresh-lies", []string{"AutoExtendLoss"}},
		{"leaks-goroutines", []string{"LockUnlock", "OneOfN"}},
		{"outage-as-contention", []string{"OutageIsNotContention"}},
		{"orphans", []string{"NoOrphanAfterCancelledAcquire"}},
		{"huge-keys-fail", []string{"KeyLimits"}},
		{"tiny-ttl-unavailable", []string{"TinyTTL"}},
		{"refresh-ignores-ttl", []string{"RefreshSetsTTL", "LeaseExtend", "HoldAtLeast"}},
		{"inspect-wrong-token", []string{"InspectAndForceRelease"}},
		{"drops-owner", []string{"InspectAndForceRelease"}},
		{"force-resets-fence", []string{"InspectAndForceRelease"}},
		{"queue-lifo", []string{"QueueFIFO"}},
		{"queue-keeps-quitters", []string{"QueueGiveUp"}},
		{"queue-never-drops-dead", []string{"QueueDeadWaiter"}},
		{"queue-forgets-lost", []string{"QueueLostPlace"}},
		{"grant-outlives-place", []string{"GrantDeadWaiter"}},
		{"grant-kept-by-leaver", []string{"GrantLeave"}},
		{"grant-unrenewed-seq", []string{"GrantTake"}},
		{"sem-over-limit", []string{"SemaphoreLimit"}},
		{"sem-never-expires", []string{"SemaphoreExpiry"}},
		{"rw-readers-ignore-writer", []string{"RWExclusion"}},
		{"rw-starves-writer", []string{"RWWriterNotStarved"}},
		{"rw-oneshot-marks", []string{"RWMarkOnlyWhileWaiting"}},
		{"rw-quitter-keeps-mark", []string{"RWMarkOnlyWhileWaiting"}},
		{"multi-partial", []string{"MultiAllOrNothing"}},
		{"multi-key-outlives", []string{"MultiPartialRelease"}},
		{"types-orphans", []string{"TypesNoOrphan"}},
		{"types-no-wake", []string{"TypesWaitWoken"}},
		{"types-no-expiry-wake", []string{"TypesWaitExpiry"}},
		{"inspect-misses-permits", []string{"TypesInspectAndForceRelease"}},
		{"force-keeps-readers", []string{"TypesInspectAndForceRelease"}},
		{"list-skips-rw", []string{"List"}},
		{"kinds-share-keys", []string{"KeySpaces"}},
		{"election-two-leaders", []string{"ElectionOneLeader"}},
		{"election-epoch-repeats", []string{"ElectionEpochGrows"}},
		{"election-never-expires", []string{"ElectionFailover"}},
		{"election-inspect-blind", []string{"ElectionObserve"}},
		{"election-deaf", []string{"ElectionResignHandsOver"}},
	}
	// Each defect runs in a child process, which mostly waits (TTLs,
	// retry intervals): more of them at once than -parallel (GOMAXPROCS)
	// would let subtests run. Each is judged in a subtest of its own; a
	// -run pattern's second part picks the defects whose children run.
	type result struct {
		out []byte
		err error
	}
	picked := pickedSubtests(t)
	results := make([]chan result, len(defects))
	slots := make(chan struct{}, childrenAtOnce)
	for i, c := range defects {
		results[i] = make(chan result, 1)
		if !picked(c.defect) {
			continue
		}
		go func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			pattern := "^TestToy$/^(" + strings.Join(c.mustFail, "|") + ")$"
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run="+pattern, "-test.v", "-test.count=1", "-test.timeout=3m")
			cmd.Env = append(os.Environ(), defectEnv+"="+c.defect)
			out, err := cmd.CombinedOutput()
			results[i] <- result{out, err}
		}()
	}
	for i, c := range defects {
		t.Run(c.defect, func(t *testing.T) {
			if !picked(c.defect) {
				t.Fatalf("-run picks %s, but pickedSubtests did not start its child", c.defect)
			}
			r := <-results[i]
			out, err := r.out, r.err
			if err == nil {
				t.Fatalf("the suite passed a backend that %s:\n%s", c.defect, out)
			}
			for _, name := range c.mustFail {
				re := regexp.MustCompile(`(?m)^\s*--- FAIL: TestToy/` + name + ` `)
				if !re.Match(out) {
					t.Errorf("subtest %s did not fail on a backend that %s", name, c.defect)
				}
			}
			if t.Failed() {
				t.Logf("child output:\n%s", out)
			}
		})
	}
}
