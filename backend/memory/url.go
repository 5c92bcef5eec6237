package memory

import (
	"context"
	"fmt"
	"io"
	"net/url"

	"github.com/xsync-go/xsync/backend"
)

// Importing this package registers the URL scheme "mem" with
// xsync.Open: "mem://" opens a new, empty in-memory Locker. It takes no
// host, path or options.
func init() {
	backend.RegisterScheme("mem", openURL)
}

func openURL(_ context.Context, u *url.URL) (backend.Locker, io.Closer, error) {
	if u.Host != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || u.Opaque != "" {
		return nil, nil, fmt.Errorf("mem:// takes no host, path, user or options")
	}
	return New(), nil, nil
}
