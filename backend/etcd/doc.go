// Package etcd is an xsync lock backend on etcd: leases for expiry,
// transactions for atomicity, and the key's create revision as the
// fencing token.
//
//	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"etcd:2379"}})
//	...
//	locker := etcd.New(cli)
//	defer locker.Close() // at shutdown: revokes the leases kept for the next locks
//	xsync.Register("default", locker)
//
// # What is guaranteed
//
// etcd replicates every write through Raft to a majority before it answers,
// so these hold as long as a majority of the cluster is up and reachable,
// through the loss of any minority of members and through leader changes:
//
//   - Mutual exclusion: a lock is a key created by a transaction guarded on
//     "the key does not exist", attached to a lease of the lock's TTL.
//   - Fencing tokens: the token is the key's create revision, which grows
//     across the whole cluster with every write. Every later acquisition of
//     any key gets a larger token. Data in etcd itself is fenced by
//     [Locker.OwnerCmp] in the transaction that writes it; elsewhere, store
//     the token with the data and refuse smaller ones (UPDATE ... WHERE
//     fence < $token).
//   - Owner-only release: release is a transaction guarded on the key's
//     create revision being the token; an expired holder's token no longer
//     matches, so its release returns false.
//   - Expiry: the lease expires after its TTL on the leader's clock and
//     etcd deletes the key. etcd grants at least its minimum lease TTL:
//     2s with the default election timeout, so the seed's default of 1s
//     becomes 2s on the server (the caller's callback context still ends
//     after the 1s asked for). TTLs are whole seconds, rounded up; expiry
//     happens within about 0.5s after the TTL.
//   - Bounded state: one key and one lease per held lock, and one key per
//     queued waiter; the lock's key goes when the lock is released or
//     expires, a waiter's when it gets the lock, gives up or dies (with its
//     lease), and a lease kept for reuse expires within its TTL if it is
//     not reused.
//   - Operators: every kind's Inspect reads its holders' tokens, time left
//     (their leases', in whole seconds) and, for a mutex, owner metadata
//     (the key's value); ForceRelease deletes the holders whoever they are,
//     which wakes watching waiters; revisions, and so tokens, keep growing.
//   - Waiters queue (FIFO), as etcd's own Mutex has them do: a caller that
//     finds the key held puts an entry under {prefix}q/{hex of key}/ on
//     a lease, and its create revision is its place. A Locker names its
//     entries {its id}.{slot} and reuses the slots of waiters that left,
//     so a queue's range holds as many names as the key has waiters at
//     once: etcd keeps deleted keys in its index until a compaction, and
//     each attempt's comparison of the queue visits them. It watches one key
//     from the current revision (no catch-up stall): the entry just ahead
//     of its own, or, once none is ahead, the lock's key; it tries when
//     the key is gone and no entry is ahead of it, and its transaction
//     checks both. A handoff is thus one watch notification to one waiter
//     after the releasing delete and that waiter's transaction, however
//     many wait (the waiter behind it then moves its watch to the lock's
//     key: a watch and a read); a free key goes to the first waiter, and a
//     newcomer's transaction checks that nobody is queued. A waiter that gives up
//     deletes its entry (one request, up to 250ms); one that dies holds the
//     others back until its entry's lease expires: its keep time,
//     max(3 × retry interval, 1s), rounded up to whole seconds and to
//     MinTTL, plus etcd's expiry delay. A waiter still waiting whose entry
//     expired all the same (none of its attempts got through for that
//     long) puts it again, at the end, at its next refused attempt.
//
// # What is not guaranteed
//
//   - Without a reachable majority, every call fails with the client's
//     error (not xsync.ErrMissingLock). A lock attempt or Ping fails at
//     once, marked backend.ErrUnavailable, when the client cannot connect
//     (its last connection attempt failed: a stopped server, a refused
//     dial); the etcd client alone would wait for a connection until the
//     call's context ends. A server that stops answering on an open
//     connection (frozen, cut off) is not seen that way; a lock attempt
//     then ends at the TTL etcd grants (whole seconds, at least MinTTL:
//     never sooner than a lock granted by a healthy server could be of
//     use), marked backend.ErrUnavailable, unless its context ends sooner
//     (a grant after that TTL could only be of an expired lock), and
//     other calls wait for their context. A holder
//     cut off from the majority cannot refresh, and its lock expires on
//     the majority's side while it may still run. Auto-extension then
//     cancels its callback's context when its TTL runs out; fence writes
//     with the token to be safe.
//   - After a leader change etcd extends every lease by an election timeout,
//     so a lock can outlive its TTL by that much.
//   - A write whose call failed or timed out may have been applied, or may
//     still be applied later. An Acquire that fails therefore revokes its
//     lease before it returns (one more request, at most 250ms): that
//     deletes the key if the put was applied, and makes a put that comes
//     later fail. The lock stays orphaned only if the revocation cannot
//     reach the cluster either, and then until its lease expires: its TTL
//     after the put was applied, which a fault can delay until it heals,
//     plus an election timeout across a leader change (with the leader
//     isolated, soaks showed orphans lasting up to 6.85s with a 2s TTL).
//
// # Under faults, as histories show
//
// TestHistory records concurrent histories with conformance/history
// under each fault below and checks them; docs/safety.md has the figures
// of a soak. One member paused longer than the TTL, killed and restarted
// (its data survives), cut off the network, a client's link frozen, and on
// three members the leader cut off: under every one, mutual exclusion
// holds, tokens grow in grant order, a fenced resource accepts no stale
// write, no release or refresh succeeds for a token that lost the key, and
// a callback that outlives its lock has its context ended at the validity
// deadline. An acquisition that hung through a fault can be granted after
// its validity has passed; Run then hands the callback an already-ended
// context, with a cause matching xsync.ErrLockLost (counted as late
// grants).
//
// # Semaphores, read-write locks, multi-key locks
//
// Each permit and each read or write lock is an entry on a lease of its
// own, and its create revision is its token (for writers, a fencing
// token); waiters watch the entries' deletes.
//
//   - A semaphore of key keeps its permits under {prefix}s/{hex of key}/.
//     An attempt is a lease and one transaction that puts the entry
//     and reads the first limit entries by create revision: the permit is
//     held if its entry is among them, and deleted otherwise (one more
//     request). An entry's place only moves forward, so holders never
//     exceed the limit. Where the Locker's attempts were refused in the
//     last 10 s, an attempt first counts the entries (a linearizable read)
//     and is refused there while limit are held: a refusal then costs a
//     read, not two Raft writes and a deleted name in the range.
//   - A read-write lock of key keeps readers, the writer and the marks of
//     writers that wait under {prefix}r/{hex of key}/. A read attempt
//     is refused while a writer or a mark exists; a write attempt while
//     a reader or a writer does, and a writer that waits then puts its
//     own mark on a lease of its keep time (rounded up to whole seconds
//     and to MinTTL: a lease and a put, then a keep-alive once a third of it
//     passed); its grant or its giving up deletes the mark.
//   - A multi-key lock is one transaction that creates every key, on one
//     lease, if none exists and none has waiters queued; its revision is
//     every key's token. Its refresh is a keep-alive of the lease and one
//     transaction that compares every key with the token and reads one
//     key: the read makes it linearizable (etcd serves a transaction of
//     comparisons alone from one member's state, which lags behind after
//     a partition heals).
//
// Every read that decides whether a lock is held is linearizable.
//
// A release by a Locker that did not take the permit or read lock reads
// the entries first (one more request).
//
// # Keys
//
// Every lock lives under the prefix, in the space of its kind: a mutex is
// the etcd key {prefix}m/{key}; its queue, a semaphore's permits and a
// read-write lock's entries are under {prefix}q/, s/ and r/, then the key
// in hex; elections under {prefix}e/ (see Elections). The kind comes
// before the key, so no key of one kind can name another kind's state,
// whatever bytes it holds.
//
// # Round trips
//
// Measured in etcd writes (a Put) on one node: Acquire is a lease plus a
// transaction. The lease is one this Locker used before, renewed to a full
// TTL with one keep-alive (which is not a Raft write: about a third of a
// Put) sent alongside the transaction, not before it (the lock counts
// only if both succeed, and its TTL runs from after the attempt began),
// or, the first time, a new grant (a write) before it. Release is one
// transaction (a write); its lease is kept for the next lock and expires
// on its own when unused, or is revoked by [Locker.Close] at a service's
// shutdown. Refresh is one keep-alive and one read.
// docs/benchmarks.md has the costs in Puts.
//
// A transaction with a put is a Raft write even when its comparisons
// refuse it. So an attempt that is likely refused reads its comparisons
// first, in a read-only transaction (no Raft write; it also reads the
// key, which makes it linearizable, as a multi-key refresh's), and is
// refused there if they fail: a mutex attempt on a key where this
// Locker's last attempt was refused (within 10s, until a read finds the
// key free), and a queued waiter's attempt while an entry is ahead of its
// own. A refusal then costs one read; a grant after the read, a read
// more than without it.
//
// # URLs
//
// Importing this package registers the URL scheme "etcd" with xsync.Open:
//
//	etcd://[user:password@]host1:2379[,host2:2379...][?options]
//
// Options: prefix (see [WithPrefix]); dial_timeout (a duration, default
// 5s); tls=true to connect with TLS, with ca_file (the CAs to trust
// instead of the system's), cert_file and key_file (a client certificate,
// for a cluster started with --client-cert-auth), all PEM files; and
// skip_verify=true, which turns certificate verification off: unsafe,
// only for tests. With a user and password, Open does not connect: the
// first call authenticates. The client Open builds is closed by the
// Closer Open returns.
//
// # Security
//
// TLS, mutual TLS and authentication are tested on a real cluster. With
// auth enabled, a lock user needs only read and write on its prefix
// (leases need no permission of their own):
//
//	etcdctl role add xsync-lock
//	etcdctl role grant-permission xsync-lock --prefix=true readwrite xsync/
//	etcdctl user add locker
//	etcdctl user grant-role locker xsync-lock
//
// A user of another prefix gets "permission denied" for every call on this
// one. A wrong password is "authentication failed"; errors never show it.
// A TLS handshake that fails (a certificate from another CA, a missing
// client certificate) makes etcd's client wait for a connection until the
// context ends; the error then says there was no connection to the cluster
// and why ("x509: certificate signed by unknown authority").
//
// # Elections
//
// An election is a mutex of the election space, {prefix}e/: its key is
// {prefix}e/m/{name}, its queue under {prefix}e/q/. The epoch is the key's
// create revision, larger for every term than for every earlier one in the
// cluster; the identity is the key's value. Observers watch the key:
// every grant is a put, every release, force release and expiry a delete.
package etcd
