package xsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/xsync-go/xsync/backend"
)

// Locker is a lock backend: what [NewClient] and [Register] accept. It is
// the interface of package backend, repeated here so that applications
// need not import that package.
type Locker = backend.Locker

// Client locks on one backend instance: the handle a service keeps, as it
// keeps a *sql.DB. Build it with [NewClient] from a backend value:
//
//	locks := xsync.NewClient(redis.New(rdb))
//	lease, err := locks.Acquire(ctx, "invoice:42", xsync.WithTTL(30*time.Second), xsync.WithWait(5*time.Second))
//	if err != nil {
//		return err // xsync.IsMissingLockErr(err): held by someone else for the whole wait
//	}
//	defer lease.Release(context.WithoutCancel(ctx))
//	select {
//	case <-lease.Done(): // lost: stop, the work is no longer protected
//	case ...:
//	}
//
// Every kind of lock (a key's mutex, a [Semaphore], an [RWLock], a set of
// keys with [Client.AcquireAll]) is taken the same way, with the same
// options, and held as a [Lease].
//
// A Client is safe for concurrent use and holds no resources of its own:
// closing the backend's client is the application's business.
type Client struct {
	l     Locker
	name  string   // the backend as messages and events name it
	clock Clock    // never nil
	obs   Observer // nil: the observer set for name (SetObserver)
	owner string   // owner metadata by default
}

// ClientOption configures a [Client].
type ClientOption func(*Client)

// WithName names the backend in error messages and observer events (and
// selects the observer set for that name with [SetObserver], unless
// [WithObserver] sets one). The default is the backend's package name
// ("redis", "etcd", ...).
func WithName(name string) ClientOption { return func(c *Client) { c.name = name } }

// WithClock replaces the system clock: the client then measures validity,
// waits and renewals on clock. Tests use a manual clock shared with the
// memory backend (memory.ManualClock) to expire or lose locks without
// sleeping.
func WithClock(clock Clock) ClientOption { return func(c *Client) { c.clock = clock } }

// WithObserver makes o the client's observer, whatever SetObserver says.
func WithObserver(o Observer) ClientOption { return func(c *Client) { c.obs = o } }

// NewClient returns a client of the backend l. It panics if l is nil.
func NewClient(l Locker, opts ...ClientOption) *Client {
	if l == nil {
		panic("xsync: NewClient backend is nil")
	}
	c := &Client{l: l, name: kindOf(l), clock: systemClock{}, owner: defaultOwner}
	for _, o := range opts {
		o(c)
	}
	if c.clock == nil {
		c.clock = systemClock{}
	}
	return c
}

// kindOf names a backend by its package: "redis" for *redis.Locker.
func kindOf(l Locker) string {
	t := reflect.TypeOf(l)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if p := t.PkgPath(); p != "" {
		return p[strings.LastIndexByte(p, '/')+1:]
	}
	return t.String()
}

// Locker returns the backend the client locks on.
func (c *Client) Locker() Locker { return c.l }

// observer is the client's observer, or nil.
func (c *Client) observer() Observer {
	if c.obs != nil {
		return c.obs
	}
	return observer(c.name)
}

// defaultOwner is the owner metadata a client stores by default.
var defaultOwner = func() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	return host + "/" + strconv.Itoa(os.Getpid())
}()

// Ping checks that the backend can serve locks right now, for readiness
// probes: one round trip to its server (Redis), a quorum of its servers
// (Redlock), or its cluster's leader (etcd). It returns nil if so, an
// error matching errors.ErrUnsupported if the backend cannot tell, and
// otherwise the backend's error, wrapped.
func (c *Client) Ping(ctx context.Context) error {
	p, ok := c.l.(backend.Pinger)
	if !ok {
		return fmt.Errorf("xsync: ping %s: the backend cannot tell: %w", c.name, errors.ErrUnsupported)
	}
	if err := p.Ping(ctx); err != nil {
		return fmt.Errorf("xsync: ping %s: %w", c.name, err)
	}
	return nil
}

// validity is how long a lock of ttl is trusted after its request.
func (c *Client) validity(ttl time.Duration) time.Duration {
	if v, ok := c.l.(backend.Validity); ok {
		return min(v.Validity(ttl), ttl)
	}
	return ttl
}
