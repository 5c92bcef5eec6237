package etcd

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A refusal marks a key as contended for hintLife, until an attempt that
// read first is granted; the marks are swept as more keys are marked, so
// the map follows the keys refused within hintLife and does not keep
// every key ever refused. (The marks' times are aged by hand: no test
// waits hintLife.)
func TestContendedMarks(t *testing.T) {
	l := &Locker{hints: make(map[string]time.Time)}
	age := func(k string) { l.hints[k] = time.Now().Add(-hintLife) }

	require.False(t, l.contended("a"))
	l.markContended("a")
	require.True(t, l.contended("a"), "a refusal marks the key")
	age("a")
	require.False(t, l.contended("a"), "a mark older than hintLife still counts")
	l.markContended("a")
	l.unmarkContended("a")
	require.False(t, l.contended("a"), "a grant after a read leaves the key marked")

	// 1,000 keys refused, then their marks age past hintLife.
	for i := range 1000 {
		l.markContended(fmt.Sprint("old", i))
	}
	for k := range l.hints {
		age(k)
	}
	// As many keys again are refused: the sweeps along the way drop every
	// aged mark, and only the new ones stay.
	for i := range 1100 {
		l.markContended(fmt.Sprint("new", i))
		require.LessOrEqual(t, len(l.hints), 2*max(1000, i+1)+65, "the marks outgrow the keys refused within hintLife")
	}
	for k := range l.hints {
		require.True(t, strings.HasPrefix(k, "new"), "an aged mark was kept: %s", k)
	}
	require.Len(t, l.hints, 1100)
}
