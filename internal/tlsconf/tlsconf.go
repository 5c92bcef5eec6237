// Package tlsconf reads what the backends' URLs share, one way for every
// backend: the client TLS configuration (tls, ca_file, cert_file,
// key_file, skip_verify) and host lists.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
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

// URL gathers the TLS options of a URL whose scheme does not say TLS:
// tls=true, skip_verify=true, and the PEM files.
type URL struct {
	on, skipVerify bool
	files          Files
}

// Option reports whether name is a TLS option of the URL, and records
// its value.
func (u *URL) Option(name, value string) (bool, error) {
	var err error
	switch name {
	case "tls":
		u.on, err = strconv.ParseBool(value)
	case "skip_verify":
		u.skipVerify, err = strconv.ParseBool(value)
	default:
		return u.files.Option(name, value), nil
	}
	return true, err
}

// Config returns the client TLS configuration the options describe: nil
// without tls=true, and an error if TLS options came without it.
func (u *URL) Config() (*tls.Config, error) {
	if !u.on {
		if u.skipVerify || u.files.Any() {
			return nil, errors.New("TLS options given without tls=true")
		}
		return nil, nil
	}
	return u.files.Apply(&tls.Config{InsecureSkipVerify: u.skipVerify, MinVersion: tls.VersionTLS12})
}

// Hosts splits a URL's host list ("h1:6379,h2:6379"); what names one in
// errors ("node", "endpoint").
func Hosts(host, what string) ([]string, error) {
	var out []string
	for _, h := range strings.Split(host, ",") {
		if h == "" {
			return nil, fmt.Errorf("empty %s address", what)
		}
		out = append(out, h)
	}
	return out, nil
}
