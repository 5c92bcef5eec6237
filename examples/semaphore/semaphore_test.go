package main

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend/memory"
)

// Six workers calling a service that takes two calls at once never call
// it three times at once, and every call is made.
func TestLimitedAcrossWorkers(t *testing.T) {
	t.Parallel()
	store := memory.New()
	svc := &Service{Limit: 2, Latency: 5 * time.Millisecond}
	var wg sync.WaitGroup
	for range 6 {
		locks := xsync.NewClient(store)
		wg.Go(func() {
			for range 5 {
				assert.NoError(t, Limited(t.Context(), locks, svc))
			}
		})
	}
	wg.Wait()
	assert.Zero(t, svc.over.Load(), "calls over the limit")
	assert.EqualValues(t, 30, svc.calls.Load())
	assert.LessOrEqual(t, svc.most.Load(), int32(2))
}

// Without the semaphore the same workers overrun the service: the test
// above could fail.
func TestUnlimitedOverruns(t *testing.T) {
	t.Parallel()
	svc := &Service{Limit: 2, Latency: 200 * time.Millisecond}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 6 {
		wg.Go(func() {
			<-start
			require.NoError(t, svc.Call(t.Context()))
		})
	}
	close(start)
	wg.Wait()
	assert.Positive(t, svc.over.Load(), "6 simultaneous calls to a 2-call service")
}
