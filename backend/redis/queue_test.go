package redis_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	xredis "github.com/xsync-go/xsync/backend/redis"
	"github.com/xsync-go/xsync/internal/itest"
)

// queueEnv is one server, a key, and clients that each have their own
// Locker and connections, as separate processes would.
type queueEnv struct {
	t      *testing.T
	srv    *itest.Server
	admin  *goredis.Client
	prefix string
	key    string
}

func newQueueEnv(t *testing.T) *queueEnv {
	srv := itest.StartRedis(t)
	return &queueEnv{t: t, srv: srv, admin: itest.RedisClient(t, srv), prefix: newPrefix(), key: "q"}
}

func (e *queueEnv) client() *xsync.Client {
	return xsync.NewClient(xredis.New(itest.RedisClient(e.t, e.srv), xredis.WithPrefix(e.prefix)))
}

// queue is the key's queue as the server holds it: the waiters, in order.
func (e *queueEnv) queue() []string {
	q, err := e.admin.HGet(context.Background(), e.prefix+e.key, "q").Result()
	if err == goredis.Nil {
		return nil
	}
	require.NoError(e.t, err)
	var ws []string
	for _, entry := range strings.Fields(q) {
		w, _, _ := strings.Cut(entry, "=")
		ws = append(ws, w)
	}
	return ws
}

// queued waits until the server's queue has n waiters: the state of the
// server, which sends no event.
func (e *queueEnv) queued(n int) {
	require.Eventually(e.t, func() bool { return len(e.queue()) == n }, 10*time.Second, 5*time.Millisecond,
		"want %d waiters queued", n)
}

type acquired struct {
	who   int
	lease *xsync.Lease
	err   error
	at    time.Time
}

// TestQueueFIFO: waiters get a contended key in the order they came, each
// woken by the release before it (their retry interval is far longer than
// the whole test), and the queue is empty at the end.
func TestQueueFIFO(t *testing.T) {
	e := newQueueEnv(t)
	ctx := t.Context()
	holder, err := e.client().Acquire(ctx, e.key, xsync.WithTTL(30*time.Second))
	require.NoError(t, err)
	const n, interval = 5, 10 * time.Second
	got := make(chan acquired, n)
	for i := range n {
		c := e.client()
		go func() {
			l, err := c.Acquire(ctx, e.key, xsync.WithTTL(30*time.Second), xsync.WithWait(time.Minute), xsync.WithRetryInterval(interval))
			got <- acquired{who: i, lease: l, err: err, at: time.Now()}
		}()
		e.queued(i + 1)
	}
	released := time.Now()
	_, err = holder.Release(ctx)
	require.NoError(t, err)
	var order []int
	var tokens []xsync.Item
	for range n {
		a := <-got
		require.NoError(t, a.err)
		order = append(order, a.who)
		tokens = append(tokens, a.lease.Token())
		ok, err := a.lease.Release(ctx)
		require.NoError(t, err)
		require.True(t, ok)
	}
	assert.Equal(t, []int{0, 1, 2, 3, 4}, order, "the order the waiters came in")
	assert.IsIncreasing(t, tokens)
	// Without the release notification each waiter would have slept at
	// least interval/2 (5s).
	assert.Less(t, time.Since(released), interval/2, "%d handoffs", n)
	t.Logf("%d handoffs in %v", n, time.Since(released))
	assert.Empty(t, e.queue())
}

// TestQueueGiveUp: a waiter that gives up leaves the queue at once, and
// the one behind it gets the key on the next release without waiting for
// it.
func TestQueueGiveUp(t *testing.T) {
	e := newQueueEnv(t)
	ctx := t.Context()
	holder, err := e.client().Acquire(ctx, e.key, xsync.WithTTL(30*time.Second))
	require.NoError(t, err)
	const interval = 10 * time.Second
	actx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	a, b := e.client(), e.client()
	go func() {
		_, err := a.Acquire(actx, e.key, xsync.WithWait(time.Minute), xsync.WithRetryInterval(interval))
		gaveUp <- err
	}()
	e.queued(1)
	first := e.queue()[0]
	got := make(chan acquired, 1)
	go func() {
		l, err := b.Acquire(ctx, e.key, xsync.WithWait(time.Minute), xsync.WithRetryInterval(interval))
		got <- acquired{lease: l, err: err, at: time.Now()}
	}()
	e.queued(2)
	cancel()
	require.ErrorIs(t, <-gaveUp, xsync.ErrMissingLock)
	assert.NotContains(t, e.queue(), first, "the waiter that gave up left the queue")
	assert.Len(t, e.queue(), 1)
	released := time.Now()
	_, err = holder.Release(ctx)
	require.NoError(t, err)
	g := <-got
	require.NoError(t, g.err)
	assert.Less(t, g.at.Sub(released), interval/2, "the second waiter was woken by the release")
}

// TestQueueDeadWaiter: a waiter that died in the queue (its process
// killed: it never attempts again) holds the key back for its keep time
// at most: the waiter behind it gets the key once the dead one's entry
// has expired, and not before (the queue is FIFO).
func TestQueueDeadWaiter(t *testing.T) {
	e := newQueueEnv(t)
	ctx := t.Context()
	holder, err := e.client().Acquire(ctx, e.key, xsync.WithTTL(30*time.Second))
	require.NoError(t, err)
	// The dead waiter, alive in the queue for 1.5s of server time more.
	now, err := e.admin.Time(ctx).Result()
	require.NoError(t, err)
	const keep = 1500 * time.Millisecond
	deadline := now.Add(keep)
	require.NoError(t, e.admin.HSet(ctx, e.prefix+e.key, "q", "dead="+itoa(deadline.UnixMilli())).Err())
	const interval = 100 * time.Millisecond // the live waiter's keep: 1s
	got := make(chan acquired, 1)
	go func() {
		l, err := e.client().Acquire(ctx, e.key, xsync.WithWait(time.Minute), xsync.WithRetryInterval(interval))
		got <- acquired{lease: l, err: err, at: time.Now()}
	}()
	e.queued(2)
	require.Equal(t, "dead", e.queue()[0])
	_, err = holder.Release(ctx)
	require.NoError(t, err)
	released := time.Now()
	g := <-got
	require.NoError(t, g.err)
	waited := g.at.Sub(released)
	// Server and test share a clock (one machine); 20ms for the rounding
	// of the deadline to milliseconds and the scheduling of the two.
	assert.GreaterOrEqual(t, g.at, deadline.Add(-20*time.Millisecond), "the key went to the waiter behind a live one")
	assert.Less(t, waited, keep+interval+time.Second, "held back longer than the dead waiter's keep time")
	t.Logf("the waiter behind a dead one got the key %v after the release (the dead one's keep: %v)", waited, keep)
	assert.Empty(t, e.queue())
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
