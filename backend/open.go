package backend

import (
	"context"
	"io"
	"net/url"

	"github.com/xsync-go/xsync/internal/registry"
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

// RegisterScheme makes open the opener of URLs with the given scheme, for
// xsync.Open. A backend package calls it from its init function. It panics
// if open is nil or the scheme is taken.
func RegisterScheme(scheme string, open OpenFunc) {
	if open == nil {
		panic("backend: RegisterScheme opener is nil")
	}
	registry.Schemes.Register(scheme, open)
}
