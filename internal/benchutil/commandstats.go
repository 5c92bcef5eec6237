package benchutil

import (
	"context"
	"strconv"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"
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

// ServerCPU is a [Meter] of the CPU time (user and system, from INFO
// cpu) that Redis servers spend over the measured acquisitions, reported
// in microseconds per acquisition, summed over the servers.
type ServerCPU struct {
	B       *testing.B
	Clients []goredis.UniversalClient
	before  float64
}

// Start implements [Meter].
func (m *ServerCPU) Start() { m.before = m.cpu() }

// Stop implements [Meter].
func (m *ServerCPU) Stop(n int) {
	m.B.ReportMetric((m.cpu()-m.before)*1e6/float64(max(n, 1)), "server-cpu-µs/acq")
}

// cpu is the servers' CPU seconds so far.
func (m *ServerCPU) cpu() float64 {
	var sum float64
	for _, c := range m.Clients {
		info, err := c.Info(context.Background(), "cpu").Result()
		if err != nil {
			m.B.Fatalf("INFO cpu: %v", err)
		}
		for _, field := range []string{"used_cpu_user:", "used_cpu_sys:"} {
			_, rest, ok := strings.Cut(info, field)
			if !ok {
				m.B.Fatalf("INFO cpu has no %s", field)
			}
			v, _, _ := strings.Cut(rest, "\r\n")
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				m.B.Fatalf("INFO cpu %s: %v", field, err)
			}
			sum += f
		}
	}
	return sum
}
