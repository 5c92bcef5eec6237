// Package redis is an xsync lock backend on one Redis deployment: a single
// server, a Sentinel-managed primary, or a Redis Cluster, through any
// go-redis v9 client.
//
//	client := goredis.NewClient(&goredis.Options{
//		Addr:                  "localhost:6379",
//		ContextTimeoutEnabled: true, // calls end with their context, not the 3s read timeout
//	})
//	xsync.Register("default", redis.New(client))
//
// Build the client with ContextTimeoutEnabled: without it, go-redis ends a
// call to a frozen server by its read timeout (3s by default), not by the
// caller's context: Lock and Run then return late, and the clean-up of an
// acquire cut short waits as long. (The callback's context of Run ends on
// time either way: the core keeps that deadline.)
//
// # What is guaranteed
//
// While the Redis primary that holds a key stays up and keeps its data:
//
//   - Mutual exclusion: acquire, release and refresh are Lua scripts, each
//     one atomic step on the server, one round trip each.
//   - Owner-only release and refresh: the script compares the token.
//   - Expiry with millisecond precision, measured on the server's clock:
//     a lock not released is free once its TTL has passed there, and
//     never sooner. A mutex in the short layout (below) is Redis's own
//     key expiry, which keeps a key through the millisecond it ends in;
//     in a hash its expiry is kept in microseconds (TIME); a semaphore's
//     or read-write lock's holders in milliseconds rounded up. Either way
//     a lock may outlive its TTL by up to 1ms.
//   - Fencing tokens: a new token is larger than every earlier token of
//     the key while its counter lives (last token + 1; in a hash,
//     max(last token + 1, server time in microseconds)), and is the
//     server time in microseconds when the key has no counter. The
//     counter lives for [WithFenceIdle] (one minute by default) after a
//     release; in a hash, for that long after the lock's TTL has run out,
//     released or not. A lock in the short layout that expires
//     unreleased takes its counter with it. Tokens keep growing without a
//     counter (and after a restart without persistence) as long as the
//     server's clock has not gone back by more than the time since the
//     last token was issued: a token is never larger than the server time
//     of its grant unless the clock went back (tokens grow by 1 per grant
//     of a key, and a grant costs far more than a microsecond).
//   - Bounded state: one key per lock ({prefix}m:{key}), nothing else.
//     In the short layout it expires with the lock, or the fence idle time
//     after a release; a hash expires the fence idle time after its lock's
//     TTL (as last granted or refreshed) has run out, whether or not the
//     lock was released before, or, while waiters are queued, when the
//     last of them is no longer alive, if that is later. Until it expires,
//     a released key keeps its counter (for the tokens' order), so with
//     many distinct keys released keys add up; docs/benchmarks.md has
//     their memory.
//   - Operators: [Locker.Inspect] reads a key's token, time left (on the
//     server's clock) and owner metadata (stored with the lock by
//     [Locker.AcquireOwner], at no extra cost) in one script;
//     [Locker.ForceRelease] frees a key whoever holds it, keeps the fencing
//     counter and publishes the release, so waiters try at once.
//   - Waiters queue (FIFO): a caller that finds the key held joins the
//     key's queue (a field of its hash: the first waiter turns a key in
//     the short layout into a hash) and listens on a channel named
//     like the key. A release grants the key to the first live waiter in
//     the same script ([backend.Granter]): a new token, which the message
//     on the channel carries with the waiter's name, so that the waiter
//     holds the key without a round trip of its own. A handoff thus costs
//     the releaser's round trip and one message, whatever the number of
//     waiters. A grant lasts until the waiter's place would have ended
//     (below): the waiter trusts it for the TTL from when it heard of it,
//     at most, and no longer than its keep time from the request that
//     last renewed its place, which the server processed before the
//     grant. The lease confirms the grant (a refresh that also stores the
//     owner): at once in the background if the caller asked for owner
//     metadata (xsync.WithOwner), so [Locker.Inspect] shows it within a
//     round trip; otherwise once half of that time has passed (a hold
//     released sooner never needs it, and Inspect shows no owner for it).
//     A confirmation that finds the grant gone loses the lease. A waiter
//     that leaves with a grant it has not taken releases it in the script
//     that takes it out of the queue; one whose message
//     was lost takes its grant with its next attempt. A waiter of an
//     older release of this package (its place has no request number)
//     is woken instead, and tries. A free key goes to the first live
//     waiter, not to whoever asks first. The scripts on that path find the
//     first live waiter from the front of the queue and a waiter's own
//     place by a plain search, so their cost does not grow with the queue
//     but for copying its string. Waiters also wake when the holder's TTL
//     runs out (every waiter tries then, the first one wins).
//   - A waiter that dies while queued (its process killed, its link cut)
//     holds the key back for its keep time at most: a waiter's place lives
//     max(3 × its retry interval, 1s) (its keep time) from its last
//     renewal; a refused attempt renews it once a third of that has
//     passed, so the queue is rewritten about once per keep time per
//     waiter rather than at every attempt (xsync attempts at least once per
//     retry interval while it waits). A waiter not alive is passed over,
//     and dropped once it reaches the front of the queue (or when a waiter
//     that gives up rewrites it). A waiter still waiting whose place
//     expired all the same (none of its attempts got through for its keep
//     time) is queued again, at the end, by its next refused attempt. A
//     waiter that gives up leaves the queue at once (one more script, up
//     to 250ms); if that fails, the same keep time bounds the delay. A
//     waiter that dies after a release granted it the key holds it no
//     longer than its place would have lived. The conformance rules QueueFIFO,
//     QueueGiveUp, QueueDeadWaiter, QueueLostPlace and the Grant rules
//     check all of this.
//
// # What is not guaranteed
//
//   - One Redis is not highly available. If the server is down, every call
//     fails (with the client's error, not [xsync.ErrMissingLock]) until it
//     is back.
//   - A restart without persistence forgets held locks: a second holder can
//     get a key whose first holder still runs (its Refresh and Unlock then
//     return false, and auto-extension cancels its callback's context).
//     Tokens still grow (see above), so a fenced resource rejects the old
//     holder.
//   - A failover to a replica (Sentinel, Cluster) can lose the last writes,
//     replication being asynchronous: a grant, extension or release that
//     had not reached the replica when the primary died. A lost grant or
//     extension lets a second caller take a key whose holder still runs,
//     for up to the rest of that holder's TTL; tokens keep growing if the
//     promoted replica's clock is not behind the old primary's by more
//     than the time since the last token (the lost counter is replaced by
//     the clock). See "Redis Cluster and Sentinel" below for what was
//     measured. For locks that must survive the loss of a node, use
//     Redlock (backend/redlock) or etcd (backend/etcd).
//   - A release notification lost while the subscription reconnects delays
//     a waiter until its retry interval, never longer. Each Locker keeps
//     one pub/sub connection, shared by all its waiters of every key; it
//     stays open 10s after its last waiter left, so that waiting again
//     does not connect again.
//   - Eviction: with maxmemory set, every maxmemory-policy but noeviction
//     (allkeys-* and volatile-* alike: lock keys always carry a TTL) lets
//     Redis delete a held lock to free memory, and a second caller then
//     gets it. Run Redis for locks with maxmemory-policy noeviction (or no
//     maxmemory); [Locker.Ping] reports an unsafe policy as
//     [ErrEvictionPolicy].
//   - An acquire whose caller gave up (its context ended) or whose
//     connection broke may still have taken the lock. Acquire then waits up
//     to 250ms more for the reply and releases what it took, or, without a
//     reply, sends a clean-up script (250ms more at most) that releases
//     what that attempt took or marks it void if it has not arrived yet;
//     Acquire returns after that, so it can return up to 0.5s after ctx
//     ended. The lock stays orphaned, until its TTL, only if neither the
//     reply nor the clean-up gets through in that time (a server frozen
//     for longer, a link that stays cut).
//
// # Under faults, as histories show
//
// TestHistory records concurrent histories with conformance/history
// under each fault below and checks them; docs/safety.md has the figures
// of a soak. Under every one: tokens grow in grant order, a fenced
// resource accepts no stale write, no release or refresh succeeds for a
// token that lost the key, and a callback that outlives its lock has its
// context ended at the validity deadline.
//
//   - Server paused longer than the TTL, network cut, a client's link
//     frozen: mutual exclusion holds. Acquisitions queued on a frozen
//     server run when it wakes, after their callers gave up, and their
//     clean-up cannot reach it first; such a key stays held, by nobody,
//     for up to its TTL after the heal (counted as orphans).
//   - Server killed and restarted without persistence: it forgets held
//     locks, and a second holder gets a key inside the first one's
//     validity (the history must show it, or the test fails). Fencing
//     rejects the first holder's later writes.
//
// # Key layouts
//
// A mutex's key (and an election's) has one of two layouts. While no
// waiter is queued for it, it is a string, the short layout: the holder's
// token, attempt nonce and owner, with the TTL as the key's own, or after
// a release the fencing counter alone. Its acquire and release scripts
// then make two calls each (read the key, then write it; the release
// also publishes), where a hash needs four, so the server spends less
// time per lock (docs/benchmarks.md has the figures). When a waiter queues (or an abandoned attempt must be
// marked void), the script turns the key into a hash, the full layout,
// with the same holder, expiry, owner and counter; it stays a hash until
// it expires. Every script reads both layouts, and a key becomes a hash
// only within the atomic step of the script that needs one.
//
// A Locker on a Redis Cluster client (one with ReloadState, such as
// *goredis.ClusterClient) keeps hashes only. During a slot migration a
// script on the migrating primary may not touch a key it does not have
// (Redis answers ASK instead of running the command), and a conversion
// deletes the string before it writes the hash: the script would stop
// after the delete, with no rollback, and a held lock would be gone
// while its holder still ran. TestClusterConformance's KeepsHashes
// checks the Locker's layout and the server's part of it, and the
// reshard history (TestHistoryFailover) the outcome. A single server and
// Sentinel have no migrations.
//
// Lockers of earlier versions of this package use hashes only and fail
// on a key in the short layout (a WRONGTYPE error): during a rolling
// upgrade they would get errors, never a second holder. To upgrade
// without them, first roll out this version with [WithHashLayout]
// (URL option hash_layout=true), under which a Locker writes hashes
// only, and drop the option once no earlier Locker is left. The
// conformance suite passes with and without it. The short layout needs
// the GET and SET commands, which [ACLRules] now grants.
//
// # Redis Cluster and Sentinel
//
// Tested on real deployments in containers (Redis 7.0): a Cluster of 3
// primaries with a replica each (cluster-node-timeout 1s) through a
// ClusterClient, and a primary, a replica and 3 sentinels (quorum 2,
// down-after-milliseconds 1000) through a FailoverClient. Both pass the
// conformance suite, with keys over many slots, braces and hash tags
// included. In a Cluster each lock is one key, so it lives in its key's
// slot, and the fencing counter lives in the same key and moves with it.
//
// Release notifications use classic PUBLISH and SUBSCRIBE, not sharded
// pub/sub: classic pub/sub works from Redis 5 on and on every deployment
// through one code path, and a Cluster broadcasts each message over its
// bus, so a waiter's subscription on any node hears it, and keeps hearing
// it while the key's slot moves. The cost is that each release in a
// Cluster reaches every node.
//
// Measured (TestClusterFailover, TestSentinelFailover, TestHistoryFailover;
// 2 cores):
//
//   - Primary killed and left dead: locks on its slots were served again
//     after 3.5 to 3.9s on the Cluster and after about 4.0s on Sentinel
//     (three runs each). Meanwhile callers got errors: on Sentinel
//     [backend.ErrUnavailable] (connection refused); on the Cluster their
//     context's deadline (go-redis retries the dial within the call). A
//     go-redis ClusterClient finds the promoted replica by itself only on
//     a MOVED reply or every ClusterStateReloadInterval (a minute by
//     default), and a dead primary sends no MOVED: without help it was not
//     served again within 60s. So this backend asks a ClusterClient to
//     reload its slot map (ReloadState, in the background, coalesced by
//     the client) whenever a call fails without a reply.
//   - The held lock survived the kill in these runs (it had reached the
//     replica); in an earlier run on Sentinel it did not, and a second
//     holder got the key with a larger token. Histories with the primary
//     killed mid-history (Cluster and Sentinel) allow overlaps and count
//     them; in every run tokens grew in grant order and the fenced
//     resource accepted no stale write.
//   - Slot migration while locks are taken (the slot of the contended
//     keys moved from primary to primary three times in 10s, each time
//     half-migrated for 1.5s, with 300 to 430 ASK redirections): no
//     overlap, no orphan, no error; the history is checked with no
//     allowance at all. MIGRATE moves a key with its TTL atomically.
//
// Needs Redis 5 or later (scripts that call TIME and then write).
//
// # Semaphores, read-write locks, multi-key locks
//
// Each call is one script, one round trip; waiters hear of releases on
// pub/sub as a mutex's do (no queue: the first to try wins).
//
//   - A semaphore of key is the sorted set {prefix}s:{key}: permit
//     tokens (random, drawn by the client) scored by their expiry on the
//     server's clock. An attempt drops the expired ones and counts the
//     rest, so it costs O(permits held). An attempt whose reply never came
//     is cleaned up as a mutex's is (its permit given back, or its token
//     marked void).
//   - A read-write lock of key is the sorted set {prefix}r:{key}:
//     readers and the writer scored by expiry, the marks of writers that
//     wait (each writer's own, removed when it gets the lock or gives up,
//     alive its keep time after each refused attempt), and the fencing
//     counter; tokens are max(counter+1, server time in µs), as
//     a mutex's. Attempts, releases and refreshes scan the holders:
//     O(holders). A holder's name carries its attempt's nonce, so an
//     attempt whose reply never came is cleaned up as a mutex's is.
//   - A multi-key lock takes the mutexes' own keys (as hashes) in one
//     script, with one token for all (larger than each key's earlier
//     tokens). In a Cluster the keys must share a hash slot (a hash tag);
//     otherwise the error matches [ErrCrossSlot] and nothing is taken.
//
// # Keys
//
// Every lock lives under the prefix, in the space of its kind: a mutex in
// the key {prefix}m:{key} (a string or a hash, above), a semaphore in the
// sorted set {prefix}s:{key}, a read-write lock in the sorted set
// {prefix}r:{key}, an election in the key {prefix}e:{name} (a mutex's
// layouts; its grants are published too, for observers). The kind comes
// before the key, so no key of one kind can name another kind's state,
// whatever bytes it holds. A hash tag in key ("{order:42}:payment") keeps
// each of them in key's hash slot of a Redis Cluster. Release
// notifications go out on a channel named like the lock's key.
//
// # URLs
//
// Importing this package registers these URL schemes with xsync.Open:
//
//	redis://[[user]:password@]host[:port][/db][?options]
//	rediss://[[user]:password@]host[:port][/db][?ca_file=ca.pem&cert_file=client.pem&key_file=client-key.pem]
//	redis+cluster://[[user]:password@]host1:port,host2:port[?options]
//	redis+sentinel://[[user]:password@]sentinel1:port,sentinel2:port/primary[/db][?options]
//
// and rediss+cluster and rediss+sentinel, the same with TLS. A cluster
// URL lists some of its nodes (the client finds the others); a sentinel
// URL lists sentinels and names the primary they watch (their "sentinel
// monitor" name) as its path. The user and password are the Redis
// servers' (the primary's and replicas'); sentinels that require a
// password get sentinel_username and sentinel_password options.
//
// The options are go-redis's (dial_timeout, read_timeout, write_timeout,
// pool_size, client_name, max_retries, ...; see goredis.ParseURL,
// goredis.ParseClusterURL and goredis.ParseFailoverURL) plus, with TLS,
// the PEM files: ca_file (the CAs to trust instead of the system's),
// cert_file and key_file (a client certificate, for servers that require
// one), and this package's prefix (see [WithPrefix]), fence_idle, a
// duration (see [WithFenceIdle]), and hash_layout=true (see
// [WithHashLayout]). skip_verify=true turns certificate
// verification off: it is unsafe (anyone on the path can pose as the
// server) and only for tests. The client Open builds honours contexts
// (ContextTimeoutEnabled) and is closed by the Closer Open returns.
//
// # Security
//
// TLS, mutual TLS, passwords (requirepass) and ACL users are tested on
// real servers. A lock user needs no more than [ACLRules] grants: its keys
// and channels under the prefix, and the commands the backend sends:
//
//	ACL SETUSER locker on >PASSWORD resetkeys resetchannels ~xsync:* &xsync:* -@all +eval +evalsha +subscribe +unsubscribe +ping +time +get +set +hmget +hgetall +hset +hdel +del +pexpire +pttl +publish
//
// Errors never show a password: wrong credentials are the server's
// WRONGPASS or NOAUTH, and URLs in errors are redacted.
package redis
