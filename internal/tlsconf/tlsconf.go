// Package tlsconf builds the client TLS configuration that the backends'
// URLs describe (tls, ca_file, cert_file, key_file, skip_verify), one way
// for every backend.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Files names the PEM files of a TLS client configuration.
type Files struct {
	CA   string // CA certificates to trust instead of the system's
	Cert string // client certificate, for servers that require one
	Key  string // its private key
}

// Option reports whether name is one of the URL options Files reads, and
// records its value.
func (f *Files) Option(name, value string) bool {
	switch name {
	case "ca_file":
		f.CA = value
	case "cert_file":
		f.Cert = value
	case "key_file":
		f.Key = value
	default:
		return false
	}
	return true
}

// Any reports whether any file is named.
func (f Files) Any() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// Apply loads the files into c (which may be nil: a new configuration is
// made). Errors name the file, never its contents.
func (f Files) Apply(c *tls.Config) (*tls.Config, error) {
	if c == nil {
		c = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate", f.CA)
		}
	}
	if (f.Cert == "") != (f.Key == "") {
		return nil, errors.New("cert_file and key_file go together")
	}
	if f.Cert != "" {
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("cert_file/key_file %s, %s: cannot load the pair", f.Cert, f.Key)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}
