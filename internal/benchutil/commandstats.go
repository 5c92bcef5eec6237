package benchutil

import (
	"strconv"
	"strings"
	"testing"
)

// CommandUsec is the total server time, in microseconds, of cmd in a
// Redis INFO commandstats reply; 0 if cmd was not called.
func CommandUsec(b testing.TB, stats, cmd string) float64 {
	b.Helper()
	_, rest, ok := strings.Cut(stats, "cmdstat_"+cmd+":")
	if !ok {
		return 0
	}
	_, rest, _ = strings.Cut(rest, "usec=")
	v, _, _ := strings.Cut(rest, ",")
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		b.Fatalf("commandstats of %s: %v", cmd, err)
	}
	return f
}
