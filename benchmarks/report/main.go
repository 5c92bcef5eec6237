// Command report turns the output of the peer benchmarks (run.sh) into
// docs/peers.md and a bar chart (SVG): medians over rounds, with every
// ratio taken within a round.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// result is one benchmark line: its name (without the -N suffix) and its
// metrics by unit.
type result struct {
	name    string
	metrics map[string]float64
}

func parse(path string) ([]result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []result
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := fields[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i]
		}
		r := result{name: strings.TrimPrefix(name, "Benchmark"), metrics: map[string]float64{}}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			r.metrics[fields[i+1]] = v
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// perLibrary turns each result named name, whose metrics are
// <library><suffix> (one round of libraries measured side by side), into
// one result per library, named name/<library>, with the metric named
// suffix without its dash: the shape of results measured one library at
// a time.
func perLibrary(rs []result, name, suffix string) []result {
	var out []result
	for _, r := range rs {
		if r.name != name {
			out = append(out, r)
			continue
		}
		var libs []string
		for m := range r.metrics {
			if strings.HasSuffix(m, suffix) {
				libs = append(libs, strings.TrimSuffix(m, suffix))
			}
		}
		slices.Sort(libs)
		for _, lib := range libs {
			out = append(out, result{name: name + "/" + lib, metrics: map[string]float64{strings.TrimPrefix(suffix, "-"): r.metrics[lib+suffix]}})
		}
	}
	return out
}

// byName collects every round's value of metric for each benchmark name.
func byName(rs []result, metric string) map[string][]float64 {
	out := map[string][]float64{}
	for _, r := range rs {
		if v, ok := r.metrics[metric]; ok {
			out[r.name] = append(out[r.name], v)
		}
	}
	return out
}

type bar struct {
	label string
	value float64
	ours  bool
}

func main() {
	in := flag.String("in", "docs/peers", "folder with the raw benchmark output")
	md := flag.String("md", "docs/peers.md", "markdown to write")
	svg := flag.String("svg", "docs/peers.svg", "chart to write")
	flag.Parse()

	unc, err := parse(filepath.Join(*in, "uncontended.txt"))
	if err != nil {
		log.Fatal(err)
	}
	con, err := parse(filepath.Join(*in, "contended.txt"))
	if err != nil {
		log.Fatal(err)
	}
	paused, _ := parse(filepath.Join(*in, "paused.txt"))
	parallel, _ := parse(filepath.Join(*in, "parallel.txt"))
	parallel = perLibrary(parallel, "ParallelKeys", "-ops/s")
	server, _ := parse(filepath.Join(*in, "servercost.txt"))
	waiters, _ := parse(filepath.Join(*in, "waiters.txt"))
	machine, _ := os.ReadFile(filepath.Join(*in, "machine.txt"))

	var b strings.Builder
	var uncBars, conBars []bar
	fmt.Fprintf(&b, "# xsync beside its peers\n\n")
	fmt.Fprintf(&b, "Written by `benchmarks/run.sh` (raw output and benchstat tables in [peers/](peers/)). %s\n\n", strings.TrimSpace(string(machine)))
	fmt.Fprintf(&b, "Method: every contender runs against the same containers (host network) in the same run. Uncontended costs come from one loop that interleaves all contenders op by op, rotating the order (`benchutil.Interleave`), and are given in round trips of that same loop (Redis PING, etcd Put, PostgreSQL SELECT 1); ratios are taken within each round, then the median over rounds is shown. The 8-client workloads run each library in turn within every round, 8 workers with a client each on one key, all contending throughout (acquisitions warm up until every worker has held the lock once, at least 8 and at most 32 of them, and the next are measured; `benchutil.Contend`), each library waiting the way it does by default (xsync: its FIFO queue on Redis and etcd and its release notification on Redlock, with a retry interval as the bound, 1 s, and 250 ms on Redlock, near redsync's default 50-250 ms; redislock: a 1 ms linear retry; redsync: its default randomised retry; etcd's Mutex: its watch; PostgreSQL: xsync's FIFO queue woken by NOTIFY, against the same two statements sent raw and session advisory locks, pg_try_advisory_lock/pg_advisory_unlock on one connection or pg_advisory_lock per client, which no pool or pooler can use safely; cirello.io/pglock could not be measured: the module proxy here does not serve it).\n\n")
	fmt.Fprintf(&b, "![per-acquisition cost](peers.svg)\n\n")

	groups := []struct{ sub, unit, title string }{
		{"Uncontended/redis", "ping", "One Redis: acquire + release"},
		{"Uncontended/redis5", "ping", "Five Redis nodes: acquire + release"},
		{"Uncontended/etcd", "put", "etcd (one node): acquire + release"},
		{"Uncontended/postgres", "select1", "PostgreSQL: acquire + release"},
	}
	for _, g := range groups {
		var rounds []result
		for _, r := range unc {
			if r.name == g.sub {
				rounds = append(rounds, r)
			}
		}
		if len(rounds) == 0 {
			continue
		}
		// contenders: metrics ending in -<unit>s
		suffix := "-" + g.unit + "s"
		var names []string
		for m := range rounds[0].metrics {
			if strings.HasSuffix(m, suffix) {
				names = append(names, strings.TrimSuffix(m, suffix))
			}
		}
		slices.Sort(names)
		var ours string
		for _, n := range names {
			if strings.HasPrefix(n, "xsync-") {
				ours = n
			}
		}
		fmt.Fprintf(&b, "## %s\n\n%d rounds; the unit is one %s (median %.0f µs).\n\n", g.title, len(rounds), strings.ToUpper(g.unit), median(collect(rounds, g.unit+"-ns"))/1000)
		fmt.Fprintf(&b, "| contender | time | in %ss | xsync ÷ contender |\n| --- | --- | --- | --- |\n", strings.ToUpper(g.unit))
		for _, n := range names {
			rtts := median(collect(rounds, n+suffix))
			var ratios []float64
			for _, r := range rounds {
				ratios = append(ratios, r.metrics[ours+"-ns"]/r.metrics[n+"-ns"])
			}
			fmt.Fprintf(&b, "| %s | %.0f µs | %.2f | %.3f |\n", n, median(collect(rounds, n+"-ns"))/1000, rtts, median(ratios))
			uncBars = append(uncBars, bar{fmt.Sprintf("%s (%s)", n, g.sub[len("Uncontended/"):]), rtts, n == ours})
		}
		fmt.Fprintln(&b)
	}
	if mem := collect(filter(unc, "Uncontended/memory"), "xsync-memory-ns"); len(mem) > 0 {
		fmt.Fprintf(&b, "In-process, xsync's memory backend: %.0f ns per Lock+Unlock (median of %d rounds).\n\n", median(mem), len(mem))
	}

	fmt.Fprintf(&b, "## 8 clients, one key\n\n| library | acquisitions/s | p50 wait | p99 wait | owner changes |\n| --- | --- | --- | --- | --- |\n")
	acq := byName(con, "acq/s")
	var libs []string
	for n := range acq {
		libs = append(libs, n)
	}
	slices.Sort(libs)
	for _, n := range libs {
		a := median(acq[n])
		fmt.Fprintf(&b, "| %s | %.0f | %.2f ms | %.2f ms | %.0f%% |\n", strings.TrimPrefix(n, "Contended8/"), a,
			median(byName(con, "p50-wait-µs")[n])/1000, median(byName(con, "p99-wait-µs")[n])/1000,
			median(byName(con, "%owner-change")[n]))
		conBars = append(conBars, bar{strings.TrimPrefix(n, "Contended8/"), 1000 / a, strings.Contains(n, "xsync")})
	}
	fmt.Fprintf(&b, "\nOwner changes: the share of acquisitions that went to a different worker than the previous one; low values mean the releasing worker barged straight back in while others waited.\n\n")

	if ops := byName(parallel, "ops/s"); len(ops) > 0 {
		fmt.Fprintf(&b, "## Distinct keys, 4 goroutines in parallel\n\nEach goroutine locks and unlocks a key of its own; one client per library. The libraries take turns in slices of 100 ms, the order rotating, so that each round's rates are measured side by side.\n\n| library | ops/s |\n| --- | --- |\n")
		var names []string
		for n := range ops {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			fmt.Fprintf(&b, "| %s | %.0f |\n", strings.TrimPrefix(n, "ParallelKeys/"), median(ops[n]))
		}
		fmt.Fprintln(&b)
	}
	if len(server) > 0 {
		fmt.Fprintf(&b, "## Redis server time per acquire + release\n\nFrom `INFO commandstats` (`BenchmarkServerCost`): microseconds the one Redis spent in each contender's top-level commands (scripts with the commands they call) per pair, on keys locked once before; %d rounds.\n\n| contender | server µs per pair | xsync ÷ contender |\n| --- | --- | --- |\n", len(server))
		for _, n := range []string{"raw", "redislock", "xsync-redis"} {
			fmt.Fprintf(&b, "| %s | %.1f | %.2f |\n", n, median(collect(server, n+"-server-µs")), median(perRound(server, server, "xsync-redis-server-µs", n+"-server-µs")))
		}
		fmt.Fprintln(&b)
	}
	if acq := byName(waiters, "acq/s"); len(acq) > 0 {
		fmt.Fprintf(&b, "## Many waiters, one key\n\n`BenchmarkWaiters`: 10, 50 and 150 workers take one key in turn through xsync (sharing %s Lockers, each waiter with a place or watch of its own), all of them waiting throughout: acquisitions warm up until every worker has held the key once (then every worker has opened its connections and is in line), at least as many as workers and at most 4 × workers (Redlock has no queue and may pass a worker over for long), the next 200 (run.sh's -benchtime) are measured; acquisitions per second, median over rounds, the p99 wait, on Redis and Redlock the servers' CPU time per acquisition (`INFO cpu`, summed over Redlock's nodes), and on etcd the Raft log entries per acquisition (its writes; from the server's raft index). Waiting that costs O(1) per handoff keeps the rate and the servers' work per acquisition level as waiters are added.\n\n", lockerCount(waiters))
		fmt.Fprintf(&b, "| backend | 10 waiters | 50 waiters | 150 waiters | 150 ÷ 10 |\n| --- | --- | --- | --- | --- |\n")
		for _, be := range []string{"xsync-redis", "xsync-redlock", "xsync-etcd", "xsync-postgres"} {
			row := "| " + be + " |"
			for _, n := range []string{"10", "50", "150"} {
				name := "Waiters/" + be + "/waiters=" + n
				cpu := ""
				if vs := byName(waiters, "server-cpu-µs/acq")[name]; len(vs) > 0 {
					cpu = fmt.Sprintf(", server CPU %.2f ms", median(vs)/1000)
				}
				if vs := byName(waiters, "raft-entries/acq")[name]; len(vs) > 0 {
					cpu = fmt.Sprintf(", %.1f Raft writes", median(vs))
				}
				row += fmt.Sprintf(" %.0f/s (p99 %.1f ms%s) |", median(acq[name]), median(byName(waiters, "p99-wait-µs")[name])/1000, cpu)
			}
			row += fmt.Sprintf(" %.2f |", median(ratios(acq["Waiters/"+be+"/waiters=150"], acq["Waiters/"+be+"/waiters=10"])))
			fmt.Fprintln(&b, row)
		}
		fmt.Fprintln(&b)
	}
	targets(&b, unc, con, parallel, server, waiters)
	if len(paused) > 0 {
		m := paused[0].metrics
		fmt.Fprintf(&b, "## Redlock with 2 of 5 nodes frozen\n\n8 s TTL, clients with ContextTimeoutEnabled, %s.\n\n| library | lock | unlock | validity left |\n| --- | --- | --- | --- |\n", "one run")
		fmt.Fprintf(&b, "| xsync redlock (50 ms node timeout) | %.0f ms | %.0f ms | %.1f%% |\n", m["xsync-lock-ms"], m["xsync-unlock-ms"], m["xsync-validity-%"])
		fmt.Fprintf(&b, "| redsync (defaults) | %.0f ms | %.0f ms | %.1f%% |\n\n", m["redsync-lock-ms"], m["redsync-unlock-ms"], m["redsync-validity-%"])
	}
	if err := os.WriteFile(*md, []byte(b.String()), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*svg, []byte(chart(uncBars, conBars)), 0o644); err != nil {
		log.Fatal(err)
	}
}

// ratios divides xs by ys round by round.
func ratios(xs, ys []float64) []float64 {
	var out []float64
	for i := range min(len(xs), len(ys)) {
		out = append(out, xs[i]/ys[i])
	}
	return out
}

// perRound is metric a of as over metric b of bs, round by round.
func perRound(as, bs []result, a, b string) []float64 {
	return ratios(collect(as, a), collect(bs, b))
}

// target is one row of the table: the values per round, the
// median, and whether the median meets the bound.
func target(b *strings.Builder, what string, vals []float64, format string, ok func(float64) bool, bound string) {
	if len(vals) == 0 {
		fmt.Fprintf(b, "| %s | not measured | %s | **missed (not measured)** |\n", what, bound)
		return
	}
	var per []string
	for _, v := range vals {
		per = append(per, fmt.Sprintf(format, v))
	}
	verdict := "**missed**"
	if ok(median(vals)) {
		verdict = "**met**"
	}
	fmt.Fprintf(b, "| %s | %s (median "+format+") | %s | %s |\n", what, strings.Join(per, " / "), median(vals), bound, verdict)
}

// targets writes the hot-path targets (issue #28), each measured in this
// run, per round.
func targets(b *strings.Builder, unc, con, parallel, server, waiters []result) {
	fmt.Fprintf(b, "## Hot-path targets\n\nEach row from this run, per round, against the bound; met or missed is judged on the median.\n\n| target | per round | bound | |\n| --- | --- | --- | --- |\n")
	redis := filter(unc, "Uncontended/redis")
	target(b, "Redis server time per pair, xsync ÷ redislock", perRound(server, server, "xsync-redis-server-µs", "redislock-server-µs"), "%.2f", func(v float64) bool { return v <= 1.5 }, "≤ 1.5")
	target(b, "Redis parallel distinct keys, xsync ÷ redislock (ops/s)", ratios(collect(filter(parallel, "ParallelKeys/xsync-redis"), "ops/s"), collect(filter(parallel, "ParallelKeys/redislock"), "ops/s")), "%.3f", func(v float64) bool { return v >= 1 }, "≥ 1.0")
	target(b, "Redis paired acquire+release, xsync ÷ raw pair", perRound(redis, redis, "xsync-redis-ns", "raw-ns"), "%.3f", func(v float64) bool { return v <= 1.10 }, "≤ 1.10")
	target(b, "etcd Puts per acquire+release", collect(filter(unc, "Uncontended/etcd"), "xsync-etcd-puts"), "%.2f", func(v float64) bool { return v <= 2.0 }, "≤ 2.0")
	acq := func(n string) []float64 { return collect(filter(con, "Contended8/"+n), "acq/s") }
	p99 := func(n string) []float64 { return collect(filter(con, "Contended8/"+n), "p99-wait-µs") }
	target(b, "Redis handoffs/s, 8 clients (2× the issue's 1.9k/s)", acq("xsync-redis"), "%.0f", func(v float64) bool { return v >= 3800 }, "≥ 3800")
	target(b, "Redis owner changes, 8 clients (%; strict turns, the queue's order)", collect(filter(con, "Contended8/xsync-redis"), "%owner-change"), "%.0f", func(v float64) bool { return v >= 95 }, "≥ 95")
	target(b, "Redis p99 wait ÷ redislock-1ms p99", ratios(p99("xsync-redis"), p99("redislock-1ms")), "%.2f", func(v float64) bool { return v <= 1 }, "≤ 1.0")
	target(b, "etcd handoffs/s, 8 clients", acq("xsync-etcd"), "%.0f", func(v float64) bool { return v >= 400 }, "≥ 400")
	target(b, "Redlock handoffs/s ÷ redsync-5 defaults", ratios(acq("xsync-redlock"), acq("redsync-5")), "%.2f", func(v float64) bool { return v >= 1 }, "≥ 1.0")
	for _, be := range []string{"xsync-redis", "xsync-redlock", "xsync-etcd", "xsync-postgres"} {
		w := func(n string) []float64 { return collect(filter(waiters, "Waiters/"+be+"/waiters="+n), "acq/s") }
		target(b, be+": handoffs/s at 150 waiters ÷ at 10 (O(1) waiting)", ratios(w("150"), w("10")), "%.2f", func(v float64) bool { return v >= 0.8 }, "≥ 0.8")
	}
	fmt.Fprintln(b)
}

func filter(rs []result, name string) []result {
	var out []result
	for _, r := range rs {
		if r.name == name {
			out = append(out, r)
		}
	}
	return out
}

func collect(rs []result, metric string) []float64 {
	var out []float64
	for _, r := range rs {
		if v, ok := r.metrics[metric]; ok {
			out = append(out, v)
		}
	}
	return out
}

// chart draws two panels of horizontal bars: uncontended cost in round
// trips, and milliseconds per acquisition with 8 clients on one key.
func chart(unc, con []bar) string {
	const w, rowH, labelW, barW = 760, 22, 250, 440
	var s strings.Builder
	h := 90 + rowH*(len(unc)+len(con)) + 40
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&s, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	y := 20
	panel := func(title, unit string, bars []bar) {
		fmt.Fprintf(&s, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y, title)
		y += 12
		maxV := 0.0
		for _, b := range bars {
			maxV = math.Max(maxV, b.value)
		}
		for _, b := range bars {
			fill := "#9aa5b1"
			if b.ours {
				fill = "#2f6fde"
			}
			bw := int(float64(barW) * b.value / maxV)
			fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="end">%s</text>`, labelW-6, y+15, b.label)
			fmt.Fprintf(&s, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`, labelW, y+3, bw, rowH-6, fill)
			fmt.Fprintf(&s, `<text x="%d" y="%d">%.2f %s</text>`+"\n", labelW+bw+4, y+15, b.value, unit)
			y += rowH
		}
		y += 24
	}
	panel("Uncontended acquire+release, in round trips (PING or Put; lower is better)", "RTT", unc)
	panel("8 clients on one key: milliseconds per acquisition (lower is better)", "ms", con)
	s.WriteString("</svg>\n")
	return s.String()
}

// lockerCount is how many Lockers the waiters of BenchmarkWaiters shared,
// as the benchmark reported it ("?" if it did not).
func lockerCount(waiters []result) string {
	for _, vs := range byName(waiters, "lockers") {
		if len(vs) > 0 {
			return fmt.Sprint(vs[0])
		}
	}
	return "?"
}
