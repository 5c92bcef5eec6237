package postgres

import "context"

// SweepNow runs one sweep of l's sweeper at once, and says how many rows
// it deleted.
func SweepNow(ctx context.Context, l *Locker) (int64, error) { return l.sweepOnce(ctx) }
