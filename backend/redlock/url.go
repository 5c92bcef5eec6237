package redlock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/tlsconf"
)

// init registers the URL scheme(s) of the package doc's "# URLs" section.
func init() {
	backend.RegisterScheme("redlock", openURL)
}

func openURL(_ context.Context, u *url.URL) (backend.Locker, io.Closer, error) {
	if u.Host == "" {
		return nil, nil, errors.New("no nodes: want redlock://host1:6379,host2:6379,host3:6379")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, nil, fmt.Errorf("unexpected path %q (the database is the db option)", u.Path)
	}
	base := goredis.Options{ContextTimeoutEnabled: true, MaxRetries: -1}
	if u.User != nil {
		base.Username = u.User.Username()
		base.Password, _ = u.User.Password()
	}
	var (
		opts    []Option
		tlsOpts tlsconf.URL
	)
	for name, vals := range u.Query() {
		v := vals[0]
		var err error
		switch name {
		case "prefix":
			opts = append(opts, WithPrefix(v))
		case "node_timeout":
			var d time.Duration
			if d, err = time.ParseDuration(v); err == nil && d <= 0 {
				err = errors.New("must be > 0")
			}
			if err == nil {
				opts = append(opts, WithNodeTimeout(d))
			}
		case "quorum_timeout":
			var d time.Duration
			if d, err = time.ParseDuration(v); err == nil && d <= 0 {
				err = errors.New("must be > 0")
			}
			if err == nil {
				opts = append(opts, WithQuorumTimeout(d))
			}
		case "drift_factor":
			var f float64
			if f, err = strconv.ParseFloat(v, 64); err == nil && !(f >= 0 && f < 0.5) {
				err = errors.New("must be in [0, 0.5)")
			}
			if err == nil {
				opts = append(opts, WithDriftFactor(f))
			}
		case "db":
			base.DB, err = strconv.Atoi(v)
		case "dial_timeout":
			base.DialTimeout, err = time.ParseDuration(v)
		case "read_timeout":
			base.ReadTimeout, err = time.ParseDuration(v)
		case "write_timeout":
			base.WriteTimeout, err = time.ParseDuration(v)
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
	shared, err := tlsOpts.Config() // the TLS configuration every node gets a copy of
	if err != nil {
		return nil, nil, err
	}
	addrs, err := tlsconf.Hosts(u.Host, "node")
	if err != nil {
		return nil, nil, err
	}
	var clients []goredis.UniversalClient
	closer := closers{}
	for _, addr := range addrs {
		o := base
		o.Addr = addr
		if shared != nil {
			host, _, _ := strings.Cut(addr, ":")
			o.TLSConfig = shared.Clone()
			o.TLSConfig.ServerName = host
		}
		c := goredis.NewClient(&o)
		clients = append(clients, c)
		closer = append(closer, c)
	}
	return New(clients, opts...), closer, nil
}

type closers []io.Closer

func (cs closers) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
