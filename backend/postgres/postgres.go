package postgres

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/pgsql"
)

// Defaults of the options.
const (
	DefaultSchema = "public"
	DefaultTable  = "xsync_locks"
)

// Option configures a Locker (and [Migrate] and [Schema], which need the
// same names).
type Option func(*config)

type config struct {
	schema, table string
	prefix        string
	listen        bool
	listenCfg     *pgx.ConnConfig
	err           error
}

// WithSchema sets the schema of the lock table (default "public").
func WithSchema(schema string) Option { return func(c *config) { c.schema = schema } }

// WithTable sets the name of the lock table (default "xsync_locks"); the
// sequence of tokens is the table's name with "_token" after it. Names are
// letters, digits and underscores, starting with a letter or underscore,
// at most 50 bytes.
func WithTable(table string) Option { return func(c *config) { c.table = table } }

// WithPrefix puts every key under prefix (default none): Lockers with
// different prefixes share a table and never each other's locks.
func WithPrefix(prefix string) Option { return func(c *config) { c.prefix = prefix } }

// WithoutListen turns LISTEN off: waiters learn of a release only by
// trying again (at the caller's retry interval) or when the holder's TTL
// is due. Use it behind a pooler in transaction mode, where a LISTEN on a
// pooled server connection does not last (the package doc, "# Poolers").
func WithoutListen() Option { return func(c *config) { c.listen = false } }

// WithListenConfig makes the listening connection with cfg rather than
// the pool's configuration: behind a pooler in transaction mode, give it
// the server's own address (or a pooler's in session mode), and every
// waiter is woken by NOTIFY while the statements go through the pooler.
func WithListenConfig(cfg *pgx.ConnConfig) Option {
	return func(c *config) { c.listen, c.listenCfg = true, cfg }
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,49}$`)

func newConfig(opts []Option) config {
	c := config{schema: DefaultSchema, table: DefaultTable, listen: true}
	for _, o := range opts {
		o(&c)
	}
	switch {
	case !identRE.MatchString(c.schema):
		c.err = fmt.Errorf("postgres: schema name %q: want letters, digits and underscores (at most 50)", c.schema)
	case !identRE.MatchString(c.table):
		c.err = fmt.Errorf("postgres: table name %q: want letters, digits and underscores (at most 50)", c.table)
	}
	return c
}

func (c config) tableName() string { return `"` + c.schema + `"."` + c.table + `"` }
func (c config) seqName() string   { return `"` + c.schema + `"."` + c.table + `_token"` }

// channel is the NOTIFY channel of the table.
func (c config) channel() string { return "xsync." + c.schema + "." + c.table }

// Schema returns the DDL that [Migrate] runs for the options' schema and
// table: the table, its index on expiry, and the sequence of tokens. Every
// statement is idempotent.
func Schema(opts ...Option) string {
	c := newConfig(opts)
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s (
    kind    text        NOT NULL,
    key     bytea       NOT NULL,
    token   bigint      NOT NULL,
    expires timestamptz NOT NULL,
    owner   text        NOT NULL DEFAULT '',
    attempt bigint      NOT NULL DEFAULT 0,
    holders jsonb       NOT NULL DEFAULT '[]',
    marks   jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS "%[3]s_expires" ON %[1]s (expires);
CREATE SEQUENCE IF NOT EXISTS %[2]s AS bigint CACHE 1;
`, c.tableName(), c.seqName(), c.table)
}

// Migrate creates the lock table, its index and its sequence if they do
// not exist (the DDL of [Schema]), in one transaction that holds an
// advisory lock of its own meanwhile, so that replicas starting together
// migrate one after the other. It is idempotent. It needs the right to
// create in the schema; a Locker itself never runs DDL.
func Migrate(ctx context.Context, pool *pgxpool.Pool, opts ...Option) error {
	if pool == nil {
		return errors.New("postgres: Migrate: pool is nil")
	}
	c := newConfig(opts)
	if c.err != nil {
		return c.err
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, advisoryKey("xsync.migrate:"+c.tableName())); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, Schema(opts...))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: migrate %s: %w", c.tableName(), classify(err))
	}
	return nil
}

// Locker is the PostgreSQL backend. It never closes its pool. Close stops
// its listening connection and its sweeper. It is safe for concurrent use.
type Locker struct {
	pool *pgxpool.Pool
	opts []Option
	cfg  config
	sql  pgsql.Statements
	hub  *hub // nil without LISTEN

	sweepSQL string // sql.Sweep with its lock wait and batch size

	placeMu sync.Mutex
	places  map[string][]byte // a queued waiter's place (its row's key), by the waiter's name

	sweepMu      sync.Mutex
	sweepTimer   *time.Timer
	sweepAt      time.Time // when the armed sweep runs
	sweepPending time.Time // when the sweep after it is due; zero if none
	closed       bool
}

var (
	_ backend.Locker      = (*Locker)(nil)
	_ backend.Mutexer     = (*Locker)(nil)
	_ backend.Semaphorer  = (*Locker)(nil)
	_ backend.RWLocker    = (*Locker)(nil)
	_ backend.MultiLocker = (*Locker)(nil)
	_ backend.Electioner  = (*Locker)(nil)
	_ backend.Lister      = (*Locker)(nil)
	_ backend.Pinger      = (*Locker)(nil)
)

// New returns a Locker that keeps its locks in the table of the options
// (by default public.xsync_locks, which [Migrate] creates) through pool.
// It contacts nothing. It panics if pool is nil or a name in opts is not
// a plain identifier: both are programming errors.
func New(pool *pgxpool.Pool, opts ...Option) *Locker {
	if pool == nil {
		panic("postgres: New: pool is nil")
	}
	c := newConfig(opts)
	if c.err != nil {
		panic(c.err.Error())
	}
	l := &Locker{pool: pool, opts: opts, cfg: c, sql: pgsql.New(c.tableName(), c.seqName(), c.channel())}
	l.sweepSQL = fmt.Sprintf(l.sql.Sweep, sweepLockWait.Milliseconds(), sweepBatch)
	if c.listen {
		l.hub = newHub(l)
	}
	return l
}

// Migrate is [Migrate] with the Locker's pool and options (for a Locker
// opened from a URL, and for the CLI's migrate command).
func (l *Locker) Migrate(ctx context.Context) error { return Migrate(ctx, l.pool, l.opts...) }

// Close stops the Locker's listening connection and its sweeper. Locks
// held stay held until released or expired. Close does not close the pool.
func (l *Locker) Close() error {
	l.sweepMu.Lock()
	l.closed = true
	if l.sweepTimer != nil {
		l.sweepTimer.Stop()
	}
	l.sweepMu.Unlock()
	if l.hub != nil {
		l.hub.close()
	}
	return nil
}

// Acquire implements [backend.Locker]: Mutex(key).Acquire.
func (l *Locker) Acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	return l.Mutex(key).Acquire(ctx, backend.Request{TTL: ttl})
}

// Release implements [backend.Locker]: Mutex(key).Release.
func (l *Locker) Release(ctx context.Context, key string, token int64) (bool, error) {
	return l.Mutex(key).Release(ctx, token)
}

// Ping implements [backend.Pinger]: one SELECT on the table (so a missing
// table or a missing grant shows here, not at the first lock).
func (l *Locker) Ping(ctx context.Context) error {
	var n int
	if err := l.pool.QueryRow(ctx, l.sql.Ping).Scan(&n); err != nil {
		return fmt.Errorf("postgres: ping: %w", classify(err))
	}
	return nil
}

// key is the stored key: the prefix, then the caller's key.
func (l *Locker) key(key string) []byte { return []byte(l.cfg.prefix + key) }

// payload is what a NOTIFY about a lock carries: its kind and the MD5 of
// its stored key (a key may be far longer than a payload may be).
func payload(kind string, key []byte) string {
	sum := md5.Sum(key)
	return kind + ":" + hex.EncodeToString(sum[:])
}

// attempt returns a random nonzero number that names one attempt, so that
// an attempt whose outcome is unknown can be undone.
func attempt() int64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if n := int64(binary.LittleEndian.Uint64(b[:]) &^ (1 << 63)); n != 0 {
			return n
		}
	}
}

func micros(d time.Duration) int64 {
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	return us
}

// undoTimeout bounds a clean-up (see undo).
const undoTimeout = 2 * time.Second

// undo runs the clean-up statement sql with args (what an attempt, or a
// waiting writer's mark, whose outcome is unknown may have left), on a
// context detached from ctx, bounded.
func (l *Locker) undo(ctx context.Context, sql string, args ...any) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	_, _ = l.pool.Exec(uctx, sql, args...)
}

// unknown reports whether err leaves the outcome of a statement unknown:
// anything but the server's own refusal of it.
func unknown(err error) bool {
	var pe *pgconn.PgError
	return !errors.As(err, &pe)
}

// classify marks err as [backend.ErrUnavailable] when the server could not
// be reached or went away (refused, reset, closed, shutting down), as
// opposed to the server's answer, a timeout or the caller's context.
func classify(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Connection exceptions, the server shutting down or starting,
		// and a backend terminated by an operator.
		if strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") {
			return fmt.Errorf("%w: %w", backend.ErrUnavailable, err)
		}
		return err
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return err
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &ne) || pgconn.SafeToRetry(err) ||
		strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "unexpected EOF") {
		return fmt.Errorf("%w: %w", backend.ErrUnavailable, err)
	}
	return err
}

// fail wraps err of operation op, and ctx's error if ctx ended and err
// does not say so.
func (l *Locker) fail(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("postgres: %s: %w (then: %w)", op, cerr, classify(err))
	}
	return fmt.Errorf("postgres: %s: %w", op, classify(err))
}

// granted arms the sweeper for a lock (or mark) that expires at most d
// from now: expired rows are deleted soon after they expire, so the table
// follows the locks held.
func (l *Locker) granted(d time.Duration) {
	at := time.Now().Add(d + sweepDelay)
	l.sweepMu.Lock()
	defer l.sweepMu.Unlock()
	if l.closed {
		return
	}
	if l.sweepTimer != nil {
		// A sweep is armed or running; it arms the next one itself, at the
		// latest time pending.
		if at.Before(l.sweepAt) && l.sweepTimer.Stop() {
			// Armed later than needed: sweep at at first, then then.
			l.pend(l.sweepAt)
			l.sweepAt = at
			l.sweepTimer = time.AfterFunc(time.Until(at), l.sweep)
			return
		}
		l.pend(at)
		return
	}
	l.sweepAt = at
	l.sweepTimer = time.AfterFunc(time.Until(at), l.sweep)
}

// pend makes at the time of the sweep after the current one, if later.
func (l *Locker) pend(at time.Time) {
	if l.sweepPending.IsZero() || at.After(l.sweepPending) {
		l.sweepPending = at
	}
}

// sweepDelay is how long after the latest expiry known to a Locker its
// sweeper deletes expired rows.
const sweepDelay = 100 * time.Millisecond

// sweepBatch is the most rows one sweep deletes.
const sweepBatch = 1000

// sweepLockWait is how long a sweep waits for the write statements in
// flight to end (new ones wait for the sweep meanwhile); it gives up after
// that, and tries again later.
const sweepLockWait = 50 * time.Millisecond

// sweepOnce deletes at most sweepBatch expired rows, and says how many.
// Its table lock waits for every write statement in flight: a statement
// that drew its token and then waited for a row's lock never finds the
// row deleted after a later holder's grant, so it never inserts a new row
// under its older token. It is one message, which the server commits
// itself (see pgsql.Statements.Sweep): the table stays locked for the
// delete alone, however slowly this client goes on.
func (l *Locker) sweepOnce(ctx context.Context) (int64, error) {
	tag, err := l.pool.Exec(ctx, l.sweepSQL, pgx.QueryExecModeSimpleProtocol)
	return tag.RowsAffected(), err
}

func (l *Locker) sweep() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	n, err := l.sweepOnce(ctx)
	cancel()
	l.sweepMu.Lock()
	defer l.sweepMu.Unlock()
	if l.closed {
		return
	}
	next := l.sweepPending
	l.sweepPending = time.Time{}
	if err != nil || n == sweepBatch {
		// More to do, or the server did not answer: again soon.
		if soon := time.Now().Add(time.Second); next.IsZero() || next.Before(soon) {
			next = soon
		}
	}
	if next.IsZero() {
		l.sweepTimer = nil
		return
	}
	l.sweepAt = next
	l.sweepTimer = time.AfterFunc(time.Until(next), l.sweep)
}

// advisoryKey hashes s to a 64-bit advisory lock key (FNV-1a).
func advisoryKey(s string) int64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return int64(h)
}
