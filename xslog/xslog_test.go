package xslog_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/backend/memory"
	"github.com/xsync-go/xsync/xslog"
)

// capture is a slog handler that keeps every record.
type capture struct {
	mu      sync.Mutex
	records []slog.Record
	added   chan struct{} // closed and replaced at every record
}

// await waits until a record of kind and outcome has come.
func (c *capture) await(t *testing.T, kind xsync.EventKind, outcome xsync.Outcome) rec {
	t.Helper()
	for {
		c.mu.Lock()
		if c.added == nil {
			c.added = make(chan struct{})
		}
		added := c.added
		c.mu.Unlock()
		if got := c.find(kind, outcome); len(got) > 0 {
			return got[0]
		}
		select {
		case <-added:
		case <-t.Context().Done():
			t.Fatalf("no %s %s record", kind, outcome)
		}
	}
}

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *capture) WithGroup(string) slog.Handler            { return c }
func (c *capture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records = append(c.records, r.Clone())
	if c.added != nil {
		close(c.added)
		c.added = nil
	}
	return nil
}

type rec struct {
	level slog.Level
	attrs map[string]string
}

func (c *capture) all() []rec {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []rec
	for _, r := range c.records {
		m := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
		out = append(out, rec{r.Level, m})
	}
	return out
}

// find returns the records of one event kind and outcome.
func (c *capture) find(kind xsync.EventKind, outcome xsync.Outcome) []rec {
	var out []rec
	for _, r := range c.all() {
		if r.attrs["xsync.event"] == string(kind) && r.attrs["xsync.outcome"] == string(outcome) {
			out = append(out, r)
		}
	}
	return out
}

func setUp(t *testing.T, l xsync.Locker) (string, *capture) {
	t.Helper()
	name := "xslog:" + t.Name()
	t.Cleanup(xsync.Swap(name, l))
	c := &capture{}
	t.Cleanup(xsync.SetObserver(name, xslog.New(slog.New(c))))
	return name, c
}

func TestContention(t *testing.T) {
	name, c := setUp(t, memory.New())
	ctx := t.Context()
	item, err := xsync.Lock(ctx, name, "user:1", 5)
	require.NoError(t, err)
	err = xsync.New(name, "user:1").Run(ctx, func(context.Context) error { return nil })
	require.True(t, xsync.IsMissingLockErr(err))
	_, err = item.Unlock(ctx, name, "user:1")
	require.NoError(t, err)
	require.NoError(t, xsync.New(name, "user:1").Run(ctx, func(context.Context) error { return nil }))

	for _, want := range []struct {
		kind    xsync.EventKind
		outcome xsync.Outcome
		n       int
	}{
		{xsync.KindAttempt, xsync.OutcomeAcquired, 2},
		{xsync.KindAttempt, xsync.OutcomeHeld, 1},
		{xsync.KindWait, xsync.OutcomeHeld, 1},
		{xsync.KindWait, xsync.OutcomeAcquired, 1},
		{xsync.KindHold, xsync.OutcomeKept, 1},
		{xsync.KindRelease, xsync.OutcomeReleased, 2},
	} {
		got := c.find(want.kind, want.outcome)
		if assert.Len(t, got, want.n, "%s %s", want.kind, want.outcome) {
			for _, r := range got {
				assert.Equal(t, slog.LevelDebug, r.level, "normal operation is quiet at Info")
				assert.Equal(t, name, r.attrs["xsync.backend"])
				assert.Equal(t, "user:1", r.attrs["xsync.key"], "quoted once, by the handler")
			}
		}
	}
	wait := c.find(xsync.KindWait, xsync.OutcomeAcquired)[0]
	assert.Equal(t, "1", wait.attrs["xsync.attempts"])
	assert.NotEmpty(t, wait.attrs["xsync.token"])
}

// A lock lost under auto-extension: the manual clock expires it on the
// backend, the next renewal finds it gone.
func TestLostLock(t *testing.T) {
	clock := memory.NewManualClock(time.Now())
	name, c := setUp(t, memory.New(memory.WithClock(clock.Now)))
	a := xsync.New(name, "job")
	require.NoError(t, a.SetAutoExtend(true, 0))
	err := a.Run(t.Context(), func(ctx context.Context) error {
		clock.Advance(time.Hour)
		<-ctx.Done() // the renewal after 1/3 s finds the lock gone
		return nil
	})
	require.ErrorIs(t, err, xsync.ErrLockLost)
	renew := c.find(xsync.KindRenew, xsync.OutcomeNotHeld)
	require.Len(t, renew, 1)
	assert.Equal(t, slog.LevelWarn, renew[0].level)
	lost := c.find(xsync.KindLost, xsync.OutcomeLost)
	require.Len(t, lost, 1)
	assert.Equal(t, slog.LevelError, lost[0].level)
	assert.Contains(t, lost[0].attrs["error"], "lock lost")
	hold := c.find(xsync.KindHold, xsync.OutcomeLost)
	require.Len(t, hold, 1)
	assert.Equal(t, slog.LevelWarn, hold[0].level)
}

// failingRelease is a memory backend whose mutexes' releases fail.
type failingRelease struct{ *memory.Locker }

var errDown = errors.New("server on fire")

func (failingRelease) Release(context.Context, string, int64) (bool, error) { return false, errDown }

func (f failingRelease) Mutex(key string) backend.Lock { return failingLock{f.Locker.Mutex(key)} }

type failingLock struct{ backend.Lock }

func (failingLock) Release(context.Context, int64) (bool, error) { return false, errDown }

// A failed release, which Run does not report (the lock expires), is
// logged.
func TestFailedRelease(t *testing.T) {
	name, c := setUp(t, failingRelease{memory.New()})
	require.NoError(t, xsync.New(name, "k").Run(t.Context(), func(context.Context) error { return nil }))
	got := c.find(xsync.KindRelease, xsync.OutcomeFailed)
	require.Len(t, got, 1)
	assert.Equal(t, slog.LevelWarn, got[0].level)
	assert.Contains(t, got[0].attrs["error"], "server on fire")
}

// Keys are shortened in logs.
func TestLongKeyShortened(t *testing.T) {
	name, c := setUp(t, memory.New())
	key := string(make([]byte, 10000))
	_, err := xsync.Lock(t.Context(), name, key, 1)
	require.NoError(t, err)
	got := c.find(xsync.KindAttempt, xsync.OutcomeAcquired)
	require.Len(t, got, 1)
	assert.Less(t, len(got[0].attrs["xsync.key"]), 300)
	assert.Contains(t, got[0].attrs["xsync.key"], "10000 bytes")
}

// Without an observer, nothing is logged; SetObserver's restore removes it.
func TestRestore(t *testing.T) {
	name := "xslog:" + t.Name()
	t.Cleanup(xsync.Swap(name, memory.New()))
	c := &capture{}
	restore := xsync.SetObserver(name, xslog.New(slog.New(c)))
	_, err := xsync.Lock(t.Context(), name, "a", 1)
	require.NoError(t, err)
	restore()
	_, err = xsync.Lock(t.Context(), name, "b", 1)
	require.NoError(t, err)
	assert.Len(t, c.all(), 1)
}

// A lease from Client.Acquire, neither renewed nor released, is lost at
// its validity deadline: that is logged at Error, with the end of its
// hold, when it happens (the lease's Done closes), not when it is
// released.
func TestLeaseLostAtDeadlineLogged(t *testing.T) {
	clock := memory.NewManualClock(time.Now())
	c := &capture{}
	locks := xsync.NewClient(memory.New(memory.WithClock(clock.Now)), xsync.WithClock(clock),
		xsync.WithName("lease"), xsync.WithObserver(xslog.New(slog.New(c))))
	l, err := locks.Acquire(t.Context(), "report", xsync.WithTTL(10*time.Second))
	require.NoError(t, err)
	require.NoError(t, clock.BlockUntil(t.Context(), 1)) // the lease's expiry
	clock.Advance(10 * time.Second)
	<-l.Done()
	lost := c.await(t, xsync.KindLost, xsync.OutcomeLost)
	assert.Equal(t, slog.LevelError, lost.level)
	assert.Equal(t, "lost", lost.attrs["xsync.event"])
	assert.Equal(t, "mutex", lost.attrs["xsync.lock"])
	assert.Equal(t, "false", lost.attrs["xsync.run"], "a lease, not a Run")
	assert.Contains(t, lost.attrs["error"], "TTL ran out")
	hold := c.find(xsync.KindHold, xsync.OutcomeLost)
	require.Len(t, hold, 1)
	assert.Equal(t, "10s", hold[0].attrs["xsync.duration"])
	_, err = l.Release(t.Context())
	require.NoError(t, err)
	assert.Len(t, c.find(xsync.KindHold, xsync.OutcomeLost), 1, "the hold's end is logged once")
	assert.Len(t, c.find(xsync.KindRelease, xsync.OutcomeNotHeld), 1)
}

// Keys can be logged as a hash, or not at all; contention can be logged
// at a level of its own.
func TestKeysAndContentionLevel(t *testing.T) {
	locks := xsync.NewClient(memory.New())
	ctx := t.Context()
	held, err := locks.Acquire(ctx, "user:alice@example.com")
	require.NoError(t, err)
	defer held.Release(ctx)
	for _, tc := range []struct {
		mode xslog.KeyMode
		want string
	}{
		{xslog.KeysShort, "user:alice@example.com"},
		{xslog.KeysHash, "fnv32a:"},
		{xslog.KeysNone, ""},
	} {
		c := &capture{}
		o := xslog.New(slog.New(c), xslog.WithKeys(tc.mode), xslog.WithContentionLevel(slog.LevelInfo))
		_, err := xsync.NewClient(locks.Locker(), xsync.WithObserver(o)).Acquire(ctx, "user:alice@example.com")
		require.ErrorIs(t, err, xsync.ErrMissingLock)
		got := c.find(xsync.KindAttempt, xsync.OutcomeHeld)
		require.Len(t, got, 1)
		assert.Equal(t, slog.LevelInfo, got[0].level, "contention at the level asked for")
		key, logged := got[0].attrs["xsync.key"]
		if tc.want == "" {
			assert.False(t, logged, "no key")
			continue
		}
		assert.Contains(t, key, tc.want)
		if tc.mode == xslog.KeysHash {
			assert.NotContains(t, key, "alice")
		}
	}
}

// An election is logged in the words of elections: elected and resigned
// at Info, a lost leadership at Error.
func TestElectionLogged(t *testing.T) {
	clock := memory.NewManualClock(time.Now())
	c := &capture{}
	locks := xsync.NewClient(memory.New(memory.WithClock(clock.Now)), xsync.WithClock(clock),
		xsync.WithName("elect"), xsync.WithObserver(xslog.New(slog.New(c))))
	term, err := locks.Election("report").Campaign(t.Context(), xsync.WithTTL(10*time.Second))
	require.NoError(t, err)
	_, err = term.Resign(t.Context())
	require.NoError(t, err)
	msgs := map[string]slog.Level{}
	c.mu.Lock()
	for _, r := range c.records {
		msgs[r.Message] = r.Level
	}
	c.mu.Unlock()
	assert.Equal(t, slog.LevelInfo, msgs["xsync elected"], "records: %v", msgs)
	assert.Equal(t, slog.LevelInfo, msgs["xsync resigned"])
	assert.Contains(t, msgs, "xsync campaign attempt")
	assert.Contains(t, msgs, "xsync term ended")

	term, err = locks.Election("report").Campaign(t.Context(), xsync.WithTTL(10*time.Second), xsync.WithAutoExtend(10*time.Second))
	require.NoError(t, err)
	clock.Advance(time.Hour)
	<-term.Done()
	lost := c.await(t, xsync.KindLost, xsync.OutcomeLost)
	assert.Equal(t, slog.LevelError, lost.level)
	assert.Equal(t, "election", lost.attrs["xsync.lock"])
}
