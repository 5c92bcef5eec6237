package xsync_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/backend/memory"
)

func TestOpenMemory(t *testing.T) {
	for _, u := range []string{"mem://", "mem:///"} {
		l, closer, err := xsync.Open(t.Context(), u)
		require.NoError(t, err, u)
		assert.IsType(t, &memory.Locker{}, l)
		assert.NoError(t, closer.Close())
	}
}

func TestOpenBadURLs(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"", "has no scheme"},
		{"localhost:6379", "unknown lock URL scheme"},
		{"nosuch://x", `unknown lock URL scheme "nosuch" (known: mem`},
		{"mem://host", "takes no host"},
		{"mem://?x=1", "takes no host"},
		{"redis://:pa ss@%zz", "does not parse"},
	} {
		_, closer, err := xsync.Open(t.Context(), tc.url)
		assert.ErrorIs(t, err, xsync.ErrInvalid, tc.url)
		assert.Nil(t, closer)
		if err != nil {
			assert.Contains(t, err.Error(), tc.want, tc.url)
			assert.NotContains(t, err.Error(), "pa ss", "the password must not be shown")
		}
	}
}

func TestOpenErrorListsSchemes(t *testing.T) {
	_, _, err := xsync.Open(t.Context(), "etcd://h:2379")
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "forgotten import"), err)
}
