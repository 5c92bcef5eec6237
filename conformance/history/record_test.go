package history

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync/backend"
)

// refusing is a store on which every attempt is refused.
type refusing struct{}

func (refusing) Acquire(context.Context, string, time.Duration) (int64, error) { return 0, nil }
func (refusing) Release(context.Context, string, int64) (bool, error)          { return false, nil }
func (refusing) RWLock(string) (read, write backend.Lock)                      { return refused{}, refused{} }

type refused struct{}

func (refused) Acquire(context.Context, backend.Request) (int64, error) { return 0, nil }
func (refused) Release(context.Context, int64) (bool, error)            { return false, nil }

// A waiting writer's refused attempt may put or renew its mark, which
// then refuses readers for its keep time, also when the writer gives up
// before its next Watch: the recorder keeps it as a place. A one-shot
// attempt keeps none.
func TestRecorderPlaceOfRefusedWaiter(t *testing.T) {
	r := newHistorian(true, true)
	_, write := r.wrap(0, refusing{}).RWLock("k")
	ctx := context.Background()

	_, err := write.Acquire(ctx, backend.Request{TTL: time.Second})
	require.NoError(t, err)
	assert.Empty(t, r.queued, "a one-shot attempt keeps no place")

	_, err = write.Acquire(ctx, backend.Request{TTL: time.Second, Waiter: "w1", Keep: 3 * time.Second})
	require.NoError(t, err)
	require.Len(t, r.queued, 1)
	q := r.queued[0]
	assert.Equal(t, "w1", q.waiter)
	assert.Equal(t, "rw/k", q.key)
	assert.Equal(t, int64(3*time.Second), q.keep)
	assert.LessOrEqual(t, q.from, q.stop)
	assert.Len(t, r.atts, 2, "both attempts are recorded as refused")
}
