// Package xotel is an xsync observer that reports to OpenTelemetry:
// metrics for every lock operation of every kind of lock, and a span for
// every Run.
//
//	o, err := xotel.New() // the global MeterProvider and TracerProvider
//	if err != nil { ... }
//	restore := xsync.SetObserver("", o)
//
// It is a module of its own (github.com/xsync-go/xsync/xotel), so that
// applications without OpenTelemetry do not compile it; it uses the
// OpenTelemetry API only.
//
// # Metrics
//
// All carry xsync.backend (the registered name) and, where it applies,
// xsync.outcome (acquired, held, failed, ctx_ended; extended, not_held;
// released; kept, lost). Keys are never metric attributes: there are
// unboundedly many, and they often carry user ids.
//
//   - xsync.lock.acquire.duration (histogram, s): each acquire attempt.
//   - xsync.lock.wait.duration (histogram, s): an acquisition's whole
//     obtaining phase (Run's, or a lease's).
//   - xsync.lock.hold.duration (histogram, s): from acquisition to the
//     hold's end (Run's callback returned, the lease was released, or the
//     lock was lost).
//   - xsync.lock.attempts ({attempt}), xsync.lock.renewals ({renewal}),
//     xsync.lock.releases ({release}): counters by outcome; failed
//     releases are xsync.lock.releases with outcome failed.
//   - xsync.lock.lost ({lock}): locks lost while held.
//   - xsync.lock.held ({lock}): Runs and leases holding a lock right now
//     (an up-down counter; Lock/Unlock pairs are not counted, since an
//     Item may be left to expire).
//   - xsync.election.leader ({election}): elections this process leads
//     right now (an up-down counter: 1 while it leads the one election it
//     campaigns in, per backend; never the election's name).
//
// # Spans
//
// Each Run is a span xsync.run, a child of the span in Run's context, and
// the parent of the callback's spans (the callback's context carries it).
// It has two children, xsync.wait and xsync.hold, recorded when each ends,
// and an event xsync.lost if the lock was lost. Attributes: xsync.backend,
// xsync.outcome, xsync.attempts, xsync.token; the key (xsync.key,
// shortened) only with [WithKeyInSpans].
package xotel

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/internal/keys"
)

// ScopeName is the instrumentation scope of the meter and the tracer.
const ScopeName = "github.com/xsync-go/xsync/xotel"

// Option configures an Observer.
type Option func(*config)

type config struct {
	mp  metric.MeterProvider
	tp  trace.TracerProvider
	key bool
}

// WithMeterProvider reports metrics to mp instead of the global one.
func WithMeterProvider(mp metric.MeterProvider) Option { return func(c *config) { c.mp = mp } }

// WithTracerProvider records spans with tp instead of the global one.
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *config) { c.tp = tp } }

// WithKeyInSpans puts the lock's key (a long key shortened to its first
// 48 bytes, its length and a hash) on spans as xsync.key. Off by default: keys often carry user ids.
func WithKeyInSpans() Option { return func(c *config) { c.key = true } }

// Observer reports xsync's events to OpenTelemetry. Build it with [New].
// It is safe for concurrent use.
type Observer struct {
	tracer   trace.Tracer
	key      bool
	acquire  metric.Float64Histogram
	wait     metric.Float64Histogram
	hold     metric.Float64Histogram
	attempts metric.Int64Counter
	renewals metric.Int64Counter
	releases metric.Int64Counter
	lost     metric.Int64Counter
	held     metric.Int64UpDownCounter
	leading  metric.Int64UpDownCounter
	attrs    sync.Map // attrKey -> metric.MeasurementOption, built once
}

type attrKey struct {
	backend string
	outcome xsync.Outcome // "" for the backend alone
}

// opts returns the measurement option for backend and outcome (outcome ""
// for the backend alone), building its attribute set once.
func (o *Observer) opts(backend string, outcome xsync.Outcome) metric.MeasurementOption {
	k := attrKey{backend, outcome}
	if v, ok := o.attrs.Load(k); ok {
		return v.(metric.MeasurementOption)
	}
	kvs := []attribute.KeyValue{attribute.String("xsync.backend", backend)}
	if outcome != "" {
		kvs = append(kvs, attribute.String("xsync.outcome", string(outcome)))
	}
	v, _ := o.attrs.LoadOrStore(k, metric.WithAttributeSet(attribute.NewSet(kvs...)))
	return v.(metric.MeasurementOption)
}

var (
	_ xsync.Observer   = (*Observer)(nil)
	_ xsync.RunStarter = (*Observer)(nil)
)

// New returns an Observer that reports to the global providers, or to the
// ones the options give.
func New(opts ...Option) (*Observer, error) {
	c := config{}
	for _, o := range opts {
		o(&c)
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	m := c.mp.Meter(ScopeName)
	o := &Observer{tracer: c.tp.Tracer(ScopeName), key: c.key}
	var err error
	seconds := func(name, desc string) metric.Float64Histogram {
		if err != nil {
			return nil
		}
		var h metric.Float64Histogram
		h, err = m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc))
		return h
	}
	counter := func(name, unit, desc string) metric.Int64Counter {
		if err != nil {
			return nil
		}
		var ctr metric.Int64Counter
		ctr, err = m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		return ctr
	}
	o.acquire = seconds("xsync.lock.acquire.duration", "Duration of one acquire attempt.")
	o.wait = seconds("xsync.lock.wait.duration", "Duration of an acquisition's obtaining phase, all attempts and waits.")
	o.hold = seconds("xsync.lock.hold.duration", "Time from a lock's acquisition to the end of its hold.")
	o.attempts = counter("xsync.lock.attempts", "{attempt}", "Acquire attempts, by outcome.")
	o.renewals = counter("xsync.lock.renewals", "{renewal}", "Renewals (auto-extension and Extend), by outcome.")
	o.releases = counter("xsync.lock.releases", "{release}", "Releases, by outcome.")
	o.lost = counter("xsync.lock.lost", "{lock}", "Locks lost while held.")
	if err != nil {
		return nil, err
	}
	if o.held, err = m.Int64UpDownCounter("xsync.lock.held", metric.WithUnit("{lock}"),
		metric.WithDescription("Runs and leases holding a lock right now.")); err != nil {
		return nil, err
	}
	if o.leading, err = m.Int64UpDownCounter("xsync.election.leader", metric.WithUnit("{election}"),
		metric.WithDescription("Elections this process leads right now.")); err != nil {
		return nil, err
	}
	return o, nil
}

// StartRun implements [xsync.RunStarter]: it starts the xsync.run span.
func (o *Observer) StartRun(ctx context.Context, backend, key string) context.Context {
	attrs := []attribute.KeyValue{attribute.String("xsync.backend", backend)}
	if o.key {
		attrs = append(attrs, attribute.String("xsync.key", keys.Trim(key)))
	}
	ctx, _ = o.tracer.Start(ctx, "xsync.run", trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	return ctx
}

// Observe implements [xsync.Observer].
func (o *Observer) Observe(ctx context.Context, e xsync.Event) {
	outcome := attribute.String("xsync.outcome", string(e.Outcome))
	both := o.opts(e.Backend, e.Outcome)
	backend := o.opts(e.Backend, "")
	switch e.Kind {
	case xsync.KindAttempt:
		o.attempts.Add(ctx, 1, both)
		o.acquire.Record(ctx, e.Duration.Seconds(), both)
	case xsync.KindWait:
		o.wait.Record(ctx, e.Duration.Seconds(), both)
		if e.Outcome == xsync.OutcomeAcquired {
			o.held.Add(ctx, 1, backend) // every hold: its end is its KindHold
			if e.Lock == "election" {
				o.leading.Add(ctx, 1, backend)
			}
		}
		if !e.Run {
			return
		}
		run := trace.SpanFromContext(ctx)
		o.child(ctx, "xsync.wait", e, attribute.Int("xsync.attempts", e.Attempts))
		if e.Outcome == xsync.OutcomeAcquired {
			run.SetAttributes(attribute.Int64("xsync.token", int64(e.Token)))
			return
		}
		// Not obtained: the run ends here.
		run.SetAttributes(outcome, attribute.Int("xsync.attempts", e.Attempts))
		if e.Outcome == xsync.OutcomeFailed {
			run.SetStatus(codes.Error, "backend failed")
			run.RecordError(e.Err)
		}
		run.End()
	case xsync.KindHold:
		o.hold.Record(ctx, e.Duration.Seconds(), both)
		o.held.Add(ctx, -1, backend)
		if e.Lock == "election" {
			o.leading.Add(ctx, -1, backend)
		}
		if e.Run {
			o.child(ctx, "xsync.hold", e, attribute.Int64("xsync.token", int64(e.Token)))
		}
	case xsync.KindRenew:
		o.renewals.Add(ctx, 1, both)
	case xsync.KindLost:
		o.lost.Add(ctx, 1, backend)
		msg := ""
		if e.Err != nil {
			msg = e.Err.Error()
		}
		trace.SpanFromContext(ctx).AddEvent("xsync.lost", trace.WithAttributes(attribute.String("xsync.cause", msg)))
	case xsync.KindRelease:
		o.releases.Add(ctx, 1, both)
		if !e.Run {
			return
		}
		run := trace.SpanFromContext(ctx)
		run.SetAttributes(attribute.String("xsync.release.outcome", string(e.Outcome)))
		if e.Outcome == xsync.OutcomeFailed {
			run.RecordError(e.Err)
		}
		run.End()
	}
}

// child records a finished child span of the run in ctx, from e's start
// to its end.
func (o *Observer) child(ctx context.Context, name string, e xsync.Event, attrs ...attribute.KeyValue) {
	attrs = append(attrs, attribute.String("xsync.outcome", string(e.Outcome)))
	_, span := o.tracer.Start(ctx, name, trace.WithTimestamp(e.Start), trace.WithAttributes(attrs...))
	if e.Outcome == xsync.OutcomeFailed || e.Outcome == xsync.OutcomeLost {
		span.SetStatus(codes.Error, string(e.Outcome))
	}
	span.End(trace.WithTimestamp(e.Start.Add(e.Duration)))
}
