package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend/memory"
)

// Two replicas whose ticks are 300ms apart run a daily job once per day,
// for a week: the second replica's tick finds the lock kept by
// WithHoldAtLeast although the first replica's job took 50ms. The clock is
// manual: no sleeping.
func TestOncePerPeriodAcrossReplicas(t *testing.T) {
	t.Parallel()
	clock := memory.NewManualClock(time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC))
	store := memory.New(memory.WithClock(clock.Now))
	replicas := []*xsync.Client{
		xsync.NewClient(store, xsync.WithClock(clock)),
		xsync.NewClient(store, xsync.WithClock(clock)),
	}
	const day, skew, work = 24 * time.Hour, 300 * time.Millisecond, 50 * time.Millisecond
	runs := 0
	job := Job{Name: "daily-report", Period: day, Run: func(context.Context) error {
		runs++
		clock.Advance(work) // the job's work
		return nil
	}}
	ctx := t.Context()
	for d := range 7 {
		ran0, err := Tick(ctx, replicas[0], job)
		require.NoError(t, err)
		clock.Advance(skew - work)
		ran1, err := Tick(ctx, replicas[1], job)
		require.NoError(t, err)
		assert.True(t, ran0 != ran1, "day %d: exactly one replica runs the job (ran: %v, %v)", d, ran0, ran1)
		clock.Advance(day - skew)
	}
	assert.Equal(t, 7, runs, "once per day for a week")
}

// Without hold-at-least the same schedule runs the job twice a day: the
// second replica ticks after the first one released the lock. This is the
// failure the option exists for.
func TestWithoutHoldAtLeastRunsTwice(t *testing.T) {
	t.Parallel()
	clock := memory.NewManualClock(time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC))
	store := memory.New(memory.WithClock(clock.Now))
	a := xsync.NewClient(store, xsync.WithClock(clock))
	b := xsync.NewClient(store, xsync.WithClock(clock))
	runs := 0
	job := func(context.Context) error { runs++; clock.Advance(50 * time.Millisecond); return nil }
	ctx := t.Context()
	require.NoError(t, a.Run(ctx, "cron:daily-report", job, xsync.WithTTL(12*time.Hour)))
	clock.Advance(250 * time.Millisecond)
	require.NoError(t, b.Run(ctx, "cron:daily-report", job, xsync.WithTTL(12*time.Hour)))
	assert.Equal(t, 2, runs)
}
