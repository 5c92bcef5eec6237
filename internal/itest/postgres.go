package itest

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// PostgreSQL: the image variable and its default (the official image). The
// locally built image (Debian's postgresql-15 and pgbouncer) also runs
// PgBouncer, for which no official image exists: PgBouncerImageEnv
// defaults to it.
const (
	PostgresImageEnv     = "XSYNC_POSTGRES_IMAGE"
	DefaultPostgresImage = "postgres:15"
	LocalPostgresImage   = "xsync-test/postgres:15"
	PgBouncerImageEnv    = "XSYNC_PGBOUNCER_IMAGE"
)

var postgresImage = imageKind{PostgresImageEnv, DefaultPostgresImage, LocalPostgresImage, "postgres"}

// PostgresPassword is the superuser's password of every test server (user
// postgres, SCRAM over TCP).
const PostgresPassword = "xsync-test-superuser"

// Postgres is a PostgreSQL server of a test, on a network of its own
// where it is known as "postgres" (for a PgBouncer beside it).
type Postgres struct {
	*Server
	nw *testcontainers.DockerNetwork
}

// PostgresOption changes how StartPostgres starts a server.
type PostgresOption func(*postgresConfig)

type postgresConfig struct {
	ca *CA
}

// WithPostgresTLS makes the server speak TLS (too) with a certificate
// from ca for 127.0.0.1 and localhost; clients choose with sslmode.
func WithPostgresTLS(ca *CA) PostgresOption { return func(c *postgresConfig) { c.ca = ca } }

// StartPostgres starts a PostgreSQL server for the test: superuser
// postgres with [PostgresPassword], SCRAM over TCP, fsync off (data
// survives a restart or a kill of the container, not a crash of the
// machine).
func StartPostgres(t testing.TB, opts ...PostgresOption) *Postgres {
	t.Helper()
	var cfg postgresConfig
	for _, o := range opts {
		o(&cfg)
	}
	img := resolveImage(t, postgresImage)
	nw, err := tcnetwork.New(t.Context())
	if err != nil {
		t.Fatalf("network: %v", err)
	}
	t.Cleanup(func() { nw.Remove(context.Background()) })
	// fsync off: a killed server keeps its data (the kernel has it); only
	// a crash of the machine would lose it. synchronous_commit stays on:
	// off, a killed server loses its last commits (grants, tokens).
	flags := []string{"-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "log_min_messages=warning"}
	extra := []testcontainers.ContainerCustomizer{
		tcnetwork.WithNetwork([]string{"postgres"}, nw),
		testcontainers.WithEnv(map[string]string{"POSTGRES_PASSWORD": PostgresPassword}),
	}
	wrap := ""
	if cfg.ca != nil {
		// The server refuses a key that others can read; the copy is the
		// server user's own.
		wrap = `umask 077; cat /tls/server.key > /tmp/server.key; [ "$(id -u 2>/dev/null)" = 0 ] && chown postgres /tmp/server.key; `
		flags = append(flags, "-c", "ssl=on", "-c", "ssl_cert_file=/tls/server.crt",
			"-c", "ssl_key_file=/tmp/server.key", "-c", "ssl_ca_file=/tls/ca.crt")
		extra = append(extra, tlsFiles(t, cfg.ca))
	}
	sp := spec{
		image: img, env: PostgresImageEnv, port: "5432", bridged: true, extra: extra,
		cmd: func(string) []string {
			return append([]string{"sh", "-c", wrap + `exec docker-entrypoint.sh postgres "$@"`, "--"}, flags...)
		},
		ready: func(string) wait.Strategy {
			// The official image's first start is a server on a socket
			// only: ask over TCP.
			return wait.ForExec([]string{"pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres"}).
				WithExitCodeMatcher(func(code int) bool { return code == 0 })
		},
	}
	s, err := start(t, sp)
	if err != nil {
		t.Fatal(err)
	}
	return &Postgres{Server: s, nw: nw}
}

// URL returns a postgres:// URL of the server for user and password on
// database postgres, with extra query parameters (sslmode=disable unless
// they say otherwise).
func (p *Postgres) URL(user, password string, query ...string) string {
	return postgresURL(p.Endpoint(), user, password, query...)
}

// AdminURL is URL for the superuser.
func (p *Postgres) AdminURL(query ...string) string {
	return p.URL("postgres", PostgresPassword, query...)
}

func postgresURL(hostport, user, password string, query ...string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: hostport, Path: "/postgres"}
	q := strings.Join(query, "&")
	if !strings.Contains(q, "sslmode=") {
		q = strings.TrimPrefix(q+"&sslmode=disable", "&")
	}
	u.RawQuery = q
	return u.String()
}

// PgBouncer is a PgBouncer of a test in front of a [Postgres].
type PgBouncer struct {
	*Server
}

// StartPgBouncer starts PgBouncer in transaction pooling mode in front of
// pg, for its database postgres, with the users and passwords given
// (pairs: user, password, ...; SCRAM between client and PgBouncer and
// between PgBouncer and the server), and at most pool server connections.
func StartPgBouncer(t testing.TB, pg *Postgres, pool int, users ...string) *PgBouncer {
	t.Helper()
	img := resolveImage(t, postgresImage)
	if v := os.Getenv(PgBouncerImageEnv); v != "" {
		img = v
	}
	var userlist bytes.Buffer
	for i := 0; i+1 < len(users); i += 2 {
		fmt.Fprintf(&userlist, "%q %q\n", users[i], users[i+1])
	}
	ini := fmt.Sprintf(`[databases]
postgres = host=postgres port=5432 dbname=postgres
[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
auth_type = scram-sha-256
auth_file = /etc/pgbouncer/userlist.txt
pool_mode = transaction
default_pool_size = %d
max_client_conn = 500
server_lifetime = 3600
ignore_startup_parameters = extra_float_digits
unix_socket_dir =
`, pool)
	files := []testcontainers.ContainerFile{
		{Reader: strings.NewReader(ini), ContainerFilePath: "/etc/pgbouncer/pgbouncer.ini", FileMode: 0o644},
		{Reader: bytes.NewReader(userlist.Bytes()), ContainerFilePath: "/etc/pgbouncer/userlist.txt", FileMode: 0o644},
	}
	sp := spec{
		image: img, env: PgBouncerImageEnv, port: "6432", bridged: true,
		extra: []testcontainers.ContainerCustomizer{
			tcnetwork.WithNetwork([]string{"pgbouncer"}, pg.nw),
			testcontainers.WithFiles(files...),
			testcontainers.WithEntrypoint("pgbouncer"),
		},
		cmd: func(string) []string { return []string{"/etc/pgbouncer/pgbouncer.ini"} },
		ready: func(string) wait.Strategy {
			return wait.ForLog("process up")
		},
	}
	s, err := start(t, sp)
	if err != nil {
		t.Fatal(err)
	}
	return &PgBouncer{Server: s}
}

// URL returns a postgres:// URL through PgBouncer for user and password.
func (b *PgBouncer) URL(user, password string, query ...string) string {
	return postgresURL(b.Endpoint(), user, password, query...)
}

// PostgresURLAt is URL for a server at hostport (a [Proxy]'s, say).
func PostgresURLAt(hostport, user, password string, query ...string) string {
	return postgresURL(hostport, user, password, query...)
}
