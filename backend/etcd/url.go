package etcd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/tlsconf"
)

// init registers the URL scheme(s) of the package doc's "# URLs" section.
func init() {
	backend.RegisterScheme("etcd", openURL)
}

func openURL(_ context.Context, u *url.URL) (backend.Locker, io.Closer, error) {
	if u.Host == "" {
		return nil, nil, errors.New("no endpoints: want etcd://host:2379[,host:2379...]")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, nil, fmt.Errorf("unexpected path %q", u.Path)
	}
	cfg := clientv3.Config{DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	var err error
	if cfg.Endpoints, err = tlsconf.Hosts(u.Host, "endpoint"); err != nil {
		return nil, nil, err
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	var opts []Option
	q := u.Query()
	var tlsOpts tlsconf.URL
	for name, vals := range q {
		v := vals[0]
		var err error
		switch name {
		case "prefix":
			opts = append(opts, WithPrefix(v))
		case "dial_timeout":
			cfg.DialTimeout, err = time.ParseDuration(v)
		default:
			var known bool
			if known, err = tlsOpts.Option(name, v); !known {
				return nil, nil, fmt.Errorf("unknown option %q", name)
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("option %s=%q: %w", name, v, err)
		}
	}
	if cfg.TLS, err = tlsOpts.Config(); err != nil {
		return nil, nil, err
	}
	if cfg.Username == "" {
		// Without credentials clientv3.New does not dial (it connects
		// in the background).
		c, err := clientv3.New(cfg)
		if err != nil {
			return nil, nil, err
		}
		return New(c, opts...), c, nil
	}
	// With credentials clientv3.New authenticates against the cluster:
	// leave that to the first call, so that Open never dials and a cluster
	// that is down at start-up is reported by Ping or the first lock, not
	// as bad input.
	z := &lazy{cfg: cfg, opts: opts}
	return z, z, nil
}

// lazy is the backend of an etcd:// URL with credentials: it builds its
// client on the first call, within that call's context.
type lazy struct {
	cfg  clientv3.Config
	opts []Option

	mu     sync.Mutex
	l      *Locker
	c      *clientv3.Client
	closed bool
}

var errClosed = errors.New("etcd: the backend was closed")

func (z *lazy) get(ctx context.Context) (*Locker, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	switch {
	case z.closed:
		return nil, errClosed
	case z.l != nil:
		return z.l, nil
	}
	cfg := z.cfg
	if d, ok := ctx.Deadline(); ok {
		cfg.DialTimeout = min(cfg.DialTimeout, time.Until(d))
		if cfg.DialTimeout <= 0 {
			return nil, ctx.Err()
		}
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd: connect: %w", err)
	}
	z.c, z.l = c, New(c, z.opts...)
	return z.l, nil
}

func (z *lazy) Acquire(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	l, err := z.get(ctx)
	if err != nil {
		return 0, err
	}
	return l.Acquire(ctx, key, ttl)
}

func (z *lazy) Release(ctx context.Context, key string, token int64) (bool, error) {
	l, err := z.get(ctx)
	if err != nil {
		return false, err
	}
	return l.Release(ctx, key, token)
}

func (z *lazy) Mutex(key string) backend.Lock {
	return lazyLock{z, func(l *Locker) backend.Lock { return l.Mutex(key) }}
}

func (z *lazy) Semaphore(key string, limit int) backend.Lock {
	return lazyLock{z, func(l *Locker) backend.Lock { return l.Semaphore(key, limit) }}
}

func (z *lazy) RWLock(key string) (read, write backend.Lock) {
	return lazyLock{z, func(l *Locker) backend.Lock { r, _ := l.RWLock(key); return r }},
		lazyLock{z, func(l *Locker) backend.Lock { _, w := l.RWLock(key); return w }}
}

func (z *lazy) Election(name string) backend.Lock {
	return lazyLock{z, func(l *Locker) backend.Lock { return l.Election(name) }}
}

func (z *lazy) Multi(keys []string) backend.Lock {
	return lazyLock{z, func(l *Locker) backend.Lock { return l.Multi(keys) }}
}

// lazyLock is a lock of a lazy backend: made of its Locker on each call.
// Every lock of this package has every ability.
type lazyLock struct {
	z    *lazy
	make func(l *Locker) backend.Lock
}

func (k lazyLock) lock(ctx context.Context) (backend.Lock, error) {
	l, err := k.z.get(ctx)
	if err != nil {
		return nil, err
	}
	return k.make(l), nil
}

func (k lazyLock) Acquire(ctx context.Context, r backend.Request) (int64, error) {
	lk, err := k.lock(ctx)
	if err != nil {
		return 0, err
	}
	return lk.Acquire(ctx, r)
}

func (k lazyLock) Release(ctx context.Context, token int64) (bool, error) {
	lk, err := k.lock(ctx)
	if err != nil {
		return false, err
	}
	return lk.Release(ctx, token)
}

func (k lazyLock) Refresh(ctx context.Context, token int64, ttl time.Duration) (bool, error) {
	lk, err := k.lock(ctx)
	if err != nil {
		return false, err
	}
	return lk.(backend.Refresher).Refresh(ctx, token, ttl)
}

func (k lazyLock) Watch(ctx context.Context, waiter string, keep time.Duration) (<-chan struct{}, func(), error) {
	lk, err := k.lock(ctx)
	if err != nil {
		return nil, nil, err
	}
	return lk.(backend.Watcher).Watch(ctx, waiter, keep)
}

// Changes is an election's: other locks have no Notifier, and say so.
func (k lazyLock) Changes(ctx context.Context) (<-chan struct{}, func(), error) {
	lk, err := k.lock(ctx)
	if err != nil {
		return nil, nil, err
	}
	n, ok := lk.(backend.Notifier)
	if !ok {
		return nil, nil, errors.ErrUnsupported
	}
	return n.Changes(ctx)
}

func (k lazyLock) Inspect(ctx context.Context) (backend.Info, error) {
	lk, err := k.lock(ctx)
	if err != nil {
		return backend.Info{}, err
	}
	return lk.(backend.Inspector).Inspect(ctx)
}

func (k lazyLock) ForceRelease(ctx context.Context) (bool, error) {
	lk, err := k.lock(ctx)
	if err != nil {
		return false, err
	}
	return lk.(backend.ForceReleaser).ForceRelease(ctx)
}

func (z *lazy) Ping(ctx context.Context) error {
	l, err := z.get(ctx)
	if err != nil {
		return err
	}
	return l.Ping(ctx)
}

func (z *lazy) List(ctx context.Context, prefix, cursor string, limit int) ([]backend.Listed, string, error) {
	l, err := z.get(ctx)
	if err != nil {
		return nil, "", err
	}
	return l.List(ctx, prefix, cursor, limit)
}

// Close closes the Locker and the client, if they were built.
func (z *lazy) Close() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.closed = true
	if z.c != nil {
		return errors.Join(z.l.Close(), z.c.Close())
	}
	return nil
}
