package memory

// Len reports how many locks l keeps now (what the harness's Size counts).
func (l *Locker) Len() int { return l.len() }
