package xsync_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend/memory"
)

// recorder keeps every event it observes.
type recorder struct {
	mu     sync.Mutex
	events []xsync.Event
	starts int
}

func (r *recorder) Observe(_ context.Context, e xsync.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) kinds() []xsync.EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []xsync.EventKind
	for _, e := range r.events {
		out = append(out, e.Kind)
	}
	return out
}

type starter struct{ *recorder }

type startKey struct{}

func (s starter) StartRun(ctx context.Context, _, _ string) context.Context {
	s.mu.Lock()
	s.starts++
	s.mu.Unlock()
	return context.WithValue(ctx, startKey{}, "started")
}

func TestObserverDefaultAndPerName(t *testing.T) {
	name := use(t, memory.New())
	def, own := &recorder{}, &recorder{}
	t.Cleanup(xsync.SetObserver("", def))
	_, err := xsync.Lock(t.Context(), name, "k", 1)
	require.NoError(t, err)
	assert.Equal(t, []xsync.EventKind{xsync.KindAttempt}, def.kinds(), "the default observer sees a backend without its own")
	restore := xsync.SetObserver(name, own)
	_, err = xsync.Lock(t.Context(), name, "k2", 1)
	require.NoError(t, err)
	assert.Len(t, own.kinds(), 1, "a backend's own observer wins")
	assert.Len(t, def.kinds(), 1)
	restore()
	_, err = xsync.Lock(t.Context(), name, "k3", 1)
	require.NoError(t, err)
	assert.Len(t, def.kinds(), 2, "restored: the default again")
}

func TestObserverRunEventsAndTee(t *testing.T) {
	name := use(t, memory.New())
	a, b := &recorder{}, starter{&recorder{}}
	t.Cleanup(xsync.SetObserver(name, xsync.Tee(a, nil, b)))
	var seen any
	require.NoError(t, xsync.New(name, "k").Run(t.Context(), func(ctx context.Context) error {
		seen = ctx.Value(startKey{})
		return nil
	}))
	want := []xsync.EventKind{xsync.KindAttempt, xsync.KindWait, xsync.KindHold, xsync.KindRelease}
	assert.Equal(t, want, a.kinds())
	assert.Equal(t, want, b.kinds())
	assert.Equal(t, 1, b.starts)
	assert.Equal(t, "started", seen, "the callback's context comes from StartRun's")
	for _, e := range a.events {
		assert.True(t, e.Run)
		assert.Equal(t, name, e.Backend)
		assert.Positive(t, e.Token)
	}
}
