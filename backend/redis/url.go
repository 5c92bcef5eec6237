package redis

import (
	"context"
	"crypto/tls"
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
	for _, s := range []string{"redis", "rediss", "redis+cluster", "rediss+cluster", "redis+sentinel", "rediss+sentinel"} {
		backend.RegisterScheme(s, openURL)
	}
}

// openURL takes out this package's own options (prefix, fence_idle,
// hash_layout, the PEM files; for Sentinel the sentinels' credentials),
// hands the rest to go-redis's parser for the deployment the scheme
// names, and builds that client with ContextTimeoutEnabled.
func openURL(_ context.Context, u *url.URL) (backend.Locker, io.Closer, error) {
	q := u.Query()
	take := func(name string) (string, bool) {
		v, ok := q[name]
		q.Del(name)
		if !ok {
			return "", false
		}
		return v[0], true
	}
	var opts []Option
	if v, ok := take("prefix"); ok {
		opts = append(opts, WithPrefix(v))
	}
	if v, ok := take("fence_idle"); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return nil, nil, fmt.Errorf("fence_idle=%q: want a duration >= 0 such as 1m", v)
		}
		opts = append(opts, WithFenceIdle(d))
	}
	if v, ok := take("hash_layout"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, nil, fmt.Errorf("hash_layout=%q: want true or false", v)
		}
		if b {
			opts = append(opts, WithHashLayout())
		}
	}
	var files tlsconf.Files
	for _, name := range []string{"ca_file", "cert_file", "key_file"} {
		if v, ok := take(name); ok {
			files.Option(name, v)
		}
	}
	withTLS := func(c *tls.Config) (*tls.Config, error) {
		if !files.Any() {
			return c, nil
		}
		if c == nil {
			return nil, fmt.Errorf("ca_file, cert_file and key_file need %s://", strings.Replace(u.Scheme, "redis", "rediss", 1))
		}
		return files.Apply(c)
	}
	base, kind, _ := strings.Cut(u.Scheme, "+")
	rest := *u
	rest.Scheme = base
	var err error
	switch kind {
	case "":
		rest.RawQuery = q.Encode()
		o, err := goredis.ParseURL(rest.String())
		if err != nil {
			return nil, nil, err
		}
		if o.TLSConfig, err = withTLS(o.TLSConfig); err != nil {
			return nil, nil, err
		}
		o.ContextTimeoutEnabled = true
		c := goredis.NewClient(o)
		return New(c, opts...), c, nil
	case "cluster":
		if u.Path != "" && u.Path != "/" {
			return nil, nil, fmt.Errorf("unexpected path %q: a Redis Cluster has only database 0", u.Path)
		}
		rest.Path = ""
		if rest.Host, err = hostsToQuery(u.Host, q); err != nil {
			return nil, nil, err
		}
		skip, _ := take("skip_verify") // go-redis's cluster parser lacks it
		rest.RawQuery = q.Encode()
		o, err := goredis.ParseClusterURL(rest.String())
		if err != nil {
			return nil, nil, err
		}
		if skip != "" {
			b, err := strconv.ParseBool(skip)
			if err != nil || o.TLSConfig == nil {
				return nil, nil, fmt.Errorf("skip_verify=%q: want true or false, with rediss+cluster://", skip)
			}
			o.TLSConfig.InsecureSkipVerify = b
		}
		if o.TLSConfig, err = withTLS(o.TLSConfig); err != nil {
			return nil, nil, err
		}
		o.ContextTimeoutEnabled = true
		c := goredis.NewClusterClient(o)
		return New(c, opts...), c, nil
	default: // sentinel
		master, db, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if master == "" {
			return nil, nil, fmt.Errorf("no primary name: want %s://sentinel1:26379,sentinel2:26379/mymaster", u.Scheme)
		}
		if _, ok := q["master_name"]; ok {
			return nil, nil, errors.New("the primary's name is the URL's path, not master_name")
		}
		q.Set("master_name", master)
		if db != "" {
			q.Set("db", db)
		}
		sentinelUser, _ := take("sentinel_username")
		sentinelPass, _ := take("sentinel_password")
		rest.Path, rest.User = "", nil
		if rest.Host, err = hostsToQuery(u.Host, q); err != nil {
			return nil, nil, err
		}
		rest.RawQuery = q.Encode()
		o, err := goredis.ParseFailoverURL(rest.String())
		if err != nil {
			return nil, nil, err
		}
		// go-redis gives the URL's user to the sentinels; here it is the
		// servers' (the primary's and replicas'), as in redis://.
		o.Username, o.Password = "", ""
		if u.User != nil {
			o.Username = u.User.Username()
			o.Password, _ = u.User.Password()
		}
		o.SentinelUsername, o.SentinelPassword = sentinelUser, sentinelPass
		if o.TLSConfig, err = withTLS(o.TLSConfig); err != nil {
			return nil, nil, err
		}
		o.ContextTimeoutEnabled = true
		c := goredis.NewFailoverClient(o)
		return New(c, opts...), c, nil
	}
}

// hostsToQuery splits a comma-separated host list: it returns the first
// host and adds the others to q as go-redis's addr options.
func hostsToQuery(hosts string, q url.Values) (string, error) {
	if hosts == "" {
		return "", errors.New("no hosts: want host1:port,host2:port")
	}
	if _, ok := q["addr"]; ok {
		return "", errors.New("list the hosts in the URL's host part (h1:6379,h2:6379), not as addr options")
	}
	list := strings.Split(hosts, ",")
	for _, h := range list {
		if h == "" {
			return "", errors.New("empty host in the host list")
		}
		if !strings.Contains(h, ":") {
			return "", fmt.Errorf("host %q has no port", h)
		}
	}
	for _, h := range list[1:] {
		q.Add("addr", h)
	}
	return list[0], nil
}
