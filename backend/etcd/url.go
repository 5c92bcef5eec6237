package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/xsync-go/xsync/backend"
)

// Importing this package registers the URL scheme "etcd" with xsync.Open:
//
//	etcd://[user:password@]host1:2379[,host2:2379...][?options]
//
// Options: prefix (see [WithPrefix]); dial_timeout (a duration, default
// 5s); tls=true to connect with TLS, with ca_file, cert_file and key_file
// (PEM files) and skip_verify=true. The client Open builds is closed by the
// Closer Open returns.
func init() {
	backend.RegisterScheme("etcd", openURL)
}

func openURL(_ context.Context, u *url.URL) (backend.Locker, io.Closer, error) {
	if u.Host == "" {
		return nil, nil, errors.New("no endpoints: want etcd://host:2379[,host:2379...]")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, nil, fmt.Errorf("unexpected path %q", u.Path)
	}
	cfg := clientv3.Config{DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	for _, ep := range strings.Split(u.Host, ",") {
		if ep == "" {
			return nil, nil, errors.New("empty endpoint")
		}
		cfg.Endpoints = append(cfg.Endpoints, ep)
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	var opts []Option
	q := u.Query()
	var (
		useTLS, skipVerify bool
		ca, cert, key      string
	)
	for name, vals := range q {
		v := vals[0]
		var err error
		switch name {
		case "prefix":
			opts = append(opts, WithPrefix(v))
		case "dial_timeout":
			cfg.DialTimeout, err = time.ParseDuration(v)
		case "tls":
			useTLS, err = strconv.ParseBool(v)
		case "skip_verify":
			skipVerify, err = strconv.ParseBool(v)
		case "ca_file":
			ca = v
		case "cert_file":
			cert = v
		case "key_file":
			key = v
		default:
			return nil, nil, fmt.Errorf("unknown option %q", name)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("option %s=%q: %w", name, v, err)
		}
	}
	if !useTLS && (skipVerify || ca != "" || cert != "" || key != "") {
		return nil, nil, errors.New("TLS options given without tls=true")
	}
	if useTLS {
		tc, err := tlsConfig(skipVerify, ca, cert, key)
		if err != nil {
			return nil, nil, err
		}
		cfg.TLS = tc
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return New(c, opts...), c, nil
}

func tlsConfig(skipVerify bool, ca, cert, key string) (*tls.Config, error) {
	tc := &tls.Config{InsecureSkipVerify: skipVerify, MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate", ca)
		}
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("cert_file and key_file go together")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}
