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

	// Sweep is one sweep: three statements in one message (send it by the
	// simple protocol), which the server runs as one transaction and
	// commits at once, not when the client next speaks: a lock wait of %d
	// ms, the table's lock, then a delete of at most %d expired rows. The
	// lock conflicts with the table lock every write statement takes
	// before it draws a token, so no statement is between its token and
	// its row while rows are deleted.
	Sweep string

	// The mutex kinds (mutex, election): one row whose token, expires and
	// owner are the holder's, and a row of its own for each queued
	// waiter's place (see places). A released row stays (expires
	// -infinity) while places are alive; the sweeper deletes it. $1 kind,
	// $2 key.
	Acquire, AcquireNotify, Release, Refresh, State, Force, Undo string
	Join, Leave                                                  string

	// The keys of a multi-key lock: mutex rows under one token.
	// MultiAcquire returns the token, or fails with MultiBusy if a key is
	// held (and then wrote nothing).
	MultiAcquire, MultiRelease, MultiRefresh, MultiState, MultiForce string

	// The group kinds (semaphore, read-write lock): one row whose holders
	// (jsonb: t token, e expiry, o owner, a attempt, w writer) and marks
	// (jsonb: a waiting writer's name and expiry) are the lock's; a
	// read-write lock's token column is its last writer's token.
	SemAcquire, ReadAcquire, WriteAcquire, WriteMark, WriteUnmark string
	GroupRelease, GroupRefresh, GroupState, GroupForce, GroupUndo string
}

// MultiBusy is the SQLSTATE of a MultiAcquire that found a key held
// (cardinality_violation, which nothing else in the statement raises).
const MultiBusy = "21000"

const (
	nowUS     = `(extract(epoch FROM now()) * 1000000)::int8`
	micro     = ` * interval '1 microsecond'`
	liveVars  = `jsonb_build_object('n', ` + nowUS + `)`
	ttlLeft   = `(CASE WHEN expires > now() THEN (extract(epoch FROM expires - now()) * 1000000)::int8 ELSE 0 END)`
	liveHold  = `jsonb_path_query_array(g.holders, '$[*] ? (@.e > $n)', ` + liveVars + `)`
	liveMarks = `(SELECT coalesce(jsonb_object_agg(m.k, m.v), '{}'::jsonb) FROM jsonb_each(g.marks) AS m(k, v) WHERE m.v::int8 > ` + nowUS + `)`
	holdsTok  = `jsonb_path_exists(g.holders, '$[*] ? (@.t == $t && @.e > $n)', jsonb_build_object('t', $3::int8, 'n', ` + nowUS + `))`
)

// A mutex row's waiters queue in rows of their own: each waiter's place
// is a row of kind 'q' and the lock's kind ("qm", "qe"), whose key is the
// lock's key, prefixed by its length (int4send, so that no lock's range
// holds another's), then the place's number from the sequence (int8send:
// positive, so its first byte is below 0x80, and byte order is arrival
// order); its expires is when the place lapses, its owner the waiter's
// name, its token the number. A statement finds the first live place by
// the primary key's index, in key order, from the front: a handoff reads
// one place row however many wait, and a waiter's renewal writes its own
// row alone.

// places is the condition that p is a live place of the lock of kind k and
// key key (SQL expressions).
func places(k, key string) string {
	prefix := `(int4send(length(` + key + `)) || ` + key + `)`
	return `p.kind = 'q' || ` + k + ` AND p.key > ` + prefix + ` AND p.key < (` + prefix + ` || '\x80'::bytea) AND p.expires > now()`
}

// head is the first live place's waiter of the lock of kind k and key key,
// NULL if none.
func head(k, key string) string {
	return `(SELECT p.owner FROM {T} AS p WHERE ` + places(k, key) + ` ORDER BY p.key LIMIT 1)`
}

// New returns the statements for table (quoted, with its schema), its
// sequence (quoted) and its NOTIFY channel.
func New(table, seq, channel string) Statements {
	r := strings.NewReplacer("{T}", table, "{S}", "'"+seq+"'", "{C}", "'"+channel+"'",
		"{N}", nowUS, "{US}", micro, "{LIVE}", liveHold, "{MARKS}", liveMarks, "{TTL}", ttlLeft, "{HOLDS}", holdsTok,
		"{HEAD}", strings.ReplaceAll(head("$1", "$2::bytea"), "{T}", table), "{PLACES}", places("$1", "$2::bytea"), "{P}", `(int4send(length($2::bytea)) || $2::bytea)`,
		"{GPLACES}", places("g.kind", "g.key"))
	f := func(s string) string { return r.Replace(s) }
	// A grant needs the row missing or expired, and no waiter queued
	// ahead: no live place, or $6's (the waiter, "" for none) first (also
	// where the row is missing: it may have been swept before the first
	// place was queued). A grant deletes the waiter's place ($8, its key;
	// NULL if it has none). A waiter's refused attempt renews its place for $7 µs once a third
	// of that has passed (the waiter attempts at least three times per
	// $7), and queues it again, at the end, if its place lapsed (none of
	// its attempts got through for $7: a stalled process, or a lock held
	// that long), as the other backends do; the statement then returns the
	// new place's key. The token was drawn before the statement waited for
	// the row's lock: a grant also needs it larger than the row's, or a
	// hold taken and released meanwhile would be followed by a smaller
	// token (refused, the next attempt draws a new one).
	//
	// The places are read in the statement's snapshot, the row at its
	// latest: a place that changed meanwhile can cost a waiter its turn
	// (it is woken again by the next release), never exclusion, which
	// rests on the row alone.
	acquire := `WITH a AS (INSERT INTO {T} AS l (kind, key, token, expires, owner, attempt)
SELECT $1, $2, nextval({S}), now() + $3::int8{US}, $4, $5 WHERE coalesce({HEAD}, $6::text) = $6::text
ON CONFLICT (kind, key) DO UPDATE SET token = excluded.token, expires = excluded.expires, owner = excluded.owner, attempt = excluded.attempt
WHERE l.expires <= now() AND l.token < excluded.token AND coalesce({HEAD}, $6::text) = $6::text
RETURNING attempt, token),
gone AS (DELETE FROM {T} AS p WHERE p.kind = 'q' || $1 AND p.key = $8::bytea AND (EXISTS (SELECT FROM a) OR p.expires <= now())),
renewed AS (UPDATE {T} AS p SET expires = now() + $7::int8{US}
  WHERE p.kind = 'q' || $1 AND p.key = $8::bytea AND p.expires > now() AND p.expires < now() + ($7::int8 * 2 / 3){US} AND NOT EXISTS (SELECT FROM a)),
queued AS (INSERT INTO {T} (kind, key, token, expires, owner)
  SELECT 'q' || $1, {P} || int8send(n.t), n.t, now() + $7::int8{US}, $6 FROM (SELECT nextval({S}) AS t
    WHERE $6::text <> '' AND NOT EXISTS (SELECT FROM a)
      AND NOT EXISTS (SELECT FROM {T} AS p WHERE p.kind = 'q' || $1 AND p.key = $8::bytea AND p.expires > now())) AS n
  RETURNING key)
SELECT coalesce((SELECT attempt FROM a), 0), coalesce((SELECT token FROM a), 0), (SELECT key FROM queued)`
	notify := `pg_notify({C}, $1 || ':' || md5($2))`
	// A mutex row's release names the waiter whose turn it is (the first
	// live place of the queue; "" if none) after the lock's own name, so
	// that only that waiter wakes; a grant names none ('-'): it is news
	// for observers alone.
	notifyHead := `pg_notify({C}, $1 || ':' || md5($2) || ':' || coalesce({HEAD}, ''))`
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
		// One message, so the table's lock is held only while it runs:
		// a client that stalls after sending it keeps no writer waiting.
		Sweep: f(`SET LOCAL lock_timeout = '%dms';
LOCK TABLE {T} IN SHARE ROW EXCLUSIVE MODE;
DELETE FROM {T} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {T} AS g WHERE expires < now() AND NOT jsonb_path_exists(g.holders, '$[*] ? (@.e > $n)', jsonb_build_object('n', {N}))
  AND NOT (g.kind IN ('m', 'e') AND EXISTS (SELECT FROM {T} AS p WHERE {GPLACES}))
ORDER BY expires LIMIT %d FOR UPDATE SKIP LOCKED))`),
		// A mutex row's sixth column is its live places (w the waiter),
		// in arrival order; a group row's, its live holders.
		List: f(`SELECT g.kind, g.key, g.token, {TTL}, g.owner,
  CASE WHEN g.kind IN ('m', 'e') THEN (SELECT coalesce(jsonb_agg(jsonb_build_object('w', p.owner) ORDER BY p.key), '[]'::jsonb) FROM {T} AS p WHERE {GPLACES}) ELSE {LIVE} END,
  {MARKS}, {N} FROM {T} AS g
WHERE substr(g.key, 1, length($1::bytea)) = $1::bytea AND (g.key, g.kind) > ($2::bytea, $3::text) AND length(g.kind) = 1
  AND (g.expires > now() OR jsonb_array_length({LIVE}) > 0 OR g.kind IN ('m', 'e') AND EXISTS (SELECT FROM {T} AS p WHERE {GPLACES}))
ORDER BY g.key, g.kind LIMIT $4`),
		Guard: f(`SELECT 1 FROM {T} WHERE kind = $1 AND key = $2 AND token = $3 AND expires > clock_timestamp() FOR SHARE`),

		Acquire:       f(acquire),
		AcquireNotify: f(acquire + `, (SELECT ` + notifyGrant + ` FROM a)`),
		Release:       f(`UPDATE {T} AS l SET expires = '-infinity' WHERE kind = $1 AND key = $2 AND token = $3 AND expires > now() RETURNING ` + notifyHead),
		Refresh:       f(`UPDATE {T} SET expires = now() + $4::int8{US} WHERE kind = $1 AND key = $2 AND token = $3 AND expires > now()`),
		// The holder (token 0 if none) and live places (w the waiter, e
		// its expiry in µs), in arrival order: with $3 NULL all of them;
		// with $3 a waiter's place, the first and the one just ahead of
		// $3 (none if $3 is first; two index reads however many wait).
		State: f(`SELECT coalesce(l.token, 0), {TTL}, coalesce(l.owner, ''), q.q, {N}
FROM (SELECT coalesce(jsonb_agg(jsonb_build_object('w', x.owner, 'e', (extract(epoch FROM x.expires) * 1000000)::int8) ORDER BY x.key), '[]'::jsonb) AS q
  FROM ((SELECT p.owner, p.expires, p.key FROM {T} AS p WHERE {PLACES} AND ($3::bytea IS NULL OR p.key < $3::bytea)
         ORDER BY p.key LIMIT CASE WHEN $3::bytea IS NULL THEN NULL ELSE 1 END)
    UNION (SELECT p.owner, p.expires, p.key FROM {T} AS p WHERE {PLACES} AND p.key < $3::bytea ORDER BY p.key DESC LIMIT 1)) AS x) AS q
LEFT JOIN {T} AS l ON l.kind = $1 AND l.key = $2`),
		Force: f(`UPDATE {T} AS l SET expires = '-infinity' WHERE kind = $1 AND key = $2 AND expires > now() RETURNING ` + notifyHead),
		Undo:  f(`UPDATE {T} SET expires = '-infinity' WHERE kind = $1 AND key = ANY($2::bytea[]) AND attempt = $3 AND expires > now() RETURNING pg_notify({C}, $1 || ':' || md5(key))`),
		// Join queues waiter $3 for $4 µs and returns its place's key.
		Join: f(`INSERT INTO {T} (kind, key, token, expires, owner)
SELECT 'q' || $1, {P} || int8send(n.t), n.t, now() + $4::int8{US}, $3 FROM (SELECT nextval({S}) AS t) AS n
RETURNING key`),
		// Leave deletes the place $3 and names the waiter whose turn it is
		// then.
		Leave: f(`DELETE FROM {T} AS d WHERE d.kind = 'q' || $1 AND d.key = $3::bytea
RETURNING pg_notify({C}, $1 || ':' || md5($2) || ':' || coalesce((SELECT p.owner FROM {T} AS p WHERE {PLACES} AND p.key <> $3::bytea ORDER BY p.key LIMIT 1), ''))`),

		// A multi-key lock takes every key or none in one statement: if it
		// took fewer than all, it fails on purpose (MultiBusy: a scalar
		// subquery of two rows), which undoes its writes. So no client
		// holds the keys' rows between round trips of its own.
		MultiAcquire: f(`WITH t AS (SELECT nextval({S}) AS t), g AS (
INSERT INTO {T} AS l (kind, key, token, expires, owner, attempt)
SELECT 'm', u.k, t.t, now() + $2::int8{US}, $3, $4 FROM t, unnest($1::bytea[]) WITH ORDINALITY AS u(k, i)
WHERE NOT EXISTS (SELECT FROM {T} AS p WHERE ` + places("'m'", "u.k") + `) ORDER BY u.i
ON CONFLICT (kind, key) DO UPDATE
SET token = excluded.token, expires = excluded.expires, owner = excluded.owner, attempt = excluded.attempt
WHERE l.expires <= now() AND NOT EXISTS (SELECT FROM {T} AS p WHERE ` + places("'m'", "l.key") + `) AND l.token < excluded.token
RETURNING token)
SELECT CASE WHEN count(*) = cardinality($1::bytea[]) THEN min(token) ELSE (SELECT n FROM generate_series(1, 2) AS n) END FROM g`),
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
