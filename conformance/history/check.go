package history

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// This file is the history checker: it takes a recorded history (what each
// client asked the backend and was told, on one monotonic clock) and checks
// the claims xsync makes, conservatively: every bound it uses is one the
// backend's documentation guarantees, so a correct backend never trips it
// by measurement alone.
//
// Times are nanoseconds since the history began.

// hold is one successful acquisition, as the backend reported it, and what
// followed: renewals, release, and (under Run) the callback.
//
// A hold belongs to a group per key it holds: the mutexes and multi-key
// locks share the groups of their keys ("m/key"), semaphores ("s/key")
// and read-write locks ("rw/key") have their own. Each group is checked
// by the rule of its kind: a mutex's key has one holder at a time; a
// semaphore at most its limit; a read-write lock a writer alone or any
// readers.
type hold struct {
	id       int
	client   int
	key      string   // its (first) group
	also     []string // a multi-key lock's other groups
	kind     string   // "mutex" (or ""), "semaphore", "read", "write", "keys"
	limit    int      // a semaphore's
	token    int64
	call     int64 // Acquire invoked
	ret      int64 // Acquire returned the token
	ttl      int64
	validity int64 // backend.Validity(ttl): how long the holder may trust it
	// until is, for a lock a backend granted to a waiter (backend.Granter),
	// the end of the validity the grant came with; 0: call + validity.
	// call is then when the waiter sent the request the grant follows.
	until    int64
	renewals []outcome
	release  *outcome // nil if never released
	run      *runInfo // nil unless the hold was taken by Run
	stall    bool     // the holder stalled past its validity, deaf to its context
}

// outcome is one call on a held lock: a refresh or a release.
type outcome struct {
	call, ret int64
	ok        bool // the backend said yes
	failed    bool // the call failed: its outcome is unknown
}

// runInfo is what the callback of a Run saw.
type runInfo struct {
	start, end int64 // callback start and return
	signal     int64 // the callback's context ended (0: not before the callback returned)
	lostCause  bool  // context.Cause matched ErrLockLost, or the caller's own context had ended
	reported   bool  // Run's error matched ErrLockLost, or the caller's own context had ended
}

// attempt is an Acquire that did not hand out a token.
type attempt struct {
	client    int
	key       string   // its (first) group
	also      []string // a multi-key lock's other groups
	kind      string
	call, ret int64
	failed    bool   // an error (outcome unknown); otherwise the key was held
	err       string // the error, for messages
	waiter    string // the waiter that made it, once it watched; "" if none
}

// queued is a waiter's time in its place (a queued mutex waiter, a
// waiting writer): from its Watch call until its stop (or the Watch's
// failure), or one refused attempt of the waiter (which may put or renew
// the place), and how long the place may stay alive after that if its
// removal failed.
type queued struct {
	waiter     string
	key        string
	from, stop int64
	keep       int64
}

// end is the latest moment the store may still keep q's place: its keep
// time after the stop, which faults stretch (see outlive), with the
// store's rounding (whole seconds, at least minTTL) and tolerance.
func (q queued) end(faults []fault, lim checkLimits) int64 {
	keep := max(q.keep, lim.minTTL)
	keep = (keep + int64(time.Second) - 1) / int64(time.Second) * int64(time.Second)
	return outlive(q.from, q.stop, keep+lim.tolerance, faults)
}

// write is one fenced write on the model resource.
type write struct {
	key      string
	hold     int // hold id
	token    int64
	at       int64
	accepted bool
}

// stray is a release or refresh of a token the history never saw granted.
type stray struct {
	key       string
	token     int64
	call, ret int64
	ok        bool
}

// fault is one injection of the nemesis: from the start of Inject to the
// end of Heal.
type fault struct {
	start, heal int64
	renew       int64 // how much longer than a whole life after the heal it may renew what lived through it
}

// history is everything one run recorded.
type history struct {
	holds    []*hold
	attempts []attempt
	writes   []write // in the order the resource saw them
	strays   []stray
	queued   []queued
	faults   []fault
	errors   map[string]int // errors callers saw, by class
	end      int64
}

// checkLimits are the bounds the checker may rely on.
type checkLimits struct {
	fencing   bool  // tokens are fencing tokens (not Limits.NotFencing)
	tolerance int64 // how long after its TTL a lock may still be held on the server
	minTTL    int64 // the shortest TTL the store grants (Limits.MinTTL)
	late      int64 // how late after the validity deadline a lost signal may come
	orphans   bool  // orphans are allowed (and not listed as violations)
}

// Report is what a checked history showed. Every count is of
// events in the history; durations are worst cases.
type Report struct {
	Name     string        // the cell: backend and fault
	Expect   Expect        // what the cell's fault was allowed to break
	TTL      time.Duration // the locks' TTL
	Fencing  bool          // the backend's tokens fence (not Limits.NotFencing)
	Nemesis  bool          // a fault schedule ran
	Duration time.Duration // how long the history ran
	Faults   int           // injections of the fault

	Acquired  int            // acquisitions (tokens handed out)
	ByKind    map[string]int // acquisitions by kind of lock: mutex, semaphore, read, write, keys
	Contended int            // attempts that found the key held
	Failed    int            // attempts that failed (outcome unknown)
	Runs      int            // acquisitions made by Run, with a callback
	LateGrant int            // acquisitions whose answer came after their validity had passed (lost on arrival)
	Stalled   int            // holds that stalled past their validity, ignoring their context

	Writes        int // fenced writes on the model resource
	StaleRejected int // writes the resource rejected: an older token after a newer one
	StaleAccepted int // writes the resource accepted from a holder older than one it had already seen

	Overlaps     int           // pairs of holders inside their validity windows at the same time
	WorstOverlap time.Duration // the longest such overlap
	TokenOrder   int           // pairs granted one after the other whose tokens did not grow
	Model        string        // the porcupine linearizability verdict: Ok, Illegal or Unknown

	Signals        int           // lost-lock signals to callbacks that ran past their validity
	LateSignals    int           // signals later than the validity deadline (plus scheduling tolerance), or missing
	WorstLateness  time.Duration // latest signal after the validity deadline (negative: all early)
	LostUnreported int           // callbacks that ran past validity whose context cause or Run error did not say the lock was lost

	ForeignReleases int           // releases or renewals that succeeded on a lock their token no longer held
	Orphans         int           // contended attempts explained only by a failed acquisition's lingering lock
	WorstOrphan     time.Duration // longest such lock after its acquisition had failed
	Phantoms        int           // contended attempts no holder, attempt or TTL explains

	Errors map[string]int // errors callers saw, by class

	Violations []string `json:",omitempty"` // the first few violations, for the log
}

const maxViolations = 12

func (r *Report) violate(format string, args ...any) {
	if len(r.Violations) < maxViolations {
		r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
	}
}

// groups are the groups h belongs to.
func (h *hold) groups() []string { return append([]string{h.key}, h.also...) }

// fences reports whether h's token is a fencing token on a fencing
// backend: a mutex's, a writer's, a multi-key lock's.
func (h *hold) fences() bool { return h.kind != "semaphore" && h.kind != "read" }

// shared reports whether h may hold beside other holders of its group:
// a permit, a reader.
func (h *hold) shared() bool { return h.kind == "semaphore" || h.kind == "read" }

// conflict reports whether a and b may not hold at once: either is
// exclusive (a mutex, a writer, a multi-key lock). Permits are counted
// against their limit instead.
func conflict(a, b *hold) bool { return !a.shared() || !b.shared() }

// deadline is the end of h's validity: its last confirmed grant or renewal
// (timed from the request, as the core times it) plus the validity.
func (h *hold) deadline() int64 {
	d := h.first()
	for _, r := range h.renewals {
		if r.ok && !r.failed {
			d = max(d, r.call+h.validity)
		}
	}
	return d
}

// first is the end of the validity h came with.
func (h *hold) first() int64 {
	if h.until != 0 {
		return h.until
	}
	return h.call + h.validity
}

// window is the time h's holder may act as the owner: from the moment it
// learned it holds the lock until its validity deadline, or until it began
// to release, whichever is first.
func (h *hold) window() (start, end int64) {
	end = h.deadline()
	if h.release != nil {
		end = min(end, h.release.call)
	}
	return h.ret, end
}

// serverEnd is the latest moment the store may still keep h: a confirmed
// release ends it; otherwise its last possible grant or renewal plus the
// TTL and tolerance, which faults stretch (see outlive).
func (h *hold) serverEnd(faults []fault, tol int64) int64 {
	if h.release != nil && h.release.ok && !h.release.failed {
		return h.release.ret
	}
	last := h.ret
	for _, r := range h.renewals {
		if r.ok || r.failed {
			last = max(last, r.ret)
		}
	}
	return outlive(h.call, last, h.ttl+tol, faults)
}

// outlive is the latest moment something the store keeps for life after
// [call, ret] may still be there: a fault that overlaps the call may serve
// it at the heal, and a fault that begins while it lives may renew it for
// a whole life at the heal, and by the fault's renew on top (etcd renews
// every lease when a leader takes over, for its TTL and an election
// timeout).
func outlive(call, ret, life int64, faults []fault) int64 {
	end := stretch(call, ret, faults) + life
	for _, f := range faults { // in the order they came
		if f.start <= end && f.heal >= call {
			end = max(end, f.heal+f.renew+life)
		}
	}
	return end
}

// stretch returns ret, or the heal of the last fault that overlaps
// [call, ret] if later: a request sent into a fault (a paused server, a cut
// link) may be served when it heals.
func stretch(call, ret int64, faults []fault) int64 {
	for _, f := range faults {
		if f.start <= ret && f.heal >= call {
			ret = max(ret, f.heal)
		}
	}
	return ret
}

// check runs every check on h and returns the report.
func check(h *history, lim checkLimits) Report {
	r := Report{Duration: time.Duration(h.end), Faults: len(h.faults), Errors: h.errors, Writes: len(h.writes), ByKind: map[string]int{}}
	byKey := map[string][]*hold{}
	for _, x := range h.holds {
		for _, g := range x.groups() {
			byKey[g] = append(byKey[g], x)
		}
		r.Acquired++
		r.ByKind[cmp.Or(x.kind, "mutex")]++
		if x.run != nil {
			r.Runs++
		}
		if x.ret >= x.first() {
			r.LateGrant++
		}
		if x.stall {
			r.Stalled++
		}
	}
	for _, a := range h.attempts {
		if a.failed {
			r.Failed++
		} else {
			r.Contended++
		}
	}
	for key, hs := range byKey {
		checkOverlaps(&r, key, hs)
		checkPermits(&r, key, hs)
		if lim.fencing {
			checkTokenOrder(&r, key, hs)
		}
		checkReleases(&r, key, hs)
	}
	for _, s := range h.strays {
		if s.ok {
			r.ForeignReleases++
			r.violate("key %q: a call with token %d, which the history never saw granted, succeeded at %v", s.key, s.token, ms(s.call))
		}
	}
	checkSignals(&r, h.holds, lim)
	checkWrites(&r, h, lim.fencing)
	checkContention(&r, h, byKey, lim)
	var why string
	r.Model, why = modelCheck(h, lim)
	if why != "" {
		r.violate("%s", why)
	}
	return r
}

// checkOverlaps counts pairs of holds of one group whose windows
// intersect and which may not hold at once: both holders could act as the
// owner at the same time.
func checkOverlaps(r *Report, key string, hs []*hold) {
	sorted := slices.Clone(hs)
	slices.SortFunc(sorted, func(a, b *hold) int { return cmp.Compare(a.ret, b.ret) })
	for i, a := range sorted {
		as, ae := a.window()
		for _, b := range sorted[i+1:] {
			bs, be := b.window()
			if bs >= ae {
				// Later holds start later still, but a long window of a
				// may reach them: keep scanning only while bs < ae.
				break
			}
			if d := min(ae, be) - max(as, bs); d > 0 && conflict(a, b) {
				r.Overlaps++
				r.WorstOverlap = max(r.WorstOverlap, time.Duration(d))
				r.violate("%s: holders of tokens %d (%s) and %d (%s) both inside their validity for %v (from %v)", key, a.token, a.kindName(), b.token, b.kindName(), time.Duration(d), ms(max(as, bs)))
			}
		}
	}
}

// checkPermits counts the moments a semaphore's holders inside their
// validity outnumbered its limit.
func checkPermits(r *Report, key string, hs []*hold) {
	type edge struct {
		at    int64
		delta int
		h     *hold
	}
	var edges []edge
	for _, x := range hs {
		if x.kind != "semaphore" {
			continue
		}
		s, e := x.window()
		if e > s {
			edges = append(edges, edge{s, 1, x}, edge{e, -1, x})
		}
	}
	// Ends before starts at the same moment: a handoff is no overlap.
	slices.SortFunc(edges, func(a, b edge) int { return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.delta, b.delta)) })
	n := 0
	for _, e := range edges {
		n += e.delta
		if e.delta > 0 && n > e.h.limit {
			r.Overlaps++
			r.violate("%s: %d permits held inside their validity at %v, over the limit of %d (the last: token %d)", key, n, ms(e.at), e.h.limit, e.h.token)
		}
	}
}

// kindName is h's kind for messages.
func (h *hold) kindName() string {
	if h.kind == "" {
		return "mutex"
	}
	return h.kind
}

// checkTokenOrder checks that a fencing hold (a mutex's, a writer's, a
// multi-key lock's) granted after another hold of its group returned (its
// request came later) has a larger token.
func checkTokenOrder(r *Report, key string, hs []*hold) {
	byRet := slices.Clone(hs)
	slices.SortFunc(byRet, func(a, b *hold) int { return cmp.Compare(a.ret, b.ret) })
	byCall := slices.Clone(hs)
	slices.SortFunc(byCall, func(a, b *hold) int { return cmp.Compare(a.call, b.call) })
	// For each hold b (by request time), the largest token among holds that
	// had returned before b was requested.
	i := 0
	var top *hold
	for _, b := range byCall {
		for i < len(byRet) && byRet[i].ret < b.call {
			if top == nil || byRet[i].token > top.token {
				top = byRet[i]
			}
			i++
		}
		if b.fences() && top != nil && b.token <= top.token {
			r.TokenOrder++
			r.violate("%s: token %d (requested at %v) after token %d (granted at %v): fencing tokens must grow", key, b.token, ms(b.call), top.token, ms(top.ret))
		}
	}
}

// checkReleases finds releases and renewals that succeeded while another
// holder that excludes this one, granted after it, was inside its
// validity: the store released or extended a lock the token no longer
// held. (Holders side by side, permits and readers, cannot be told from
// each other this way.)
func checkReleases(r *Report, key string, hs []*hold) {
	for _, a := range hs {
		calls := slices.Clone(a.renewals)
		if a.release != nil {
			calls = append(calls, *a.release)
		}
		for _, c := range calls {
			if !c.ok || c.failed {
				continue
			}
			for _, b := range hs {
				if b == a || b.call <= a.ret || !conflict(a, b) {
					continue // not granted after a, or beside it
				}
				bs, be := b.window()
				if bs <= c.call && c.ret <= be {
					r.ForeignReleases++
					r.violate("%s: token %d's call at %v succeeded while token %d held the lock", key, a.token, ms(c.call), b.token)
				}
			}
		}
	}
}

// checkSignals checks the callback's context of every Run whose callback
// outlived the lock's validity: it must have ended by the deadline (plus
// scheduling tolerance), with a cause saying the lock was lost, and Run's
// error must say so too.
func checkSignals(r *Report, holds []*hold, lim checkLimits) {
	r.WorstLateness = time.Duration(math.MinInt64)
	for _, h := range holds {
		if h.run == nil {
			continue
		}
		dl := h.deadline()
		if h.run.end <= dl {
			continue // returned in time: no signal owed
		}
		r.Signals++
		at := h.run.end // never signalled while it ran: at least this late
		if h.run.signal != 0 && h.run.signal < at {
			at = h.run.signal
		}
		// A lock granted after its validity had passed (the answer came
		// late) is owed its signal when the callback starts.
		late := at - max(dl, h.run.start)
		r.WorstLateness = max(r.WorstLateness, time.Duration(late))
		if late > lim.late {
			r.LateSignals++
			r.violate("key %q: token %d's callback ran until %v, %v past its validity deadline %v; its context ended %v after the deadline (%s)", h.key, h.token, ms(h.run.end), time.Duration(h.run.end-dl), ms(dl), time.Duration(late), h)
		}
		// A callback that returned before its context's signal came (within
		// the tolerance above) could not learn of the loss from it; Run's
		// error must still say so.
		if h.run.signal != 0 && !h.run.lostCause || !h.run.reported {
			r.LostUnreported++
			r.violate("key %q: token %d's callback outlived its lock, but the context's cause (lost: %v) or Run's error (lost: %v) did not say so", h.key, h.token, h.run.lostCause, h.run.reported)
		}
	}
	if r.Signals == 0 {
		r.WorstLateness = 0
	}
}

// checkWrites counts the resource's verdicts: a write accepted from a
// holder granted before some holder whose write the resource had already
// accepted is stale. Without fencing tokens the resource accepts every
// write, and stale ones are counted but are no violation.
func checkWrites(r *Report, h *history, fencing bool) {
	grant := map[int]*hold{}
	for _, x := range h.holds {
		grant[x.id] = x
	}
	newest := map[string]int64{} // per key: latest request time of a holder whose write was accepted
	for _, w := range h.writes {
		x := grant[w.hold]
		if !w.accepted {
			r.StaleRejected++
			continue
		}
		if n, ok := newest[w.key]; ok && n > x.ret {
			r.StaleAccepted++
			if fencing { // without fencing tokens, expected
				r.violate("key %q: the resource accepted token %d's write at %v after a write by a holder granted later", w.key, w.token, ms(w.at))
			}
		}
		newest[w.key] = max(newest[w.key], x.call)
	}
}

// span is a time a key may be held on the store, and by what.
type span struct {
	from, to int64
	failed   bool   // a failed acquisition's possible lock, past its return
	ret      int64  // for failed: when the acquisition returned
	self     int    // the attempt it stands for (-1: a hold or a queued waiter)
	waiter   string // for a queued waiter: its identity
}

// groups are the groups a's lock belongs to.
func (a attempt) groups() []string { return append([]string{a.key}, a.also...) }

// checkContention explains every attempt that found the lock held: any
// hold or waiter of the lock's groups does (for a semaphore or a
// read-write lock a weaker check than a mutex's, which is refused by
// exclusive holders only): by a
// hold (from its request until the store may have dropped it), by another
// attempt in flight (Redlock's partial votes), or by a failed acquisition
// that may have taken the lock and left it until its TTL (an orphan). An
// attempt none of these explains is a phantom: the store reported a lock
// nobody in the history could hold.
func checkContention(r *Report, h *history, byKey map[string][]*hold, lim checkLimits) {
	spans := map[string][]span{}
	for key, hs := range byKey {
		for _, x := range hs {
			spans[key] = append(spans[key], span{from: x.call, to: x.serverEnd(h.faults, lim.tolerance), self: -1})
		}
	}
	var ttl int64
	for _, x := range h.holds {
		ttl = max(ttl, x.ttl)
	}
	for _, q := range h.queued {
		spans[q.key] = append(spans[q.key], span{from: q.from, to: q.end(h.faults, lim), self: -1, waiter: q.waiter})
	}
	for i, a := range h.attempts {
		for _, g := range a.groups() {
			spans[g] = append(spans[g], span{from: a.call, to: a.ret, self: i})
			if end := stretch(a.call, a.ret, h.faults); a.failed || end > a.ret {
				spans[g] = append(spans[g], span{from: a.call, to: outlive(a.call, a.ret, ttl+lim.tolerance, h.faults), failed: true, ret: a.ret, self: i})
			}
		}
	}
	type index struct {
		sure, orphan []span // sorted by from
	}
	idx := map[string]*index{}
	for key, ss := range spans {
		x := &index{}
		for _, s := range ss {
			if s.failed {
				x.orphan = append(x.orphan, s)
			} else {
				x.sure = append(x.sure, s)
			}
		}
		for _, l := range [][]span{x.sure, x.orphan} {
			slices.SortFunc(l, func(a, b span) int { return cmp.Compare(a.from, b.from) })
		}
		idx[key] = x
	}
	covered := func(l []span, call, ret int64, self int, waiter string) (span, bool) {
		// Any span other than the attempt's own (or its waiter's time
		// in the queue) that starts by ret and ends at or after call.
		for _, s := range l {
			if s.from > ret {
				break
			}
			if s.to >= call && s.self != self && (s.waiter == "" || s.waiter != waiter) {
				return s, true
			}
		}
		return span{}, false
	}
	explain := func(a attempt, i int, orphan bool) (span, bool) {
		for _, g := range a.groups() {
			l := idx[g].sure
			if orphan {
				l = idx[g].orphan
			}
			if s, ok := covered(l, a.call, a.ret, i, a.waiter); ok {
				return s, true
			}
		}
		return span{}, false
	}
	for i, a := range h.attempts {
		if a.failed {
			continue
		}
		if _, ok := explain(a, i, false); ok {
			continue
		}
		if s, ok := explain(a, i, true); ok {
			r.Orphans++
			r.WorstOrphan = max(r.WorstOrphan, time.Duration(a.ret-s.ret))
			if !lim.orphans {
				o := h.attempts[s.self]
				r.violate("key %q: an attempt at %v found the key held, %v after client %d's acquisition (%v–%v) failed (%s): an orphaned lock", a.key, ms(a.call), time.Duration(a.ret-s.ret), o.client, ms(o.call), ms(o.ret), o.err)
			}
			continue
		}
		r.Phantoms++
		r.violate("key %q: an attempt at %v found the key held, and no holder, attempt or TTL in the history explains it (%s)", a.key, ms(a.call), lastBefore(a, h.faults, idx[a.key].sure, idx[a.key].orphan))
	}
}

// lastBefore describes, for a phantom's message, the attempt a and the
// span that ended last before it on its key.
func lastBefore(a attempt, faults []fault, lists ...[]span) string {
	desc := fmt.Sprintf("a %s attempt by client %d", cmp.Or(a.kind, "mutex"), a.client)
	var lastFault *fault
	for i, f := range faults {
		if f.start <= a.call {
			lastFault = &faults[i]
		}
	}
	if lastFault != nil {
		desc = fmt.Sprintf("%s (the last fault %v–%v)", desc, ms(lastFault.start), ms(lastFault.heal))
	}
	if a.waiter != "" {
		desc += " waiting as " + a.waiter
	}
	var last *span
	for _, l := range lists {
		for i, s := range l {
			if s.from <= a.ret && s.to < a.call && (last == nil || s.to > last.to) {
				last = &l[i]
			}
		}
	}
	if last == nil {
		return desc + "; nothing held the key before"
	}
	what := "a hold"
	switch {
	case last.failed:
		what = "a failed attempt's possible lock"
	case last.waiter != "":
		what = "the place of waiter " + last.waiter
	case last.self >= 0:
		what = "an attempt"
	}
	return fmt.Sprintf("%s; the last explanation, %s, ended %v before", desc, what, time.Duration(a.call-last.to))
}

// The porcupine model: one lock per key. A state is the holder the
// history last saw granted, the earliest moment its lock may have ended,
// and the largest token granted so far.
type lockState struct {
	holder int64
	until  int64
	top    int64
}

type lockOp struct {
	part   int    // the key's partition
	kind   byte   // 'a'cquire, 'r'enew, 'u'nlock
	lock   string // the hold's kind of lock, for messages
	token  int64
	until  int64 // for 'a' and 'r': the call time plus validity
	call   int64
	ret    int64
	ok     bool
	failed bool
}

// checkModel checks the history's exclusive holds (mutexes, writers,
// multi-key locks: each of its keys) for linearizability against a lock
// with expiry, with porcupine: acquisitions succeed only when the lock is free
// or the holder's validity has passed (and, with fencing, with a larger
// token), renewals and releases succeed only for the holder, and a holder
// is told "not held" only once its validity has passed. Failed calls
// (unknown outcome) are modelled as "may have happened": a failed release
// frees the lock from its call on; failed acquisitions and renewals only
// ever add exclusion, so they are left out, as are attempts that found the
// key held (checkContention explains those).
func checkModel(h *history, lim checkLimits) string {
	v, _ := modelCheck(h, lim)
	return v
}

// modelCheck is checkModel with, for an Illegal verdict, which operation
// the history could not take (see explainIllegal).
func modelCheck(h *history, lim checkLimits) (verdict, why string) {
	var ops []porcupine.Operation
	keys := map[string]int{}
	add := func(key string, client int, op lockOp) {
		if _, ok := keys[key]; !ok {
			keys[key] = len(keys)
		}
		op.part = keys[key]
		ops = append(ops, porcupine.Operation{ClientId: client, Input: op, Call: op.call, Return: op.ret})
	}
	for _, x := range h.holds {
		if x.shared() {
			continue // the model is a mutex's
		}
		kind := x.kindName()
		for _, g := range x.groups() {
			add(g, x.client, lockOp{kind: 'a', lock: kind, token: x.token, until: x.first(), call: x.call, ret: x.ret, ok: true})
			for _, c := range x.renewals {
				if !c.failed {
					add(g, x.client, lockOp{kind: 'r', lock: kind, token: x.token, until: c.call + x.validity, call: c.call, ret: c.ret, ok: c.ok})
				}
			}
			if c := x.release; c != nil {
				add(g, x.client, lockOp{kind: 'u', lock: kind, token: x.token, call: c.call, ret: c.ret, ok: c.ok, failed: c.failed})
			}
		}
	}
	model := porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			parts := make([][]porcupine.Operation, len(keys))
			for _, op := range history {
				k := op.Input.(lockOp).part
				parts[k] = append(parts[k], op)
			}
			return parts
		},
		Init: func() any { return lockState{} },
		Step: func(state, input, _ any) (bool, any) {
			s, op := state.(lockState), input.(lockOp)
			mine := s.holder == op.token
			mayBeGone := !mine || op.ret >= s.until
			switch op.kind {
			case 'a':
				if (s.holder != 0 && op.ret < s.until) || (lim.fencing && op.token <= s.top) {
					return false, s
				}
				return true, lockState{holder: op.token, until: op.until, top: max(s.top, op.token)}
			case 'r':
				if op.ok {
					if !mine {
						return false, s
					}
					s.until = max(s.until, op.until)
					return true, s
				}
			case 'u':
				if op.failed {
					if mine {
						s.until = min(s.until, op.call) // may be free from now on
					}
					return true, s
				}
				if op.ok {
					if !mine {
						return false, s
					}
					s.holder = 0
					return true, s
				}
			}
			// Told "not held": only if it may be gone.
			if !mayBeGone {
				return false, s
			}
			if mine {
				s.holder = 0
			}
			return true, s
		},
	}
	verdict = string(porcupine.CheckOperationsTimeout(model, ops, time.Minute))
	if verdict == string(porcupine.Illegal) {
		why = explainIllegal(model, ops, keys) + faultTimes(h.faults)
	}
	return verdict, why
}

// explainIllegal says where an illegal history stops being a lock's: for
// the first key whose operations alone are illegal, the shortest prefix
// of them (in call order) that no linearization explains, by bisection,
// and that prefix's last operations. The operation that made the prefix
// illegal is the one to read first; the others are its context.
func explainIllegal(model porcupine.Model, ops []porcupine.Operation, keys map[string]int) string {
	names := make([]string, len(keys))
	for k, i := range keys {
		names[i] = k
	}
	byKey := make([][]porcupine.Operation, len(keys))
	for _, op := range ops {
		k := op.Input.(lockOp).part
		byKey[k] = append(byKey[k], op)
	}
	illegal := func(ops []porcupine.Operation) bool {
		return porcupine.CheckOperationsTimeout(model, ops, 10*time.Second) == porcupine.Illegal
	}
	for k, kops := range byKey {
		slices.SortFunc(kops, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
		if !illegal(kops) {
			continue
		}
		lo, hi := 0, len(kops) // kops[:lo] is legal, kops[:hi] illegal
		for hi-lo > 1 {
			mid := (lo + hi) / 2
			if illegal(kops[:mid]) {
				hi = mid
			} else {
				lo = mid
			}
		}
		s := fmt.Sprintf("model: key %q: no linearization once operation %d of %d is added: %s; before it:",
			names[k], hi, len(kops), describeOp(kops[hi-1]))
		for _, op := range kops[max(0, hi-9) : hi-1] {
			s += " [" + describeOp(op) + "]"
		}
		return s
	}
	return "model: no single key's operations are illegal alone"
}

// faultTimes lists the faults' times, for a message.
func faultTimes(faults []fault) string {
	s := ""
	for _, f := range faults {
		s += fmt.Sprintf("; fault %v–%v", ms(f.start), ms(f.heal))
	}
	return s
}

func describeOp(op porcupine.Operation) string {
	o := op.Input.(lockOp)
	s := fmt.Sprintf("client %d %s %s token %d %v–%v", op.ClientId,
		map[byte]string{'a': "acquire", 'r': "renew", 'u': "release"}[o.kind], o.lock, o.token, ms(o.call), ms(o.ret))
	switch {
	case o.failed:
		s += " failed"
	case !o.ok:
		s += " refused"
	}
	if o.kind != 'u' {
		s += fmt.Sprintf(" valid to %v", ms(o.until))
	}
	return s
}

// String describes h for a violation's message.
func (h *hold) String() string {
	s := fmt.Sprintf("client %d acquired %v–%v", h.client, ms(h.call), ms(h.ret))
	for _, c := range h.renewals {
		s += fmt.Sprintf(", renewed %v–%v ok=%v failed=%v", ms(c.call), ms(c.ret), c.ok, c.failed)
	}
	if c := h.release; c != nil {
		s += fmt.Sprintf(", released %v–%v ok=%v failed=%v", ms(c.call), ms(c.ret), c.ok, c.failed)
	}
	if x := h.run; x != nil {
		s += fmt.Sprintf(", callback %v–%v signal %v", ms(x.start), ms(x.end), ms(x.signal))
	}
	return s
}

func ms(ns int64) string { return time.Duration(ns).Round(time.Millisecond).String() }
