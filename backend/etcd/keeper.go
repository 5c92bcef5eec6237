package etcd

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Idle is how long a Locker keeps its lease keep-alive stream open after
// the last keep-alive it sent was answered.
const Idle = 10 * time.Second

// idleAfter is Idle in nanoseconds; the package's tests shorten it (an
// atomic: a stream of an earlier test's Locker may still read it).
var idleAfter atomic.Int64

func init() { idleAfter.Store(int64(Idle)) }

// IdleGoroutines names the goroutine of an idle keep-alive stream, which
// outlives the last keep-alive by up to Idle: for a goroutine leak check.
var IdleGoroutines = []string{"github.com/xsync-go/xsync/backend/etcd.(*keeper).receive"}

// keeper renews leases, one keep-alive at a time per request, on one
// LeaseKeepAlive stream per Locker, opened on first use and closed Idle
// after the last answer. The etcd client's KeepAliveOnce opens a stream
// for each keep-alive; that costs more than the request itself, and with
// a user and password the client authenticates anew for every stream (a
// password check on the server). A keep-alive is answered on the stream
// with the lease's new TTL, or a TTL of 0 if the lease is gone.
type keeper struct {
	client *clientv3.Client

	mu      sync.Mutex
	stream  pb.Lease_LeaseKeepAliveClient // nil: none open
	cancel  context.CancelFunc            // ends stream
	waiting map[int64][]chan keepAnswer   // by lease ID, in the order sent; nil: its caller left
	idle    *time.Timer
}

type keepAnswer struct {
	ttl int64
	err error
}

// keepAlive renews the lease id to its full TTL and returns that TTL in
// seconds; rpctypes.ErrLeaseNotFound if the lease is gone. It waits for
// the answer until ctx ends.
func (k *keeper) keepAlive(ctx context.Context, id clientv3.LeaseID) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ch := make(chan keepAnswer, 1)
	k.mu.Lock()
	if k.stream == nil {
		if err := k.openLocked(); err != nil {
			k.mu.Unlock()
			return 0, err
		}
	}
	if k.idle != nil {
		k.idle.Stop()
		k.idle = nil
	}
	k.waiting[int64(id)] = append(k.waiting[int64(id)], ch)
	if err := k.stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(id)}); err != nil {
		k.endLocked(rpctypes.Error(err))
		k.mu.Unlock()
		return 0, rpctypes.Error(err)
	}
	k.mu.Unlock()
	select {
	case a := <-ch:
		return a.ttl, a.err
	case <-ctx.Done():
		// The request stays in line: its answer, when it comes, is its
		// own, not that of a later keep-alive of the same lease (which
		// would then count its renewal from its own, later, sending).
		k.mu.Lock()
		k.leaveLocked(int64(id), ch)
		k.mu.Unlock()
		return 0, ctx.Err()
	}
}

// openLocked opens the stream (with k.mu held): on the client's
// connection, through its interceptors (which attach the auth token),
// requiring a leader, as the client's own keep-alives do.
func (k *keeper) openLocked() error {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
	stream, err := pb.NewLeaseClient(k.client.ActiveConnection()).LeaseKeepAlive(ctx)
	if err != nil {
		cancel()
		return rpctypes.Error(err)
	}
	if k.waiting == nil {
		k.waiting = map[int64][]chan keepAnswer{}
	}
	k.stream, k.cancel = stream, cancel
	go k.receive(stream)
	return nil
}

// receive hands each answer on stream to the keep-alive waiting for it,
// until the stream ends; then every keep-alive still waiting fails.
func (k *keeper) receive(stream pb.Lease_LeaseKeepAliveClient) {
	for {
		resp, err := stream.Recv()
		k.mu.Lock()
		if k.stream != stream { // closed while idle, or replaced
			k.mu.Unlock()
			return
		}
		if err != nil {
			k.endLocked(rpctypes.Error(err))
			k.mu.Unlock()
			return
		}
		a := keepAnswer{ttl: resp.TTL}
		if resp.TTL <= 0 {
			a = keepAnswer{err: rpctypes.ErrLeaseNotFound}
		}
		// The server answers a stream's requests in the order sent.
		if chs := k.waiting[resp.ID]; len(chs) > 0 {
			if chs[0] != nil {
				chs[0] <- a
			}
			if len(chs) == 1 {
				delete(k.waiting, resp.ID)
			} else {
				k.waiting[resp.ID] = chs[1:]
			}
		}
		if k.pendingLocked() == 0 && k.idle == nil {
			k.idle = time.AfterFunc(time.Duration(idleAfter.Load()), k.closeIdle)
		}
		k.mu.Unlock()
	}
}

// leaveLocked marks the place of ch among the keep-alives waiting for
// lease id as left: its answer goes to no one.
func (k *keeper) leaveLocked(id int64, ch chan keepAnswer) {
	for i, c := range k.waiting[id] {
		if c == ch {
			k.waiting[id][i] = nil
			return
		}
	}
}

// pendingLocked counts the keep-alives still waiting for an answer whose
// callers wait too.
func (k *keeper) pendingLocked() int {
	n := 0
	for _, chs := range k.waiting {
		for _, ch := range chs {
			if ch != nil {
				n++
			}
		}
	}
	return n
}

// endLocked closes the stream and fails every keep-alive waiting on it
// with err; the next keep-alive opens a new stream.
func (k *keeper) endLocked(err error) {
	if k.stream == nil {
		return
	}
	if err == nil {
		err = errors.New("etcd: keep-alive stream closed")
	}
	for id, chs := range k.waiting {
		for _, ch := range chs {
			if ch != nil {
				ch <- keepAnswer{err: err}
			}
		}
		delete(k.waiting, id)
	}
	k.cancel()
	k.stream, k.cancel = nil, nil
	if k.idle != nil {
		k.idle.Stop()
		k.idle = nil
	}
}

// close closes the stream, failing the keep-alives waiting on it; the
// next keep-alive opens another.
func (k *keeper) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.endLocked(errors.New("etcd: the Locker was closed"))
}

// closeIdle closes the stream if no keep-alive has been sent since the
// timer was set.
func (k *keeper) closeIdle() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.idle == nil || k.pendingLocked() > 0 {
		return
	}
	k.idle = nil
	k.endLocked(nil)
}
