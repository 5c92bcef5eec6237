package memory

import (
	"context"
	"fmt"
	"io"
	"net/url"

	"github.com/xsync-go/xsync/backend"
)

// init registers the URL scheme(s) of the package doc's "# URLs" section.
func init() {
	backend.RegisterScheme("mem", openURL)
}

func openURL(_ context.Context, u *url.URL) (backend.Locker, io.Closer, error) {
	if u.Host != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || u.Opaque != "" {
		return nil, nil, fmt.Errorf("mem:// takes no host, path, user or options")
	}
	return New(), nil, nil
}
