package backend

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sync"
)

// OpenFunc opens a backend from a URL of a scheme it was registered for
// with [RegisterScheme]. It returns the backend and a Closer for what it
// opened (a client, connections), or a nil Closer if there is nothing to
// close.
//
// An OpenFunc must not contact a server: it only checks the URL and builds
// the client. xsync.Open therefore reports every error it returns as a
// configuration error. Unknown query parameters must be errors, so that a
// misspelt option does not go unnoticed.
type OpenFunc func(ctx context.Context, u *url.URL) (Locker, io.Closer, error)

var (
	schemesMu sync.RWMutex
	schemes   = make(map[string]OpenFunc)
)

// RegisterScheme makes open the opener of URLs with the given scheme. A
// backend package calls it from its init function. It panics if open is
// nil or the scheme is taken.
func RegisterScheme(scheme string, open OpenFunc) {
	if open == nil {
		panic("backend: RegisterScheme opener is nil")
	}
	schemesMu.Lock()
	defer schemesMu.Unlock()
	if _, dup := schemes[scheme]; dup {
		panic(fmt.Sprintf("backend: RegisterScheme called twice for scheme %q", scheme))
	}
	schemes[scheme] = open
}

// LookupScheme returns the opener registered for scheme.
func LookupScheme(scheme string) (OpenFunc, bool) {
	schemesMu.RLock()
	defer schemesMu.RUnlock()
	open, ok := schemes[scheme]
	return open, ok
}

// Schemes returns the sorted registered schemes.
func Schemes() []string {
	schemesMu.RLock()
	defer schemesMu.RUnlock()
	out := make([]string, 0, len(schemes))
	for s := range schemes {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}
