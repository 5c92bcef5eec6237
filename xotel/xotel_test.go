package xotel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend/memory"
	xredis "github.com/xsync-go/xsync/backend/redis"
	"github.com/xsync-go/xsync/internal/itest"
	"github.com/xsync-go/xsync/xotel"
)

type telemetry struct {
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
}

func setUp(t *testing.T, l xsync.Locker, opts ...xotel.Option) (string, *telemetry) {
	t.Helper()
	tel := &telemetry{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(tel.reader))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tel.spans))
	o, err := xotel.New(append([]xotel.Option{xotel.WithMeterProvider(mp), xotel.WithTracerProvider(tp)}, opts...)...)
	require.NoError(t, err)
	name := "xotel:" + t.Name()
	t.Cleanup(xsync.Swap(name, l))
	t.Cleanup(xsync.SetObserver(name, o))
	return name, tel
}

// sum returns the value of a counter (or up-down counter) for the
// attributes given; histograms count their data points' counts.
func (tel *telemetry) sum(t *testing.T, metric string, attrs ...attribute.KeyValue) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, tel.reader.Collect(context.Background(), &rm))
	want := attribute.NewSet(attrs...)
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != metric {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if matches(p.Attributes, want) {
						total += p.Value
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if matches(p.Attributes, want) {
						total += int64(p.Count)
					}
				}
			}
		}
	}
	return total
}

// matches reports whether have contains every attribute of want.
func matches(have, want attribute.Set) bool {
	for _, kv := range want.ToSlice() {
		v, ok := have.Value(kv.Key)
		if !ok || v != kv.Value {
			return false
		}
	}
	return true
}

func outcome(o xsync.Outcome) attribute.KeyValue {
	return attribute.String("xsync.outcome", string(o))
}

func TestContention(t *testing.T) {
	name, tel := setUp(t, memory.New())
	ctx := t.Context()
	item, err := xsync.Lock(ctx, name, "user:1", 5)
	require.NoError(t, err)
	err = xsync.New(name, "user:1").Run(ctx, func(context.Context) error { return nil })
	require.True(t, xsync.IsMissingLockErr(err))
	_, err = item.Unlock(ctx, name, "user:1")
	require.NoError(t, err)
	var inside bool
	require.NoError(t, xsync.New(name, "user:1").Run(ctx, func(ctx context.Context) error {
		inside = tel.sum(t, "xsync.lock.held") == 1
		return nil
	}))
	assert.True(t, inside, "xsync.lock.held is 1 while the callback runs")

	b := attribute.String("xsync.backend", name)
	assert.EqualValues(t, 2, tel.sum(t, "xsync.lock.attempts", b, outcome(xsync.OutcomeAcquired)))
	assert.EqualValues(t, 1, tel.sum(t, "xsync.lock.attempts", b, outcome(xsync.OutcomeHeld)))
	assert.EqualValues(t, 3, tel.sum(t, "xsync.lock.acquire.duration", b))
	assert.EqualValues(t, 1, tel.sum(t, "xsync.lock.wait.duration", b, outcome(xsync.OutcomeHeld)))
	assert.EqualValues(t, 1, tel.sum(t, "xsync.lock.wait.duration", b, outcome(xsync.OutcomeAcquired)))
	assert.EqualValues(t, 1, tel.sum(t, "xsync.lock.hold.duration", b, outcome(xsync.OutcomeKept)))
	assert.EqualValues(t, 2, tel.sum(t, "xsync.lock.releases", b, outcome(xsync.OutcomeReleased)))
	assert.EqualValues(t, 0, tel.sum(t, "xsync.lock.held"), "nothing held at the end")

	// Two runs: the contended one (a run span with its wait) and the one
	// that held the lock (run, wait, hold).
	var runs, waits, holds int
	for _, s := range tel.spans.Ended() {
		switch s.Name() {
		case "xsync.run":
			runs++
			for _, kv := range s.Attributes() {
				assert.NotEqual(t, attribute.Key("xsync.key"), kv.Key, "keys stay off spans unless asked for")
			}
		case "xsync.wait":
			waits++
		case "xsync.hold":
			holds++
		}
	}
	assert.Equal(t, [3]int{2, 2, 1}, [3]int{runs, waits, holds})
}

// The callback's spans are children of xsync.run.
func TestCallbackSpansNest(t *testing.T) {
	name, tel := setUp(t, memory.New(), xotel.WithKeyInSpans())
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tel.spans))
	require.NoError(t, xsync.New(name, "k").Run(t.Context(), func(ctx context.Context) error {
		_, span := tp.Tracer("app").Start(ctx, "work")
		span.End()
		return nil
	}))
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range tel.spans.Ended() {
		byName[s.Name()] = s
	}
	require.Contains(t, byName, "work")
	require.Contains(t, byName, "xsync.run")
	run := byName["xsync.run"]
	assert.Equal(t, run.SpanContext().SpanID(), byName["work"].Parent().SpanID())
	assert.Equal(t, run.SpanContext().SpanID(), byName["xsync.hold"].Parent().SpanID())
	assert.Contains(t, run.Attributes(), attribute.String("xsync.key", "k"))
}

func TestLostLock(t *testing.T) {
	clock := memory.NewManualClock(time.Now())
	name, tel := setUp(t, memory.New(memory.WithClock(clock.Now)))
	a := xsync.New(name, "job")
	require.NoError(t, a.SetAutoExtend(true, 0))
	err := a.Run(t.Context(), func(ctx context.Context) error {
		clock.Advance(time.Hour)
		<-ctx.Done()
		return nil
	})
	require.ErrorIs(t, err, xsync.ErrLockLost)
	b := attribute.String("xsync.backend", name)
	assert.EqualValues(t, 1, tel.sum(t, "xsync.lock.lost", b))
	assert.EqualValues(t, 1, tel.sum(t, "xsync.lock.renewals", b, outcome(xsync.OutcomeNotHeld)))
	assert.EqualValues(t, 1, tel.sum(t, "xsync.lock.hold.duration", b, outcome(xsync.OutcomeLost)))
	var lostEvent bool
	for _, s := range tel.spans.Ended() {
		for _, ev := range s.Events() {
			lostEvent = lostEvent || ev.Name == "xsync.lost"
		}
	}
	assert.True(t, lostEvent, "the run span has an xsync.lost event")
}

// failingRelease is a Locker only (no Mutexer): the core drives it through
// Acquire and Release, and Release fails.
type failingRelease struct{ l *memory.Locker }

func (f failingRelease) Acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	return f.l.Acquire(ctx, key, ttl)
}

func (failingRelease) Release(context.Context, string, int64) (bool, error) {
	return false, errors.New("server on fire")
}

func TestFailedRelease(t *testing.T) {
	name, tel := setUp(t, failingRelease{memory.New()})
	require.NoError(t, xsync.New(name, "k").Run(t.Context(), func(context.Context) error { return nil }))
	assert.EqualValues(t, 1, tel.sum(t, "xsync.lock.releases", outcome(xsync.OutcomeFailed)))
	assert.EqualValues(t, 0, tel.sum(t, "xsync.lock.held"))
}

// A backend failure through a real Redis client (whose server is not
// there): attempts and the wait are counted as failed, and the run span
// records the error.
func TestBackendFailure(t *testing.T) {
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	name, tel := setUp(t, xredis.New(c))
	err := xsync.New(name, "k").Run(t.Context(), func(context.Context) error { return nil })
	require.Error(t, err)
	require.False(t, xsync.IsMissingLockErr(err))
	assert.EqualValues(t, 1, tel.sum(t, "xsync.lock.attempts", outcome(xsync.OutcomeFailed)))
	assert.EqualValues(t, 1, tel.sum(t, "xsync.lock.wait.duration", outcome(xsync.OutcomeFailed)))
	var failed bool
	for _, s := range tel.spans.Ended() {
		if s.Name() == "xsync.run" {
			failed = s.Status().Description == "backend failed" && len(s.Events()) > 0
		}
	}
	assert.True(t, failed, "the run span records the backend's error")
}

// End to end on a real Redis server: a contended run, a run that holds the
// lock, and a backend failure when the link to the server is cut, all seen
// through the metrics and spans.
func TestRealRedis(t *testing.T) {
	srv := itest.StartRedis(t)
	p := itest.NewProxy(t, srv.Endpoint())
	name, tel := setUp(t, xredis.New(itest.RedisClientAt(t, p.Addr(), nil)))
	ctx := t.Context()
	item, err := xsync.Lock(ctx, name, "order:1", 5)
	require.NoError(t, err)
	require.True(t, xsync.IsMissingLockErr(xsync.New(name, "order:1").Run(ctx, func(context.Context) error { return nil })))
	_, err = item.Unlock(ctx, name, "order:1")
	require.NoError(t, err)
	require.NoError(t, xsync.New(name, "order:1").Run(ctx, func(context.Context) error { return nil }))
	p.Down()
	err = xsync.New(name, "order:2").Run(ctx, func(context.Context) error { return nil })
	require.Error(t, err)
	require.False(t, xsync.IsMissingLockErr(err))

	b := attribute.String("xsync.backend", name)
	assert.EqualValues(t, 1, tel.sum(t, "xsync.lock.wait.duration", b, outcome(xsync.OutcomeHeld)))
	assert.EqualValues(t, 1, tel.sum(t, "xsync.lock.wait.duration", b, outcome(xsync.OutcomeAcquired)))
	assert.EqualValues(t, 1, tel.sum(t, "xsync.lock.wait.duration", b, outcome(xsync.OutcomeFailed)))
	assert.EqualValues(t, 1, tel.sum(t, "xsync.lock.hold.duration", b, outcome(xsync.OutcomeKept)))
	assert.EqualValues(t, 2, tel.sum(t, "xsync.lock.releases", b, outcome(xsync.OutcomeReleased)))
	assert.EqualValues(t, 0, tel.sum(t, "xsync.lock.held", b))
	var runs int
	for _, s := range tel.spans.Ended() {
		if s.Name() == "xsync.run" {
			runs++
		}
	}
	assert.Equal(t, 3, runs)
}

// Every kind of lock, taken as a lease, is counted as held from its
// acquisition to its release.
func TestLeasesOfEveryKind(t *testing.T) {
	l := memory.New()
	name, tel := setUp(t, l)
	c := xsync.NewClient(l, xsync.WithName(name))
	b := attribute.String("xsync.backend", name)
	ctx := t.Context()
	var leases []*xsync.Lease
	take := func(le *xsync.Lease, err error) {
		t.Helper()
		require.NoError(t, err)
		leases = append(leases, le)
	}
	take(c.Acquire(ctx, "m"))
	take(c.Semaphore("s", 2).Acquire(ctx))
	take(c.RWLock("rw").AcquireRead(ctx))
	take(c.AcquireAll(ctx, []string{"a", "b"}))
	assert.EqualValues(t, 4, tel.sum(t, "xsync.lock.held", b))
	assert.EqualValues(t, 4, tel.sum(t, "xsync.lock.attempts", b, outcome(xsync.OutcomeAcquired)))
	for _, le := range leases {
		released, err := le.Release(ctx)
		require.NoError(t, err)
		require.True(t, released)
	}
	assert.EqualValues(t, 0, tel.sum(t, "xsync.lock.held", b))
	assert.EqualValues(t, 4, tel.sum(t, "xsync.lock.releases", b, outcome(xsync.OutcomeReleased)))
	assert.EqualValues(t, 4, tel.sum(t, "xsync.lock.hold.duration", b, outcome(xsync.OutcomeKept)))
}

// The leader gauge counts the elections this process leads.
func TestElectionLeaderGauge(t *testing.T) {
	l := memory.New()
	name, tel := setUp(t, l)
	c := xsync.NewClient(l, xsync.WithName(name))
	b := attribute.String("xsync.backend", name)
	term, err := c.Election("report").Campaign(t.Context())
	require.NoError(t, err)
	assert.EqualValues(t, 1, tel.sum(t, "xsync.election.leader", b))
	_, err = term.Resign(t.Context())
	require.NoError(t, err)
	assert.EqualValues(t, 0, tel.sum(t, "xsync.election.leader", b))
	assert.EqualValues(t, 0, tel.sum(t, "xsync.lock.held", b))
}
