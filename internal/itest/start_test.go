package itest

import (
	"net"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

// A server on the host network whose picked port is taken before it binds
// exits at once; start picks another port and tries again, so a Redis
// Cluster or Sentinel node starts all the same.
func TestStartPicksAgainWhenPortTaken(t *testing.T) {
	if runtime.GOOS != "linux" {
		unavailable(t, "a host-network server needs a Linux Docker engine")
	}
	img := resolveImage(t, redisImage)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer held.Close()
	taken := strconv.Itoa(held.Addr().(*net.TCPAddr).Port)
	picks := 0
	sp := redisSpec
	sp.image, sp.hostOnly = img, true
	sp.pick = func() (string, error) {
		picks++
		if picks == 1 {
			return taken, nil
		}
		return freePort()
	}
	s, err := start(t, sp)
	require.NoError(t, err)
	require.Equal(t, 2, picks, "the first port was taken: start must pick once more")
	_, port, _ := net.SplitHostPort(s.Endpoint())
	require.NotEqual(t, taken, port)
	require.NoError(t, RedisClient(t, s).Ping(t.Context()).Err())
}
