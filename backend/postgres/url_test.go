package postgres_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	xpg "github.com/xsync-go/xsync/backend/postgres"
)

// Both schemes open without contacting a server; our options are taken
// out of the URL before pgx sees it.
func TestOpenURL(t *testing.T) {
	for _, u := range []string{
		"postgres://app:Pass-Word-1@127.0.0.1:1/db?sslmode=disable",
		"postgresql://app:Pass-Word-1@127.0.0.1:1/db?table=app_locks&schema=locks&prefix=a/&listen=false&pool_max_conns=3",
	} {
		l, closer, err := xsync.Open(t.Context(), u)
		require.NoError(t, err, u)
		require.IsType(t, &xpg.Locker{}, l)
		require.NoError(t, closer.Close())
	}
}

// Bad URLs are configuration errors that never show the password.
func TestOpenURLBad(t *testing.T) {
	for _, u := range []string{
		"postgres://app:Pass-Word-1@127.0.0.1:1/db?listen=maybe",
		"postgres://app:Pass-Word-1@127.0.0.1:1/db?table=bad-name",
		"postgres://app:Pass-Word-1@127.0.0.1:1/db?schema=a.b",
		"postgres://app:Pass-Word-1@127.0.0.1:1/db?connect_timeout=soon",
		"postgres://app:Pass-Word-1@127.0.0.1:1/db?sslmode=sometimes",
		"postgres://app:Pass-Word-1@127.0.0.1:notaport/db",
	} {
		_, _, err := xsync.Open(t.Context(), u)
		require.Error(t, err, u)
		assert.True(t, errors.Is(err, xsync.ErrInvalid), "%s: %v", u, err)
		assert.NotContains(t, err.Error(), "Pass-Word-1", u)
	}
}
