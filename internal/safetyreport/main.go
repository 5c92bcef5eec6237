// Command safetyreport turns the history reports of a soak run (JSON
// lines, as history.Run appends them to $XSYNC_HISTORY_REPORT)
// into docs/safety.md. docs/run-soak.sh runs it:
//
//	go run ./internal/safetyreport -in reports.jsonl -cmd "..." > docs/safety.md
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/xsync-go/xsync/conformance/history"
)

func main() {
	in := flag.String("in", "", "the JSON lines of the soak run")
	cmd := flag.String("cmd", "", "the command that produced them, for the header")
	machine := flag.String("machine", "", "the machine, for the header")
	flag.Parse()
	f, err := os.Open(*in)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	reports, err := read(f)
	if err != nil {
		log.Fatal(err)
	}
	if err := render(os.Stdout, reports, *cmd, *machine, time.Now()); err != nil {
		log.Fatal(err)
	}
}

func read(r io.Reader) ([]history.Report, error) {
	var out []history.Report
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var rep history.Report
		if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
			return nil, fmt.Errorf("line %q: %w", sc.Text(), err)
		}
		out = append(out, rep)
	}
	return out, sc.Err()
}

var backends = []string{"memory", "redis", "redlock", "etcd", "postgres"}

func render(w io.Writer, reports []history.Report, cmd, machine string, now time.Time) error {
	b := &strings.Builder{}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("# Safety under faults: histories checked\n\n")
	p("Written by `docs/run-soak.sh` (do not edit by hand) on %s", now.UTC().Format("2006-01-02"))
	if machine != "" {
		p(", %s", machine)
	}
	p(".\n")
	if cmd != "" {
		p("Command: `%s`.\n", cmd)
	}
	p(`
Each cell is one history: 3 clients (separate connections, as separate
processes would have) × 3 goroutines contend for 2 keys while the fault
is injected on a schedule (calm, fault, heal, again; always healed before
the end). Holders take every kind of lock the backend has, at random:
the mutex (Lock/Unlock, Run, Run with auto-extension), a semaphore of 2
permits, a read or a write lock, two keys at once (the mutexes' own
keys), each as a lease or under Run, and an election's term (Campaign, or
Election.Lead); every holder writes its token to a model resource that
rejects a token smaller than one it accepted, and one hold in 12 (one in 3
in the cells whose weakness must show) stalls past its validity deaf to
its context (a GC pause) and writes after it.
history.Run records every backend call on one monotonic clock
and checks the whole history; see its documentation for the checks, and
the backend packages' documentation for what each fault may break.

Columns:

- **may break**: what the backend's documentation allows under this fault
  (overlap: two holders inside their validity; orphan: a failed
  acquisition leaves the key held until its TTL). The checker fails the
  cell on anything else.
- **acq.**: acquisitions (tokens handed out), and by kind (m: mutex, s:
  semaphore permit, r/w: read/write lock, k: two keys at once, e: an
  election's term); **late
  grants**: answers that
  came after the lock's validity had passed (Run hands the callback an
  already-ended context).
- **overlaps**: pairs of holders inside their validity windows at the same
  time, and the longest; **model**: porcupine's verdict on the history as a
  lock with expiry (Illegal wherever an overlap is found).
- **stale writes**: rejected by fencing / accepted by the resource (a
  holder older than one whose write it had taken). Redlock's tokens do not
  fence: its resource accepts every write, and stale ones show here.
- **lost signals**: callbacks that outlived their lock; how many of their
  contexts ended more than 250ms after the validity deadline (late), and
  the latest one relative to the deadline.
- **orphans**: attempts that found a key held only because an
  acquisition reported as failed had taken it, and the longest such lock
  after that failure; **phantoms**: attempts nothing in the history
  explains (always 0 or the cell fails).
- **errors**: what callers saw, by class.

`)
	byBackend := map[string][]history.Report{}
	for _, r := range reports {
		be, _, _ := strings.Cut(r.Name, "/")
		byBackend[be] = append(byBackend[be], r)
	}
	names := slices.Sorted(maps.Keys(byBackend))
	slices.SortStableFunc(names, func(a, b string) int { return order(a) - order(b) })
	var breaches []string
	for _, be := range names {
		p("## %s\n\n", be)
		p("| fault | may break | TTL | run | faults | acq. (by kind) | late grants | overlaps (worst) | model | token order | stale writes rej. / acc. | lost signals (late, worst) | orphans (worst) | phantoms | errors | verdict |\n")
		p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range byBackend[be] {
			_, fault, _ := strings.Cut(r.Name, "/")
			verdict := "as documented"
			if bs := r.Breaches(); len(bs) > 0 {
				verdict = "**BREACH**"
				for _, x := range bs {
					breaches = append(breaches, r.Name+": "+x)
				}
			}
			order := fmt.Sprint(r.TokenOrder)
			if !r.Fencing {
				order = "n/a"
			}
			p("| %s | %s | %v | %v | %d | %d (%s) | %d | %d (%s) | %s | %s | %d / %d | %d (%d late, %s) | %d (%s) | %d | %s | %s |\n",
				fault, mayBreak(r.Expect), r.TTL, r.Duration.Round(time.Second), r.Faults, r.Acquired, kinds(r.ByKind), r.LateGrant,
				r.Overlaps, dur(r.WorstOverlap), r.Model, order, r.StaleRejected, r.StaleAccepted,
				r.Signals, r.LateSignals, signed(r.WorstLateness), r.Orphans, dur(r.WorstOrphan), r.Phantoms,
				errs(r.Errors), verdict)
		}
		p("\n")
	}
	if len(breaches) > 0 {
		p("## Breaches\n\n")
		for _, x := range breaches {
			p("- %s\n", x)
		}
		p("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func order(backend string) int {
	if i := slices.Index(backends, backend); i >= 0 {
		return i
	}
	return len(backends)
}

func mayBreak(e history.Expect) string {
	var s []string
	switch {
	case e.MustOverlap:
		s = append(s, "overlap (must show)")
	case e.MayOverlap:
		s = append(s, "overlap")
	}
	if e.MayOrphan {
		s = append(s, "orphan")
	}
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}

func dur(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	if d > -time.Millisecond && d < time.Millisecond {
		return d.Round(time.Microsecond).String() // a short breach must not read as none
	}
	return d.Round(time.Millisecond).String()
}

func signed(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	if d > 0 {
		return "+" + dur(d)
	}
	return dur(d)
}

// kinds is a cell's acquisitions by kind, in a fixed order.
func kinds(m map[string]int) string {
	var s []string
	for _, k := range []struct{ kind, short string }{{"mutex", "m"}, {"semaphore", "s"}, {"read", "r"}, {"write", "w"}, {"keys", "k"}, {"election", "e"}} {
		if n := m[k.kind]; n > 0 {
			s = append(s, fmt.Sprintf("%s %d", k.short, n))
		}
	}
	if len(s) == 0 {
		return "–"
	}
	return strings.Join(s, ", ")
}

func errs(m map[string]int) string {
	if len(m) == 0 {
		return "–"
	}
	var s []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		s = append(s, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(s, ", ")
}
