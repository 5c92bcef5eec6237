package memory

import (
	"testing"
	"time"
)

// The expiry heap keeps one entry per Acquire or Refresh until it is due.
// With long TTLs and early releases, stale entries must not pile up.
func TestExpiryHeapStaysBounded(t *testing.T) {
	l := New()
	ctx := t.Context()
	for range 100_000 {
		tok, _ := l.Acquire(ctx, "k", time.Hour)
		l.Release(ctx, "k", tok)
	}
	l.mu.Lock()
	n := len(l.due)
	l.mu.Unlock()
	if n > 64 {
		t.Fatalf("expiry heap holds %d entries after 100k acquire/release cycles; want <= 64", n)
	}
}

func TestExpiryHeapOrder(t *testing.T) {
	var h expiryHeap
	for _, s := range []int{5, 3, 9, 1, 7, 2, 8, 6, 4, 0} {
		h.push(expiry{expires: int64(s), token: int64(s)})
	}
	for want := int64(0); want < 10; want++ {
		if got := h.pop(); got.token != want {
			t.Fatalf("pop = %d; want %d", got.token, want)
		}
	}
}
