package xsync

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/xsync-go/xsync/backend"
	"github.com/xsync-go/xsync/internal/registry"
)

// Open builds a backend from a URL, so that each environment can choose
// its backend by configuration:
//
//	l, closer, err := xsync.Open(ctx, os.Getenv("LOCK_URL")) // e.g. redis://:secret@cache:6379/0
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer closer.Close()
//	xsync.Register("default", l)
//
// A scheme is known once its backend package is imported (for its side
// effect, if nothing else):
//
//	mem://                                          backend/memory
//	redis://[[user]:password@]host[:port][/db][?options]   backend/redis
//	rediss://...                                    backend/redis, TLS
//	redis+cluster://[[user]:password@]h1:6379,h2:6379[?options]     backend/redis, Redis Cluster
//	redis+sentinel://[[user]:password@]s1:26379,s2:26379/primary[?options]   backend/redis, Sentinel
//	rediss+cluster://..., rediss+sentinel://...     the same, TLS
//	redlock://[[user]:password@]h1:6379,h2:6379,h3:6379[?options]   backend/redlock
//	etcd://[user:password@]h1:2379[,h2:2379...][?options]          backend/etcd
//	postgres://[user[:password]@]host[:port][/database][?options]  backend/postgres
//	postgresql://...                                backend/postgres
//
// Each package's documentation has a "# URLs" section with its options.
//
// Open does not contact a server. Every error it returns matches
// [ErrInvalid] and never shows a password (neither the URL's nor an
// option named like *password*). The Closer closes what Open
// opened (the client); it never returns nil.
func Open(ctx context.Context, rawURL string) (Locker, io.Closer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the URL, password included: say less.
		var msg string
		if ue, ok := err.(*url.Error); ok {
			msg = ue.Err.Error()
		} else {
			msg = err.Error()
		}
		return nil, nil, fmt.Errorf("%w: lock URL does not parse: %s", ErrInvalid, msg)
	}
	if u.Scheme == "" {
		return nil, nil, fmt.Errorf("%w: lock URL %q has no scheme (known: %s)", ErrInvalid, redacted(u), known())
	}
	v, ok := registry.Schemes.Lookup(u.Scheme)
	open, _ := v.(backend.OpenFunc)
	if !ok || open == nil {
		return nil, nil, fmt.Errorf("%w: unknown lock URL scheme %q (known: %s; forgotten import of the backend package?)",
			ErrInvalid, u.Scheme, known())
	}
	l, c, err := open(ctx, u)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: lock URL %s: %w", ErrInvalid, redacted(u), err)
	}
	if l == nil {
		return nil, nil, fmt.Errorf("%w: lock URL %s: the %s opener returned no backend", ErrInvalid, redacted(u), u.Scheme)
	}
	if c == nil {
		c = nopCloser{}
	}
	return l, c, nil
}

// redacted is u without its passwords: the user's (as url.URL.Redacted
// hides it) and any option whose name contains "password" (such as
// redis+sentinel's sentinel_password).
func redacted(u *url.URL) string {
	r := *u
	if q := r.Query(); len(q) > 0 {
		hid := false
		for k := range q {
			if strings.Contains(strings.ToLower(k), "password") {
				q.Set(k, "xxxxx")
				hid = true
			}
		}
		if hid {
			r.RawQuery = q.Encode()
		}
	}
	return r.Redacted()
}

func known() string {
	s := registry.Schemes.Names()
	if len(s) == 0 {
		return "none: import a backend package"
	}
	return strings.Join(s, ", ")
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
