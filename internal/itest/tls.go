package itest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// CA is a certificate authority made by a test: nothing is committed, and
// every run has fresh keys.
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	dir     string // where its files are written
}

// NewCA makes a CA named name, with its files in a temporary directory of
// the test.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), dir: t.TempDir()}
	ca.write(t, "ca.crt", ca.certPEM)
	return ca
}

func (ca *CA) write(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(ca.dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// CertFile is the path of the CA's certificate (PEM).
func (ca *CA) CertFile() string { return filepath.Join(ca.dir, "ca.crt") }

// Pool returns a pool holding the CA's certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Issue signs a certificate for name: a server certificate for 127.0.0.1
// and localhost, or a client certificate. It returns the paths of the
// certificate and key files (PEM).
func (ca *CA) Issue(t testing.TB, name string, client bool) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if !client {
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = ca.write(t, name+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyFile = ca.write(t, name+".key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	return certFile, keyFile
}

// ClientTLS returns a TLS configuration that trusts the CA, with a client
// certificate if certFile is set.
func (ca *CA) ClientTLS(t testing.TB, certFile, keyFile string) *tls.Config {
	t.Helper()
	c := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c
}

// tlsFiles copies a server's certificate, key and CA into /tls of a
// container (server.crt, server.key, ca.crt), plus a client pair for its
// own readiness check (client.crt, client.key).
func tlsFiles(t testing.TB, ca *CA) testcontainers.CustomizeRequestOption {
	t.Helper()
	scert, skey := ca.Issue(t, "server", false)
	ccert, ckey := ca.Issue(t, "probe", true)
	var files []testcontainers.ContainerFile
	for src, dst := range map[string]string{scert: "server.crt", skey: "server.key", ca.CertFile(): "ca.crt", ccert: "client.crt", ckey: "client.key"} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, testcontainers.ContainerFile{Reader: bytes.NewReader(data), ContainerFilePath: "/tls/" + dst, FileMode: 0o644})
	}
	return testcontainers.WithFiles(files...)
}

// StartRedisTLS starts a Redis server that speaks TLS only, with a
// certificate from ca; with clientAuth it requires client certificates
// from ca too (mutual TLS).
func StartRedisTLS(t testing.TB, ca *CA, clientAuth bool) *Server {
	t.Helper()
	auth := "no"
	if clientAuth {
		auth = "yes"
	}
	sp := redisSpec
	sp.image = resolveImage(t, redisImage)
	sp.cmd = func(listen string) []string {
		cmd := []string{"redis-server", "--port", "0", "--tls-port", listen,
			"--tls-cert-file", "/tls/server.crt", "--tls-key-file", "/tls/server.key",
			"--tls-ca-cert-file", "/tls/ca.crt", "--tls-auth-clients", auth,
			"--protected-mode", "no", "--save", "", "--appendonly", "no"}
		if hostNetwork() {
			cmd = append(cmd, "--bind", "127.0.0.1")
		}
		return cmd
	}
	sp.ready = func(listen string) wait.Strategy {
		return redisReady("--tls", "--cacert", "/tls/ca.crt", "--cert", "/tls/client.crt", "--key", "/tls/client.key", "-p", listen, "ping")
	}
	sp.extra = []testcontainers.ContainerCustomizer{tlsFiles(t, ca)}
	s, err := start(t, sp)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// StartRedisAuth starts a Redis server whose default user has the given
// password (requirepass); ACL users can be added with a client of it.
func StartRedisAuth(t testing.TB, password string) *Server {
	t.Helper()
	sp := redisSpec
	sp.image = resolveImage(t, redisImage)
	base := sp.cmd
	sp.cmd = func(listen string) []string { return append(base(listen), "--requirepass", password) }
	sp.ready = func(listen string) wait.Strategy {
		return redisReady("--no-auth-warning", "-a", password, "-p", listen, "ping")
	}
	s, err := start(t, sp)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func redisReady(args ...string) wait.Strategy {
	return wait.ForExec(append([]string{"redis-cli"}, args...)).
		WithResponseMatcher(func(r io.Reader) bool {
			b, _ := io.ReadAll(r)
			return strings.Contains(string(b), "PONG")
		})
}

// StartEtcdTLS starts a single-member etcd that serves clients over TLS
// only, with a certificate from ca; with clientAuth it requires client
// certificates from ca too (mutual TLS).
func StartEtcdTLS(t testing.TB, ca *CA, clientAuth bool) *Server {
	t.Helper()
	img := resolveImage(t, etcdImage)
	sp := spec{
		image: img, env: EtcdImageEnv, port: "2379", ready: etcdReady,
		extra: []testcontainers.ContainerCustomizer{tlsFiles(t, ca)},
		cmd: func(listen string) []string {
			peer, host := "2380", "0.0.0.0"
			if hostNetwork() {
				peer, _ = freePort()
				host = "127.0.0.1"
			}
			cmd := []string{"etcd", "--name=etcd0", "--data-dir=/tmp/etcd-data",
				"--listen-client-urls=https://" + host + ":" + listen,
				"--advertise-client-urls=https://127.0.0.1:" + listen,
				"--listen-peer-urls=http://" + host + ":" + peer,
				"--initial-advertise-peer-urls=http://127.0.0.1:" + peer,
				"--initial-cluster=etcd0=http://127.0.0.1:" + peer,
				"--cert-file=/tls/server.crt", "--key-file=/tls/server.key"}
			if clientAuth {
				// A trusted CA alone makes etcd require client certificates.
				cmd = append(cmd, "--trusted-ca-file=/tls/ca.crt", "--client-cert-auth")
			}
			return cmd
		},
	}
	s, err := start(t, sp)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
