package conformance

import (
	"bytes"
	"context"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The subtests run in parallel, so a goroutine that exists at a
// subtest's end and did not at its start may be another subtest's. The
// leak check therefore looks only at the goroutines a subtest started: a
// subtest labels its own goroutine (runtime/pprof labels), and every
// goroutine started from it, or from one of those, inherits the label.

// leakLabel is the pprof label key that marks a subtest's goroutines.
const leakLabel = "xsync-conformance-subtest"

var subtests atomic.Int64

// trackGoroutines labels the calling goroutine, the subtest's, with a
// value of its own, and returns the value: every goroutine it starts from
// now on carries it.
func trackGoroutines() string {
	id := strconv.FormatInt(subtests.Add(1), 10)
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels(leakLabel, id)))
	return id
}

// leaked returns the stacks of the goroutines labelled id that still run,
// but for the subtest's own (testing.tRunner on its stack) and those with
// one of ignore's functions on their stack. It waits up to wait for them to
// end, as goroutines that were told to stop may take a moment.
func leaked(id string, ignore []string, wait time.Duration) string {
	deadline := time.Now().Add(wait)
	pause := time.Millisecond
	for {
		found := labelled(id, ignore)
		if found == "" || time.Now().After(deadline) {
			return found
		}
		time.Sleep(pause) // a goroutine's end cannot be awaited from outside it
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// labelled returns the stacks of the running goroutines labelled id, as
// the goroutine profile prints them, but for those leaked leaves out (the
// subtest's own, and those with an ignored function).
func labelled(id string, ignore []string) string {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		return "cannot read the goroutine profile: " + err.Error()
	}
	want := `"` + leakLabel + `":"` + id + `"`
	var out []string
	// After a header line, groups of goroutines with the same stack and
	// labels, separated by blank lines: "N @ pcs", "# labels: {...}", then
	// "#\tpc\tfunc+off\tfile:line".
	_, groups, _ := strings.Cut(buf.String(), "\n")
	for _, group := range strings.Split(groups, "\n\n") {
		lines := strings.Split(strings.TrimSpace(group), "\n")
		if len(lines) < 2 || !strings.HasPrefix(lines[1], "# labels: ") || !strings.Contains(lines[1], want) {
			continue
		}
		if onStack(lines[2:], "testing.tRunner") || onStack(lines[2:], ignore...) {
			continue
		}
		out = append(out, group)
	}
	return strings.Join(out, "\n\n")
}

// onStack reports whether one of fns is a function of the frames (lines
// of the goroutine profile).
func onStack(frames []string, fns ...string) bool {
	for _, f := range frames {
		fields := strings.Split(f, "\t")
		if len(fields) < 3 {
			continue
		}
		name := fields[2]
		if i := strings.LastIndex(name, "+0x"); i >= 0 {
			name = name[:i]
		}
		for _, fn := range fns {
			if name == fn {
				return true
			}
		}
	}
	return false
}
