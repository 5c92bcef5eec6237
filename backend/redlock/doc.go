// Package redlock is an xsync lock backend over N independent Redis nodes
// (no replication between them), using the Redlock algorithm as
// implemented by github.com/go-redsync/redsync/v4: a lock is held when a
// majority of the nodes granted it within its validity.
//
//	var clients []goredis.UniversalClient
//	for _, addr := range []string{"r1:6379", "r2:6379", "r3:6379", "r4:6379", "r5:6379"} {
//		clients = append(clients, goredis.NewClient(&goredis.Options{Addr: addr, ContextTimeoutEnabled: true}))
//	}
//	xsync.Register("default", redlock.New(clients))
//
// # What is guaranteed
//
// Under Redlock's timing assumptions (below), while a majority of the nodes
// is up and keeps its data:
//
//   - Mutual exclusion: two holders would each need a majority of the
//     nodes, and any two majorities share a node, which grants a key to one
//     holder at a time (SET NX PX).
//   - Owner-only release and extend: each node checks the holder's value (a
//     random 63-bit token) in a script.
//   - Availability: locking goes on with up to (N-1)/2 nodes down, slow or
//     partitioned away. Once a majority of the nodes has answered a call,
//     the others are given at most the node timeout (50ms by default) from
//     the start of the call, so a frozen minority costs at most that. Until
//     a majority has answered, a call waits up to the quorum timeout (1s
//     by default; dialling counts, so a burst on cold connections is not
//     failed) and then fails with "quorum unreachable".
//   - Validity: the lock is trusted for its TTL minus the time the
//     acquisition took minus an allowance for clock drift (1% of the TTL
//     plus 2ms). The callback of xsync's Run is cancelled at that moment.
//
// Contention and failure are told apart: if a majority of the nodes
// answered and the lock was not obtained, someone else holds it ((0, nil),
// so xsync.ErrMissingLock from Run); if fewer than a majority answered, the
// error says the quorum was unreachable (it matches backend.ErrUnavailable,
// not ErrMissingLock). Release and refresh say (false, nil) only when a
// majority answered that the token no longer holds the key; when too few
// answered to tell, they return an error, and xsync does not report a
// lost lock for it.
//
// # Under faults, as histories show
//
// TestHistory records concurrent histories with conformance/history on
// three nodes under each fault below and checks them; docs/safety.md has
// the figures of a soak. Under every one, no release or refresh succeeds
// for a token that lost the key, and a callback that outlives its lock has
// its context ended at the validity deadline.
//
//   - One node paused, cut off or killed and restarted (always the same
//     one), two nodes paused or cut off, a client's link frozen: mutual
//     exclusion holds; with two of three nodes gone nothing is granted
//     ("quorum unreachable"). Votes of acquisitions that failed may linger
//     on a node until their TTL (counted as orphans).
//   - Two of three nodes killed and restarted without persistence: the
//     majority forgets held locks, and a second holder wins inside the
//     first one's validity (the history must show it, or the test fails).
//     Restarting different nodes one after another has the same effect
//     once a holder's remaining majority includes a restarted node: keep
//     a restarted node out for longer than the longest hold (the TTL, or
//     the auto-extension cap), or run the nodes with appendfsync always.
//   - Tokens do not fence: a holder that stalls past its validity writes
//     after the next holder, and the resource cannot tell (counted as
//     stale writes accepted, in every cell, faults or not).
//
// # Operators
//
// [Locker.Inspect] reads every node: a key is held if a majority of the
// nodes hold the same token, for as long as that majority lasts.
// [Locker.ForceRelease] deletes the key on every node and needs a majority
// to answer; waiters hear of it as of a release. Redlock stores no owner
// metadata.
//
// # Release notification
//
// Release and force release publish on every node where they deleted the
// key, and waiters listen ([Locker.Watch]): each Locker keeps one pub/sub
// connection per node, shared by all its waiters and closed 10s after the
// last one left. A wait thus ends about a round trip after the release,
// not at the waiter's retry interval. A message lost (a node's
// connection broken, or down: a waiter listens on every node but needs
// only a majority's confirmation to start) costs that waiter at most the
// retry interval of the first waiter in its line (below). Waiters also
// wake when the holder's majority expires, which publishes nothing: a
// timer at the holder's time left, and then a read across the nodes,
// which sets the timer again while a holder (the same after a refresh, or
// a new one) still holds a majority.
//
// A Locker's waiters of one key line up, in arrival order, and a release
// (or the holder's expiry) wakes only the first of them: a freed key has
// room for one holder, so one attempt per Locker is enough, and each
// further one would send a round to every node and split the votes. The
// first waiter leaves the line when it stops waiting (it got the lock or
// gave up), and hands on a wake it had not taken. While a waiter is ahead
// of them in the line, the others' attempts (their timed retries) are
// refused without a round: the first retries for the line, so the nodes'
// work does not grow with the callers that wait; a waiter that joins while
// the key is free wakes the first. Waiters on different Lockers all wake,
// so a release costs one attempt per Locker that has waiters, however
// many callers wait. An election's observers ([backend.Notifier]) do not
// line up: each hears every change.
//
// # Split votes
//
// Contenders that lock a free key at the same moment can split the nodes
// so that none has a majority. Redlock as specified then fails them all;
// here the contender that holds the lowest-numbered node that answered
// keeps its nodes and claims the others, which every other contender
// releases at once. A burst of simultaneous contenders thus elects one
// winner (measured: TestSplitVoteBursts), at the cost of about one more
// round trip for the winner in that case only; the uncontended path is
// unchanged.
//
// # Clean-up
//
// A failed acquire (contention, a quorum unreachable, the caller's context
// ended) releases every node that granted it or did not answer, before it
// returns: up to one more node timeout when nodes are frozen. A node that
// was frozen throughout may still apply the request when it wakes; the
// key then stays held on that node alone (a minority) until its TTL.
//
// # What is not guaranteed
//
//   - Tokens are not fencing tokens. They are unique per acquisition but
//     random, not ordered: Redlock has no single place that could order
//     acquisitions (a counter on each node is only as ordered as the
//     majorities that see it, and a node that lost its data resets it).
//     Martin Kleppmann's critique ("How to do distributed locking") and
//     antirez's reply are the debate; both agree that a lock without a
//     fencing token cannot protect a resource against a holder that stalls
//     past its validity. Where that matters, use etcd (backend/etcd), or
//     design the writes to be idempotent or checked.
//   - Timing assumptions: process pauses, network delays and clock drift
//     must stay small against the TTL. A node whose clock jumps forward
//     expires keys early.
//   - A node that restarts without persistence forgets the locks it
//     granted; with the one that held the deciding vote gone, a second
//     holder can get a majority while the first still holds the lock.
//     Mitigation: keep a restarted node out for at least the longest TTL
//     in use (or run it with fsync'd persistence).
//
// No semaphore, read-write lock or multi-key lock: the Locker has none of
// backend.Semaphorer, RWLocker and MultiLocker, and xsync says
// errors.ErrUnsupported. A semaphore cannot be built soundly on majority
// votes: with N permits each node admits N holders, and N+1 holders can
// each win a majority when (N+1) × majority ≤ N × nodes (3 holders of 2
// permits on 5 nodes: 9 votes ≤ 10), so the limit would not hold. A
// read-write lock and several keys at once can be (any two majorities
// share a node, which refuses the second holder); they are not built yet.
//
// The clients should honour contexts (go-redis ContextTimeoutEnabled:
// true); otherwise a frozen node holds each call for the client's read
// timeout (3s by default) instead of the node timeout.
//
// The nodes are reached through redsync's connection layer
// (github.com/go-redsync/redsync/v4/redis and its go-redis v9 pool); the
// rounds are this package's own, because redsync's Mutex cannot tell "the
// nodes said no" from "too few nodes answered" on release and extend, and
// has no answer to split votes.
//
// # URLs
//
// Importing this package registers the URL scheme "redlock" with
// xsync.Open:
//
//	redlock://[[user]:password@]host1:6379,host2:6379,host3:6379[?options]
//
// Every node gets the same credentials and options. Options: prefix,
// node_timeout and quorum_timeout (durations), drift_factor (see the With*
// options); db; dial_timeout, read_timeout, write_timeout (durations);
// tls=true, with ca_file (the CAs to trust instead of the system's),
// cert_file and key_file (a client certificate), all PEM files; and
// skip_verify=true, which turns certificate verification off: unsafe,
// only for tests. The clients Open builds honour contexts and are closed by
// the Closer Open returns. A least-privileged user on each node needs
// [ACLRules]; TLS and such a user are tested on real nodes.
//
// # Elections
//
// An election is a mutex of the election space ({prefix}e:m:{name} on
// every node), taken by a Redlock round. Its epochs are the mutex's
// tokens: unique, not fencing, so a deposed leader's writes cannot be
// fenced off by epoch; and no identity is stored, so observers learn that
// somebody leads and for how long, not who. A grant is published on every
// node, as releases are, so observers and waiting candidates hear of it.
package redlock
