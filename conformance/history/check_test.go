package history

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The history checker's own tests: hand-made histories, one clean and one
// for each class of violation, each of which the checker must catch (and
// only that one).

const sec = int64(time.Second)

var strict = checkLimits{fencing: true, tolerance: int64(250 * time.Millisecond), late: int64(250 * time.Millisecond)}

// clean is a good history of key "k": token 10 held 0–0.5 s by client 0
// under Run and released; token 11 acquired by client 1 at 0.6 s, expired
// unreleased; token 12 acquired at 2 s after a contended attempt at 1 s,
// released. Each wrote once, and 11's late write was rejected.
func clean() *history {
	h := &history{end: 3 * sec, errors: map[string]int{}}
	h.holds = []*hold{
		{id: 0, client: 0, key: "k", token: 10, call: 0, ret: sec / 100, ttl: sec, validity: sec,
			release: &outcome{call: sec / 2, ret: sec/2 + sec/100, ok: true},
			run:     &runInfo{start: sec / 50, end: sec / 2, reported: true, lostCause: true}},
		{id: 1, client: 1, key: "k", token: 11, call: 6 * sec / 10, ret: 61 * sec / 100, ttl: sec, validity: sec},
		{id: 2, client: 2, key: "k", token: 12, call: 2 * sec, ret: 2*sec + sec/100, ttl: sec, validity: sec,
			release: &outcome{call: 25 * sec / 10, ret: 251 * sec / 100, ok: true}},
	}
	h.attempts = []attempt{{client: 0, key: "k", call: sec, ret: sec + sec/100}}
	h.writes = []write{
		{key: "k", hold: 0, token: 10, at: sec / 10, accepted: true},
		{key: "k", hold: 1, token: 11, at: 7 * sec / 10, accepted: true},
		{key: "k", hold: 2, token: 12, at: 21 * sec / 10, accepted: true},
		{key: "k", hold: 1, token: 11, at: 22 * sec / 10, accepted: false},
	}
	return h
}

func TestCheckerAcceptsCleanHistory(t *testing.T) {
	r := check(clean(), strict)
	assert.Empty(t, r.Violations)
	assert.Equal(t, "Ok", r.Model)
	assert.Equal(t, 3, r.Acquired)
	assert.Equal(t, 1, r.Contended)
	assert.Equal(t, 1, r.StaleRejected, "the stalled holder's write after its TTL")
	assert.Zero(t, r.Overlaps+r.TokenOrder+r.StaleAccepted+r.LateSignals+r.ForeignReleases+r.Orphans+r.Phantoms)
}

func TestCheckerCatches(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lim    checkLimits
		break_ func(h *history)
		want   func(r Report) int
	}{
		{"overlap: a grant inside another holder's validity", strict, func(h *history) {
			h.holds[2].call, h.holds[2].ret = sec, sec+sec/100 // 11 is valid until 1.6 s
			h.attempts = nil
		}, func(r Report) int { return r.Overlaps }},
		{"token going backwards", strict, func(h *history) {
			h.holds[2].token = 9
			h.writes[2].token = 9
		}, func(r Report) int { return r.TokenOrder }},
		{"stale write accepted", checkLimits{fencing: false, tolerance: strict.tolerance, late: strict.late}, func(h *history) {
			h.writes[3].accepted = true // a resource without fencing
		}, func(r Report) int { return r.StaleAccepted }},
		{"late signal", strict, func(h *history) {
			lateRun(h, 3*sec+sec/2)
		}, func(r Report) int { return r.LateSignals }},
		{"missing signal", strict, func(h *history) {
			lateRun(h, 0)
		}, func(r Report) int { return r.LateSignals }},
		{"lost lock not reported by Run", strict, func(h *history) {
			lateRun(h, 3*sec)
			h.holds[2].run.reported = false
		}, func(r Report) int { return r.LostUnreported }},
		{"foreign release", strict, func(h *history) {
			h.holds[1].release = &outcome{call: 22 * sec / 10, ret: 221 * sec / 100, ok: true} // 12 holds the key then
		}, func(r Report) int { return r.ForeignReleases }},
		{"release of a token never granted", strict, func(h *history) {
			h.strays = []stray{{key: "k", token: 99, call: sec, ret: sec, ok: true}}
		}, func(r Report) int { return r.ForeignReleases }},
		{"phantom: the key held with nobody to hold it", strict, func(h *history) {
			h.attempts = append(h.attempts, attempt{client: 1, key: "k", call: 19 * sec / 10, ret: 19*sec/10 + sec/100})
		}, func(r Report) int { return r.Phantoms }},
		{"orphan: a failed acquisition left the key held", strict, func(h *history) {
			h.attempts = append(h.attempts,
				attempt{client: 1, key: "k", call: 17 * sec / 10, ret: 175 * sec / 100, failed: true},
				attempt{client: 0, key: "k", call: 19 * sec / 10, ret: 19*sec/10 + sec/100})
		}, func(r Report) int { return r.Orphans }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := clean()
			tc.break_(h)
			r := check(h, tc.lim)
			assert.Positive(t, tc.want(r), "not caught: %s", r.summary())
			all := r.Overlaps + r.TokenOrder + r.StaleAccepted + r.LateSignals + r.LostUnreported + r.ForeignReleases + r.Orphans + r.Phantoms
			assert.Equal(t, tc.want(r), all, "other checks fired too: %s", r.Violations)
			for _, v := range r.Violations {
				t.Log(v)
			}
		})
	}
}

// lateRun makes token 12 a Run whose callback ran until 4 s, a second
// past its validity deadline (3 s), and whose context ended at signal (0:
// never).
func lateRun(h *history, signal int64) {
	h.end = 5 * sec
	x := h.holds[2]
	x.release = &outcome{call: 4 * sec, ret: 4*sec + sec/100}
	x.run = &runInfo{start: 2*sec + sec/50, end: 4 * sec, signal: signal, lostCause: true, reported: true}
}

// The model check alone rejects a history whose only defect is a grant
// inside another holder's validity, and one whose tokens go backwards.
func TestModelRejects(t *testing.T) {
	h := clean()
	h.holds[2].call, h.holds[2].ret = sec, sec+sec/100
	require.Equal(t, "Illegal", checkModel(h, strict), "grant while held")
	// The report names the operation no linearization could take.
	r := check(h, strict)
	require.Contains(t, strings.Join(r.Violations, "\n"),
		`model: key "k": no linearization once operation 4 of 5 is added: client 2 acquire mutex token 12 1s–1.01s`)

	h = clean()
	h.holds[2].token = 9
	require.Equal(t, "Illegal", checkModel(h, strict), "token going backwards")
	require.Equal(t, "Ok", checkModel(h, checkLimits{}), "without fencing, order is not checked")

	h = clean()
	h.holds[0].release.ok = false // told "not held" while valid
	require.Equal(t, "Illegal", checkModel(h, strict), "release refused inside validity")

	h = clean()
	h.holds[0].release = &outcome{call: sec / 2, ret: sec / 2, failed: true}
	h.holds[1].call, h.holds[1].ret = sec/2+1, sec/2+2 // may have been released: fine
	require.Equal(t, "Ok", checkModel(h, strict), "a failed release may have freed the lock")
}

// Breaches waives exactly what a cell's Expect allows, and asks for the
// documented weakness where the cell must show it.
func TestBreaches(t *testing.T) {
	ok := Report{Acquired: 100, Fencing: true, Model: "Ok"}
	assert.Empty(t, ok.Breaches())

	r := ok
	r.Overlaps, r.Model = 3, "Illegal"
	assert.Len(t, r.Breaches(), 2, "overlap and model, where nothing may break")
	r.Expect = Expect{MayOverlap: true}
	assert.Empty(t, r.Breaches(), "waived")

	r = ok
	r.Expect = Expect{MustOverlap: true, MayOverlap: true}
	assert.Len(t, r.Breaches(), 1, "no overlap shown")
	r.Overlaps = 2
	assert.Len(t, r.Breaches(), 1, "overlaps, yet the model accepted")
	r.Model = "Illegal"
	assert.Empty(t, r.Breaches())

	r = ok
	r.Orphans = 1
	assert.Len(t, r.Breaches(), 1)
	r.Expect.MayOrphan = true
	assert.Empty(t, r.Breaches())

	r = ok
	r.StaleAccepted, r.TokenOrder = 1, 1
	assert.Len(t, r.Breaches(), 2)
	r.Fencing = false
	assert.Empty(t, r.Breaches(), "without fencing, stale writes are expected")

	r = ok
	r.LateSignals, r.ForeignReleases, r.Phantoms, r.LostUnreported = 1, 1, 1, 1
	r.Expect = Expect{MayOverlap: true, MayOrphan: true}
	assert.Len(t, r.Breaches(), 4, "never waived")

	r = ok
	r.Nemesis = true
	assert.Len(t, r.Breaches(), 1, "a schedule that injected nothing")
}

// kinds is a good history of the other kinds: on semaphore "s" of 2
// permits, tokens 20 and 21 held side by side (0.1–0.6 s) and released,
// then 22 (0.7 s); on read-write lock "rw", readers 30 and 31 side by
// side (0.1–0.5 s), then writer 40 (0.6–0.9 s); on keys "a" and "b",
// multi-key lock 50 (1–1.5 s), then a's mutex 51 (1.6–2 s).
func kinds() *history {
	h := &history{end: 3 * sec, errors: map[string]int{}}
	held := func(id int, key, kind string, token, from, to int64, also ...string) *hold {
		x := &hold{id: id, key: key, also: also, kind: kind, token: token, call: from, ret: from + sec/100,
			ttl: sec, validity: sec, release: &outcome{call: to, ret: to + sec/100, ok: true}}
		if kind == "semaphore" {
			x.limit = 2
		}
		return x
	}
	h.holds = []*hold{
		held(0, "s/s", "semaphore", 20, sec/10, 6*sec/10),
		held(1, "s/s", "semaphore", 21, sec/10, 6*sec/10),
		held(2, "s/s", "semaphore", 22, 7*sec/10, 9*sec/10),
		held(3, "rw/rw", "read", 30, sec/10, 5*sec/10),
		held(4, "rw/rw", "read", 31, sec/10, 5*sec/10),
		held(5, "rw/rw", "write", 40, 6*sec/10, 9*sec/10),
		held(6, "m/a", "keys", 50, sec, 15*sec/10, "m/b"),
		held(7, "m/a", "mutex", 51, 16*sec/10, 2*sec),
	}
	return h
}

func TestCheckerKinds(t *testing.T) {
	r := check(kinds(), strict)
	assert.Empty(t, r.Violations)
	assert.Equal(t, "Ok", r.Model)
	for _, tc := range []struct {
		name   string
		break_ func(h *history)
		want   func(r Report) int
	}{
		{"a third permit of two", func(h *history) {
			h.holds[2].call, h.holds[2].ret = 3*sec/10, 31*sec/100
		}, func(r Report) int { return r.Overlaps }},
		{"a reader beside the writer", func(h *history) {
			h.holds[4].release.call, h.holds[4].release.ret = 7*sec/10, 71*sec/100
		}, func(r Report) int { return r.Overlaps }},
		{"a mutex inside a multi-key lock on its key", func(h *history) {
			h.holds[7].call, h.holds[7].ret = 12*sec/10, 121*sec/100
		}, func(r Report) int { return r.Overlaps }},
		{"a writer's token not above an earlier reader's", func(h *history) {
			h.holds[5].token = 29
		}, func(r Report) int { return r.TokenOrder }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := kinds()
			tc.break_(h)
			r := check(h, strict)
			assert.Positive(t, tc.want(r), "not caught: %s", r.summary())
			for _, v := range r.Violations {
				t.Log(v)
			}
		})
	}
	// Readers side by side and permits within the limit are no overlap,
	// and a permit's or a reader's token need not grow.
	h := kinds()
	h.holds[1].token, h.holds[4].token = 19, 29
	r = check(h, strict)
	assert.Zero(t, r.Overlaps+r.TokenOrder, r.Violations)
}

// A waiter's place explains refusals for its keep time after its stop;
// a fault that begins while the place lives may renew it (etcd renews
// every lease when a leader takes over), so it explains them until a
// keep time after the heal. Beyond that, a refusal is a phantom.
func TestCheckerPlacesOutliveFaults(t *testing.T) {
	withPlace := func(faults ...fault) *history {
		h := clean()
		h.end = 5 * sec
		h.queued = []queued{{waiter: "w", key: "k", from: 7 * sec / 10, stop: 8 * sec / 10, keep: sec}}
		h.faults = faults
		// After 12's release (2.51 s): only the place can explain it.
		h.attempts = append(h.attempts, attempt{client: 1, key: "k", call: 3 * sec, ret: 3*sec + sec/100})
		return h
	}
	r := check(withPlace(), strict)
	assert.Equal(t, 1, r.Phantoms, "no fault: the place was gone by 2.05 s: %s", r.Violations)

	r = check(withPlace(fault{start: 9 * sec / 10, heal: 25 * sec / 10}), strict)
	assert.Zero(t, r.Phantoms, "a fault from 0.9 s to 2.5 s renews the place until 3.75 s: %s", r.Violations)

	r = check(withPlace(fault{start: 21 * sec / 10, heal: 25 * sec / 10}), strict)
	assert.Equal(t, 1, r.Phantoms, "a fault that began after the place was gone renews nothing: %s", r.Violations)

	// A refusal at 4.2 s: beyond the place's renewal at the heal (3.75 s),
	// within it if the fault renews for 1 s more (a new etcd leader).
	later := func(renew int64) *history {
		h := withPlace(fault{start: 9 * sec / 10, heal: 25 * sec / 10, renew: renew})
		h.attempts[len(h.attempts)-1] = attempt{client: 1, key: "k", call: 42 * sec / 10, ret: 42*sec/10 + sec/100}
		return h
	}
	r = check(later(0), strict)
	assert.Equal(t, 1, r.Phantoms, "renewed until 3.75 s only: %s", r.Violations)
	r = check(later(sec), strict)
	assert.Zero(t, r.Phantoms, "renewed until 4.75 s: %s", r.Violations)
}

// A callback that returned just after its deadline, before its context's
// signal could come, owes no signal; Run's error must still say the lock
// was lost.
func TestCheckerReturnBeforeSignal(t *testing.T) {
	h := clean()
	lateRun(h, 0)
	x := h.holds[2]
	x.run.end = 3*sec + sec/10 // 100ms past the deadline, within the tolerance
	x.run.lostCause = false    // no signal came, so no cause was seen
	r := check(h, strict)
	assert.Zero(t, r.LateSignals+r.LostUnreported, "Run said so: %v", r.Violations)
	x.run.reported = false
	r = check(h, strict)
	assert.Equal(t, 1, r.LostUnreported, "Run did not say the lock was lost")
}
