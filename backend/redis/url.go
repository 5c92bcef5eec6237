package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/tlsconf"
)

// init registers the URL scheme(s) of the package doc's "# URLs" section.
func init() {
	backend.RegisterScheme("redis", openURL)
	backend.RegisterScheme("rediss", openURL)
}

func openURL(_ context.Context, u *url.URL) (backend.Locker, io.Closer, error) {
	q := u.Query()
	var opts []Option
	if v, ok := q["prefix"]; ok {
		opts = append(opts, WithPrefix(v[0]))
		q.Del("prefix")
	}
	if v, ok := q["fence_idle"]; ok {
		d, err := time.ParseDuration(v[0])
		if err != nil || d < 0 {
			return nil, nil, fmt.Errorf("fence_idle=%q: want a duration >= 0 such as 1m", v[0])
		}
		opts = append(opts, WithFenceIdle(d))
		q.Del("fence_idle")
	}
	var files tlsconf.Files
	for _, name := range []string{"ca_file", "cert_file", "key_file"} {
		if v, ok := q[name]; ok {
			files.Option(name, v[0])
			q.Del(name)
		}
	}
	rest := *u
	rest.RawQuery = q.Encode()
	o, err := goredis.ParseURL(rest.String())
	if err != nil {
		return nil, nil, err
	}
	if files.Any() {
		if o.TLSConfig == nil {
			return nil, nil, errors.New("ca_file, cert_file and key_file need rediss://")
		}
		if o.TLSConfig, err = files.Apply(o.TLSConfig); err != nil {
			return nil, nil, err
		}
	}
	o.ContextTimeoutEnabled = true
	c := goredis.NewClient(o)
	return New(c, opts...), c, nil
}
