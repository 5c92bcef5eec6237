package benchutil

import (
	"context"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// RaftEntries is a [Meter] of the Raft log entries an etcd server appended
// over the measured acquisitions (its raft index, from Status), reported
// per acquisition: the writes, each a proposal and a disk sync, which a
// read is not.
type RaftEntries struct {
	B      *testing.B
	Client *clientv3.Client
	before uint64
}

// Start implements [Meter].
func (m *RaftEntries) Start() { m.before = m.index() }

// Stop implements [Meter].
func (m *RaftEntries) Stop(n int) {
	m.B.ReportMetric(float64(m.index()-m.before)/float64(max(n, 1)), "raft-entries/acq")
}

// index is the server's raft index now.
func (m *RaftEntries) index() uint64 {
	st, err := m.Client.Status(context.Background(), m.Client.Endpoints()[0])
	if err != nil {
		m.B.Fatalf("etcd status: %v", err)
	}
	return st.RaftIndex
}
