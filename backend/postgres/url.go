package postgres

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/xsync-go/xsync/backend"
)

// init registers the URL schemes of the package doc's "# URLs" section.
func init() {
	backend.RegisterScheme("postgres", openURL)
	backend.RegisterScheme("postgresql", openURL)
}

// Our query options; every other one is pgx's (its pool's and
// connection's options, sslmode, and server settings).
var ourOptions = map[string]bool{"table": true, "schema": true, "prefix": true, "listen": true}

func openURL(ctx context.Context, u *url.URL) (backend.Locker, io.Closer, error) {
	q := u.Query()
	var opts []Option
	for name, vals := range q {
		if !ourOptions[name] {
			continue
		}
		v := vals[0]
		switch name {
		case "table":
			opts = append(opts, WithTable(v))
		case "schema":
			opts = append(opts, WithSchema(v))
		case "prefix":
			opts = append(opts, WithPrefix(v))
		case "listen":
			on, err := strconv.ParseBool(v)
			if err != nil {
				return nil, nil, fmt.Errorf("option listen=%q: want true or false", v)
			}
			if !on {
				opts = append(opts, WithoutListen())
			}
		}
		q.Del(name)
	}
	if c := newConfig(opts); c.err != nil {
		return nil, nil, c.err
	}
	rest := *u
	rest.RawQuery = q.Encode()
	// pgx's errors show the URL with its password masked.
	cfg, err := pgxpool.ParseConfig(rest.String())
	if err != nil {
		return nil, nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	l := New(pool, opts...)
	return l, closer{l, pool}, nil
}

// closer closes a Locker opened from a URL, and its pool.
type closer struct {
	l    *Locker
	pool *pgxpool.Pool
}

func (c closer) Close() error {
	c.l.Close()
	c.pool.Close()
	return nil
}
