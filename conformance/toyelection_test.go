package conformance_test

import (
	"context"
	"sync"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// The toy's elections (backend.Electioner): a toy of their own, whose
// mutexes are the elections, with these defects:
//   - election-two-leaders: a campaign ignores the leader (no exclusion);
//   - election-epoch-repeats: epochs count per election and restart;
//   - election-never-expires: a term outlives its TTL;
//   - election-inspect-blind: Inspect never sees a leader;
//   - election-deaf: a waiting candidate is never woken.
// It has no Notifier: observers read the leader every second and at the
// TTL.

var electionDefects = map[string]string{
	"election-two-leaders":   "no-exclusion",
	"election-epoch-repeats": "repeats-tokens",
	"election-never-expires": "never-expires",
}

var _ backend.Electioner = (*toy)(nil)

func (b *toy) Election(name string) backend.Lock {
	b.electOnce.Do(func() { b.elect = newToy(electionDefects[b.defect]) })
	o := b.elect.mutexOps(name)
	o.watchGrant, o.confirm = nil, nil // no grants: candidates are woken (as on Redis)
	switch b.defect {
	case "election-inspect-blind":
		o.inspect = func(context.Context) (backend.Info, error) { return backend.Info{}, nil }
	case "election-deaf":
		watch := o.watch
		o.watch = func(ctx context.Context, w string, keep time.Duration) (<-chan struct{}, func(), error) {
			_, stop, err := watch(ctx, w, keep) // queued, but never told
			return make(chan struct{}), stop, err
		}
	}
	return o.lock()
}

// electionSpace is what a toy keeps for its elections.
type electionSpace struct {
	electOnce sync.Once
	elect     *toy
}
