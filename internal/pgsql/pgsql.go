// Package pgsql is the SQL of backend/postgres, apart so that the
// benchmarks can send the same statements raw.
package pgsql

import "strings"

// Statements are the SQL the Locker sends, for its table. Each runs on its
// own, in autocommit (one round trip), but for a multi-key acquire, which
// is one transaction. Times are on the server's clock: now() for expiry
// (the start of the statement: a lock that waited for a row lock expires
// no later than the caller counted), microseconds since the epoch inside
// jsonb.
type Statements struct {
	Ping, List, Guard string

	// A sweep is one transaction: SweepLock, then Sweep ($1 the most rows
	// to delete). The lock conflicts with the table lock every write
	// statement takes before it draws a token, so no statement is between
	// its token and its row while rows are deleted (see Sweep).
	SweepLock, Sweep string

	// The mutex kinds (mutex, election): one row whose token, expires and
	// owner are the holder's, and whose holders column is the queue of
	// its waiters (jsonb, in arrival order: w name, e expiry of the
	// place). A released row stays (expires -infinity) while it has a
	// queue; the sweeper deletes it. $1 kind, $2 key.
	Acquire, AcquireNotify, Release, Refresh, State, Force, Undo string
	Join, Leave                                                  string

	// The keys of a multi-key lock: mutex rows under one token.
	MultiAcquire, MultiRelease, MultiRefresh, MultiState, MultiForce string

	// The group kinds (semaphore, read-write lock): one row whose holders
	// (jsonb: t token, e expiry, o owner, a attempt, w writer) and marks
	// (jsonb: a waiting writer's name and expiry) are the lock's; a
	// read-write lock's token column is its last writer's token.
	SemAcquire, ReadAcquire, WriteAcquire, WriteMark, WriteUnmark string
	GroupRelease, GroupRefresh, GroupState, GroupForce, GroupUndo string
}

const (
	nowUS     = `(extract(epoch FROM now()) * 1000000)::int8`
	micro     = ` * interval '1 microsecond'`
	liveVars  = `jsonb_build_object('n', ` + nowUS + `)`
	ttlLeft   = `(CASE WHEN expires > now() THEN (extract(epoch FROM expires - now()) * 1000000)::int8 ELSE 0 END)`
	liveHold  = `jsonb_path_query_array(g.holders, '$[*] ? (@.e > $n)', ` + liveVars + `)`
	liveMarks = `(SELECT coalesce(jsonb_object_agg(m.k, m.v), '{}'::jsonb) FROM jsonb_each(g.marks) AS m(k, v) WHERE m.v::int8 > ` + nowUS + `)`
	queue     = `jsonb_path_query_array(l.holders, '$[*] ? (@.e > $n)', ` + liveVars + `)`
	first     = `jsonb_path_query_first(l.holders, '$[*] ? (@.e > $n)', ` + liveVars + `)` // the queue's first live place
	holdsTok  = `jsonb_path_exists(g.holders, '$[*] ? (@.t == $t && @.e > $n)', jsonb_build_object('t', $3::int8, 'n', ` + nowUS + `))`
)

// New returns the statements for table (quoted, with its schema), its
// sequence (quoted) and its NOTIFY channel.
func New(table, seq, channel string) Statements {
	r := strings.NewReplacer("{T}", table, "{S}", "'"+seq+"'", "{C}", "'"+channel+"'",
		"{N}", nowUS, "{US}", micro, "{LIVE}", liveHold, "{MARKS}", liveMarks, "{TTL}", ttlLeft, "{HOLDS}", holdsTok, "{Q}", queue, "{FIRST}", first)
	f := func(s string) string { return r.Replace(s) }
	// A grant needs the row missing or expired, and no waiter queued
	// ahead: the queue empty, or $6 (the waiter, "" for none) first in it.
	// A waiter's refused attempt renews its place for $7 µs once a third
	// of that has passed (a renewal rewrites the row and its queue; the
	// waiter attempts at least three times per $7), and queues it again,
	// at the end, if its place expired (none of its attempts got through
	// for $7: a stalled process, or a row whose lock was queued on that
	// long), as the other backends do. The token was
	// drawn before the statement waited for the row's lock: a grant also
	// needs it larger than the row's, or a hold taken and released
	// meanwhile would be followed by a smaller token (refused, the next
	// attempt draws a new one).
	//
	// The queue is the row's largest part and, past about 2 kB, is
	// compressed or stored out of line (TOAST): each expression over it
	// reads and decodes all of it. So the statement reads it as few times
	// as it can: the WHERE takes the first live place alone, and only
	// while the lock is free (or the waiter's renewal check, which stops
	// at its place); the SET reads the live queue once, in a sub-select,
	// for every column.
	ok := `(l.expires <= now() AND l.token < excluded.token AND coalesce({FIRST} ->> 'w', $6::text) = $6::text)`
	acquire := `INSERT INTO {T} AS l (kind, key, token, expires, owner, attempt)
VALUES ($1, $2, nextval({S}), now() + $3::int8{US}, $4, $5)
ON CONFLICT (kind, key) DO UPDATE SET (token, expires, owner, attempt, holders) = (
  SELECT CASE WHEN s.ok THEN excluded.token ELSE l.token END,
    CASE WHEN s.ok THEN excluded.expires ELSE l.expires END,
    CASE WHEN s.ok THEN excluded.owner ELSE l.owner END,
    CASE WHEN s.ok THEN excluded.attempt ELSE l.attempt END,
    CASE WHEN s.ok THEN jsonb_path_query_array(s.q, '$[*] ? (@.w != $w)', jsonb_build_object('w', $6::text))
      ELSE (SELECT coalesce(jsonb_agg(CASE WHEN q ->> 'w' = $6::text THEN jsonb_set(q, '{e}', to_jsonb({N} + $7::int8)) ELSE q END ORDER BY i), '[]'::jsonb)
              || CASE WHEN bool_or(q ->> 'w' = $6::text) THEN '[]'::jsonb ELSE jsonb_build_array(jsonb_build_object('w', $6::text, 'e', {N} + $7::int8)) END
            FROM jsonb_array_elements(s.q) WITH ORDINALITY AS x(q, i)) END
  FROM (SELECT q, (l.expires <= now() AND l.token < excluded.token AND coalesce(q -> 0 ->> 'w', $6::text) = $6::text) AS ok
        FROM (SELECT {Q} AS q) AS y) AS s)
WHERE ` + ok + ` OR ($6::text <> '' AND NOT jsonb_path_exists(l.holders, '$[*] ? (@.w == $w && @.e >= $r)', jsonb_build_object('w', $6::text, 'r', {N} + $7::int8 * 2 / 3)))
RETURNING attempt, token`
	notify := `pg_notify({C}, $1 || ':' || md5($2))`
	// A mutex row's release names the waiter whose turn it is (the first
	// live place of the queue; "" if none) after the lock's own name, so
	// that only that waiter wakes; a grant names none ('-'): it is news
	// for observers alone.
	notifyHead := `pg_notify({C}, $1 || ':' || md5($2) || ':' || coalesce({FIRST} ->> 'w', ''))`
	notifyGrant := `pg_notify({C}, $1 || ':' || md5($2) || ':-')`
	// A writer is granted the lock if nobody holds it and its token is
	// larger than the last writer's (the row's token): the token was drawn
	// before the statement waited for the row's lock, and a writer granted
	// and gone meanwhile has a larger one (refused, the next attempt draws
	// a new one), as for a mutex.
	writerFree := `(jsonb_array_length({LIVE}) = 0 AND g.token < excluded.token)`
	newHolder := `jsonb_build_array(jsonb_build_object('t', nextval({S}), 'e', {N} + $2::int8, 'o', $3::text, 'a', $4::int8%s))`
	withoutHolder := `(SELECT coalesce(jsonb_agg(h ORDER BY i), '[]'::jsonb) FROM jsonb_array_elements(g.holders) WITH ORDINALITY AS x(h, i) WHERE (h ->> '%s')::int8 <> $3::int8)`
	return Statements{
		Ping: f(`SELECT count(*) FROM (SELECT 1 FROM {T} LIMIT 1) AS x`),
		// A statement draws its token before it waits for a row's lock; if
		// the row were deleted meanwhile (after a later holder's grant and
		// release), it would insert a new row under the older token.
		// SHARE ROW EXCLUSIVE waits for every write statement in flight
		// (each holds ROW EXCLUSIVE from before its token to its commit),
		// keeps new ones out until the sweep commits, and is taken by one
		// sweep at a time.
		SweepLock: f(`LOCK TABLE {T} IN SHARE ROW EXCLUSIVE MODE`),
		Sweep: f(`DELETE FROM {T} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {T} AS g WHERE expires < now() AND NOT jsonb_path_exists(g.holders, '$[*] ? (@.e > $n)', jsonb_build_object('n', {N}))
ORDER BY expires LIMIT $1 FOR UPDATE SKIP LOCKED))`),
		List: f(`SELECT g.kind, g.key, g.token, {TTL}, g.owner, {LIVE}, {MARKS}, {N} FROM {T} AS g
WHERE substr(g.key, 1, length($1::bytea)) = $1::bytea AND (g.key, g.kind) > ($2::bytea, $3::text)
  AND (g.expires > now() OR jsonb_array_length({LIVE}) > 0)
ORDER BY g.key, g.kind LIMIT $4`),
		Guard: f(`SELECT 1 FROM {T} WHERE kind = $1 AND key = $2 AND token = $3 AND expires > clock_timestamp() FOR SHARE`),

		Acquire:       f(acquire),
		AcquireNotify: f(`WITH a AS (` + acquire + `) SELECT attempt, token, ` + notifyGrant + ` FROM a WHERE a.attempt = $5`),
		Release:       f(`UPDATE {T} AS l SET expires = '-infinity' WHERE kind = $1 AND key = $2 AND token = $3 AND expires > now() RETURNING ` + notifyHead),
		Refresh:       f(`UPDATE {T} SET expires = now() + $4::int8{US} WHERE kind = $1 AND key = $2 AND token = $3 AND expires > now()`),
		State:         f(`SELECT token, {TTL}, owner, {Q}, {N} FROM {T} AS l WHERE kind = $1 AND key = $2`),
		Force:         f(`UPDATE {T} AS l SET expires = '-infinity' WHERE kind = $1 AND key = $2 AND expires > now() RETURNING ` + notifyHead),
		Undo:          f(`UPDATE {T} SET expires = '-infinity' WHERE kind = $1 AND key = ANY($2::bytea[]) AND attempt = $3 AND expires > now() RETURNING pg_notify({C}, $1 || ':' || md5(key))`),
		Join: f(`INSERT INTO {T} AS l (kind, key, token, expires, holders)
VALUES ($1, $2, 0, '-infinity', jsonb_build_array(jsonb_build_object('w', $3::text, 'e', {N} + $4::int8)))
ON CONFLICT (kind, key) DO UPDATE SET holders = {Q} || excluded.holders`),
		Leave: f(`UPDATE {T} AS l SET holders = jsonb_path_query_array(l.holders, '$[*] ? (@.e > $n && @.w != $w)', jsonb_build_object('n', {N}, 'w', $3::text))
WHERE kind = $1 AND key = $2 AND jsonb_path_exists(l.holders, '$[*] ? (@.w == $w)', jsonb_build_object('w', $3::text))
RETURNING ` + notifyHead),

		MultiAcquire: f(`WITH t AS (SELECT nextval({S}) AS t)
INSERT INTO {T} AS l (kind, key, token, expires, owner, attempt)
SELECT 'm', u.k, t.t, now() + $2::int8{US}, $3, $4 FROM t, unnest($1::bytea[]) WITH ORDINALITY AS u(k, i) ORDER BY u.i
ON CONFLICT (kind, key) DO UPDATE
SET token = excluded.token, expires = excluded.expires, owner = excluded.owner, attempt = excluded.attempt
WHERE l.expires <= now() AND {FIRST} IS NULL AND l.token < excluded.token
RETURNING token`),
		MultiRelease: f(`UPDATE {T} SET expires = '-infinity' WHERE kind = 'm' AND key = ANY($1::bytea[]) AND token = $2 AND expires > now()
RETURNING true, pg_notify({C}, 'm:' || md5(key))`),
		MultiRefresh: f(`UPDATE {T} SET expires = now() + $3::int8{US} WHERE kind = 'm' AND key = ANY($1::bytea[]) AND token = $2 AND expires > now()`),
		MultiState:   f(`SELECT key, token, {TTL}, owner FROM {T} WHERE kind = 'm' AND key = ANY($1::bytea[]) AND expires > now() ORDER BY key`),
		MultiForce: f(`UPDATE {T} SET expires = '-infinity' WHERE kind = 'm' AND key = ANY($1::bytea[]) AND expires > now()
RETURNING true, pg_notify({C}, 'm:' || md5(key))`),

		SemAcquire: f(`INSERT INTO {T} AS g (kind, key, token, expires, holders)
VALUES ('s', $1, 0, now() + $2::int8{US}, ` + strings.Replace(newHolder, "%s", "", 1) + `)
ON CONFLICT (kind, key) DO UPDATE SET holders = {LIVE} || excluded.holders, expires = greatest(g.expires, excluded.expires)
WHERE jsonb_array_length({LIVE}) < $5::int4
RETURNING (holders -> -1 ->> 't')::int8`),
		ReadAcquire: f(`INSERT INTO {T} AS g (kind, key, token, expires, holders)
VALUES ('r', $1, 0, now() + $2::int8{US}, ` + strings.Replace(newHolder, "%s", "", 1) + `)
ON CONFLICT (kind, key) DO UPDATE SET holders = {LIVE} || excluded.holders, marks = {MARKS}, expires = greatest(g.expires, excluded.expires)
WHERE NOT jsonb_path_exists(g.holders, '$[*] ? (@.w == true && @.e > $n)', jsonb_build_object('n', {N}))
  AND NOT jsonb_path_exists(g.marks, '$.* ? (@ > $n)', jsonb_build_object('n', {N}))
RETURNING (holders -> -1 ->> 't')::int8`),
		WriteAcquire: f(`INSERT INTO {T} AS g (kind, key, token, expires, holders)
SELECT 'r', $1, n.t, now() + $2::int8{US}, jsonb_build_array(jsonb_build_object('t', n.t, 'e', {N} + $2::int8, 'o', $3::text, 'a', $4::int8, 'w', true))
FROM (SELECT nextval({S}) AS t) AS n
ON CONFLICT (kind, key) DO UPDATE SET
  holders = CASE WHEN ` + writerFree + ` THEN excluded.holders ELSE g.holders END,
  token = CASE WHEN ` + writerFree + ` THEN excluded.token ELSE g.token END,
  marks = CASE WHEN ` + writerFree + ` THEN {MARKS} - $5::text
               ELSE {MARKS} || jsonb_build_object($5::text, {N} + $6::int8) END,
  expires = greatest(g.expires, excluded.expires, now() + $6::int8{US})
WHERE jsonb_array_length({LIVE}) = 0 OR coalesce((g.marks ->> $5::text)::int8, 0) > {N}
RETURNING coalesce((holders -> -1 ->> 'a')::int8, 0), coalesce((holders -> -1 ->> 't')::int8, 0)`),
		WriteMark: f(`INSERT INTO {T} AS g (kind, key, token, expires, marks)
VALUES ('r', $1, 0, now() + $3::int8{US}, jsonb_build_object($2::text, {N} + $3::int8))
ON CONFLICT (kind, key) DO UPDATE SET marks = {MARKS} || excluded.marks, holders = {LIVE}, expires = greatest(g.expires, excluded.expires)`),
		WriteUnmark: f(`UPDATE {T} AS g SET marks = g.marks - $2::text WHERE kind = 'r' AND key = $1 AND g.marks ? $2::text
RETURNING pg_notify({C}, 'r:' || md5(g.key))`),

		GroupRelease: f(`UPDATE {T} AS g SET holders = ` + strings.Replace(withoutHolder, "%s", "t", 1) + `
WHERE kind = $1 AND key = $2 AND {HOLDS}
RETURNING ` + notify),
		GroupRefresh: f(`UPDATE {T} AS g SET holders = (SELECT jsonb_agg(CASE WHEN (h ->> 't')::int8 = $3::int8 THEN jsonb_set(h, '{e}', to_jsonb({N} + $4::int8)) ELSE h END ORDER BY i)
  FROM jsonb_array_elements(g.holders) WITH ORDINALITY AS x(h, i)),
  expires = greatest(g.expires, now() + $4::int8{US})
WHERE kind = $1 AND key = $2 AND {HOLDS}`),
		GroupState: f(`SELECT {LIVE}, {MARKS}, {N} FROM {T} AS g WHERE kind = $1 AND key = $2`),
		GroupForce: f(`UPDATE {T} AS g SET holders = '[]' WHERE kind = $1 AND key = $2 AND jsonb_array_length({LIVE}) > 0
RETURNING ` + notify),
		GroupUndo: f(`UPDATE {T} AS g SET holders = ` + strings.Replace(withoutHolder, "%s", "a", 1) + `
WHERE kind = $1 AND key = $2 AND jsonb_path_exists(g.holders, '$[*] ? (@.a == $a)', jsonb_build_object('a', $3::int8))
RETURNING ` + notify),
	}
}
