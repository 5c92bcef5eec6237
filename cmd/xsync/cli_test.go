package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/internal/itest"
)

// End-to-end tests: they build the binary and run it against real
// servers in containers, as a cron job or a shell script would.

func TestMain(m *testing.M) { itest.Main(m) }

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// xsyncBin builds the command once per test run.
func xsyncBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "xsync-cli-test")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "xsync")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binary
}

// result is one finished run of the command.
type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// xsyncCmd prepares the command with url as XSYNC_URL.
func xsyncCmd(t *testing.T, url string, args ...string) *exec.Cmd {
	cmd := exec.Command(xsyncBin(t), args...)
	cmd.Env = append(os.Environ(), "XSYNC_URL="+url)
	return cmd
}

func runCLI(t *testing.T, url string, args ...string) result {
	t.Helper()
	cmd := xsyncCmd(t, url, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("run xsync: %v", err)
	}
	return r
}

// backends are the stores the command is tested on, each with a URL.
type target struct {
	name    string
	url     string
	fencing bool
}

// targets starts a deployment of each backend.
func targets(t *testing.T) []target {
	t.Helper()
	var ts []target
	for _, d := range deploy(t) {
		ts = append(ts, d.target)
	}
	return ts
}

func TestCommandOnEveryBackend(t *testing.T) {
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			t.Run("Exclusive", func(t *testing.T) { exclusive(t, tg) })
			t.Run("BusyExitsAtOnce", func(t *testing.T) { busy(t, tg) })
			t.Run("TokenGrows", func(t *testing.T) { tokenGrows(t, tg) })
			t.Run("InspectAndForceUnlock", func(t *testing.T) { inspectAndForce(t, tg) })
			t.Run("SignalReachesCommand", func(t *testing.T) { signalReaches(t, tg) })
			t.Run("KilledXsyncStopsCommand", func(t *testing.T) { killedStopsCommand(t, tg) })
			t.Run("InspectExitCodes", func(t *testing.T) { inspectExitCodes(t, tg) })
			t.Run("Lead", func(t *testing.T) { lead(t, tg) })
			t.Run("FlagsAfterKeyAndWaitForever", func(t *testing.T) { waitForever(t, tg) })
			if tg.name != "redlock" { // Redlock has the mutex only
				t.Run("Permits", func(t *testing.T) { permits(t, tg) })
				t.Run("ReadWrite", func(t *testing.T) { readWrite(t, tg) })
				t.Run("List", func(t *testing.T) { list(t, tg) })
			}
		})
	}
}

// Two concurrent lock commands running a script that appends begin and
// end lines with a pause between never interleave.
func exclusive(t *testing.T, tg target) {
	log := filepath.Join(t.TempDir(), "log")
	key := "exclusive:" + t.Name()
	script := `echo "begin $XSYNC_TOKEN" >> "$1"; sleep 0.2; echo "end $XSYNC_TOKEN" >> "$1"`
	var wg sync.WaitGroup
	codes := make([]int, 4)
	for i := range codes {
		wg.Go(func() {
			codes[i] = runCLI(t, tg.url, "lock", "--ttl", "5s", "--wait", "30s", key, "--", "sh", "-c", script, "sh", log).code
		})
	}
	wg.Wait()
	assert.Equal(t, []int{0, 0, 0, 0}, codes)
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, lines, 8)
	for i := 0; i < len(lines); i += 2 {
		tok := strings.TrimPrefix(lines[i], "begin ")
		assert.True(t, strings.HasPrefix(lines[i], "begin "), "line %d: %q", i, lines[i])
		assert.Equal(t, "end "+tok, lines[i+1], "holders interleaved:\n%s", b)
	}
}

// --wait 0 on a held key exits 75 at once.
func busy(t *testing.T, tg target) {
	c := client(t, tg)
	key := "busy:" + t.Name()
	lease, err := c.Acquire(t.Context(), key, xsync.WithTTL(10*time.Second))
	require.NoError(t, err)
	defer lease.Release(context.Background())
	r := runCLI(t, tg.url, "lock", "--wait", "0", key, "--", "sh", "-c", "echo ran")
	t.Logf("exit %d after %v: %s", r.code, r.took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
	assert.Equal(t, exitBusy, r.code)
	assert.NotContains(t, r.stdout, "ran")
	assert.Contains(t, r.stderr, key, "the message names the key")
}

// XSYNC_TOKEN grows from run to run on fencing backends.
func tokenGrows(t *testing.T, tg target) {
	key := "token:" + t.Name()
	var last int64
	for range 3 {
		r := runCLI(t, tg.url, "lock", key, "--", "sh", "-c", `echo "$XSYNC_KEY $XSYNC_TOKEN"`)
		require.Equal(t, 0, r.code, r.stderr)
		f := strings.Fields(r.stdout)
		require.Len(t, f, 2, r.stdout)
		assert.Equal(t, key, f[0])
		tok, err := strconv.ParseInt(f[1], 10, 64)
		require.NoError(t, err)
		require.Positive(t, tok)
		if tg.fencing {
			assert.Greater(t, tok, last, "tokens grow between runs")
		} else {
			assert.NotEqual(t, tok, last)
		}
		last = tok
	}
}

// inspect shows the holder; unlock --force frees the key, the holder's
// command is stopped (its lock is lost), and a waiting lock command gets
// the key promptly.
func inspectAndForce(t *testing.T, tg target) {
	key := "force:" + t.Name()
	holder := xsyncCmd(t, tg.url, "lock", "--ttl", "3s", "--owner", "nightly-report", "--kill-after", "1s", key, "--", "sleep", "60")
	var holderErr bytes.Buffer
	holder.Stderr = &holderErr
	require.NoError(t, holder.Start())
	var info struct {
		Held  bool   `json:"held"`
		Token int64  `json:"token"`
		Owner string `json:"owner"`
	}
	require.Eventually(t, func() bool {
		r := runCLI(t, tg.url, "inspect", "--json", key)
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &info) == nil && info.Held
	}, 20*time.Second, 50*time.Millisecond, "the holder never held the key")
	if tg.name != "redlock" {
		assert.Contains(t, info.Owner, "nightly-report")
	}
	waiter := xsyncCmd(t, tg.url, "lock", "--verbose", "--wait", "60s", key, "--", "sh", "-c", "echo got it")
	var waiterOut bytes.Buffer
	waiter.Stdout = &waiterOut
	progress, err := waiter.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, waiter.Start())
	waiting := make(chan struct{})
	go func() { // --verbose reports the wait's changes: wait for "held by someone else"
		sc := bufio.NewScanner(progress)
		once := sync.OnceFunc(func() { close(waiting) })
		for sc.Scan() {
			if strings.HasSuffix(sc.Text(), ": waiting: held by someone else") {
				once()
			}
		}
	}()
	select {
	case <-waiting:
	case <-time.After(20 * time.Second):
		t.Fatal("the waiter never reported the key held")
	}

	forced := time.Now()
	r := runCLI(t, tg.url, "unlock", "--force", key) // stdin is not a terminal: no question
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "released")
	require.NoError(t, waiter.Wait())
	t.Logf("the waiting lock command got the key and finished %v after the force-unlock", time.Since(forced).Round(time.Millisecond))
	assert.Contains(t, waiterOut.String(), "got it")

	err = holder.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "the holder's command was stopped: %s", holderErr.String())
	assert.Equal(t, exitLost, ee.ExitCode(), holderErr.String())
	assert.Contains(t, holderErr.String(), "lost")
}

func client(t *testing.T, tg target) *xsync.Client {
	t.Helper()
	l, closer, err := xsync.Open(t.Context(), tg.url)
	require.NoError(t, err)
	t.Cleanup(func() { closer.Close() })
	return xsync.NewClient(l)
}

// deployment is a backend of its own for a test that faults it: faulted
// are the servers a fault acts on (every server of Redis and etcd, a
// majority of Redlock's nodes).
type deployment struct {
	target
	faulted []*itest.Server
}

// deploy starts a deployment of each backend.
func deploy(t *testing.T) []deployment {
	t.Helper()
	redis := itest.StartRedis(t)
	nodes := itest.StartRedisN(t, 3)
	etcd := itest.StartEtcd(t)
	var hosts []string
	for _, n := range nodes {
		hosts = append(hosts, n.Endpoint())
	}
	return []deployment{
		// read_timeout: a renewal hangs on the paused server longer than
		// the TTL, so the lost signal cannot come from its failure.
		{target{"redis", "redis://" + redis.Endpoint() + "?read_timeout=5s", true}, []*itest.Server{redis}},
		{target{"redlock", "redlock://" + strings.Join(hosts, ",") + "?node_timeout=1s", false}, nodes[:2]},
		{target{"etcd", "etcd://" + etcd.Endpoint() + "?dial_timeout=2s", true}, []*itest.Server{etcd}},
	}
}

// inspect exits 0 for a held key and 1 for a free one, as test(1) would.
func inspectExitCodes(t *testing.T, tg target) {
	key := "inspect:" + t.Name()
	r := runCLI(t, tg.url, "inspect", key)
	assert.Equal(t, exitFree, r.code, r.stderr)
	assert.Contains(t, r.stdout, "free")
	lease, err := client(t, tg).Acquire(t.Context(), key, xsync.WithTTL(10*time.Second))
	require.NoError(t, err)
	defer lease.Release(context.Background())
	r = runCLI(t, tg.url, "inspect", "--json", key)
	require.Equal(t, exitOK, r.code, r.stderr)
	var info struct {
		Kind  string `json:"kind"`
		Held  bool   `json:"held"`
		Token int64  `json:"token"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &info), r.stdout)
	assert.Equal(t, "mutex", info.Kind)
	assert.True(t, info.Held)
	assert.Equal(t, int64(lease.Token()), info.Token)
}

// Flags may follow KEY; --wait forever waits for a held key until it is
// released.
func waitForever(t *testing.T, tg target) {
	key := "forever:" + t.Name()
	lease, err := client(t, tg).Acquire(t.Context(), key, xsync.WithTTL(30*time.Second))
	require.NoError(t, err)
	waiter := xsyncCmd(t, tg.url, "lock", key, "--wait", "forever", "--verbose", "--", "sh", "-c", "echo got it")
	var out bytes.Buffer
	waiter.Stdout = &out
	progress, err := waiter.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, waiter.Start())
	waiting, drained := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(progress)
		once := sync.OnceFunc(func() { close(waiting) })
		for sc.Scan() {
			if strings.HasSuffix(sc.Text(), "held by someone else") {
				once()
			}
		}
	}()
	select {
	case <-waiting:
	case <-time.After(20 * time.Second):
		t.Fatal("the waiter never reported the key held")
	}
	released := time.Now()
	ok, err := lease.Release(t.Context())
	require.NoError(t, err)
	require.True(t, ok)
	<-drained // the pipe is read to its end before Wait
	require.NoError(t, waiter.Wait())
	assert.Contains(t, out.String(), "got it")
	t.Logf("a waiter with --wait forever ran %v after the release", time.Since(released).Round(time.Millisecond))
}

// lock --permits N runs at most N commands at once; inspect --permits
// shows the holders and the free permits.
func permits(t *testing.T, tg target) {
	key := "permits:" + t.Name()
	var holders []*exec.Cmd
	for i := range 2 {
		h := xsyncCmd(t, tg.url, "lock", "--permits", "2", "--owner", fmt.Sprintf("worker-%d", i), key, "--", "sleep", "60")
		require.NoError(t, h.Start())
		holders = append(holders, h)
	}
	defer func() {
		for _, h := range holders {
			h.Process.Signal(syscall.SIGTERM)
			h.Wait()
		}
	}()
	var info struct {
		Kind    string            `json:"kind"`
		Held    bool              `json:"held"`
		Holders []json.RawMessage `json:"holders"`
		Free    *int              `json:"free"`
	}
	require.Eventually(t, func() bool {
		r := runCLI(t, tg.url, "inspect", "--json", "--permits", "2", key)
		return r.code == exitOK && json.Unmarshal([]byte(r.stdout), &info) == nil && len(info.Holders) == 2
	}, 20*time.Second, 50*time.Millisecond, "two commands never held two permits")
	assert.Equal(t, "semaphore", info.Kind)
	require.NotNil(t, info.Free)
	assert.Zero(t, *info.Free)
	r := runCLI(t, tg.url, "lock", "--permits", "2", "--wait", "0", key, "--", "echo", "third")
	assert.Equal(t, exitBusy, r.code, "a third command while two permits are held: %s", r.stderr)
	assert.NotContains(t, r.stdout, "third")
	assert.Equal(t, exitFree, runCLI(t, tg.url, "inspect", key).code, "the key's mutex is another lock, and free")
}

// lock --read shares the lock with other readers; --write waits for them.
func readWrite(t *testing.T, tg target) {
	key := "rw:" + t.Name()
	reader, err := client(t, tg).RWLock(key).AcquireRead(t.Context(), xsync.WithTTL(30*time.Second))
	require.NoError(t, err)
	r := runCLI(t, tg.url, "lock", "--read", key, "--", "echo", "read")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "read")
	r = runCLI(t, tg.url, "lock", "--write", "--wait", "0", key, "--", "echo", "write")
	assert.Equal(t, exitBusy, r.code, "a writer while a reader holds: %s", r.stderr)
	r = runCLI(t, tg.url, "inspect", "--kind", "rwlock", key)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "reader: token")
	mustRelease(t, reader)
	r = runCLI(t, tg.url, "lock", "--write", key, "--", "echo", "write")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "write")
}

// list shows the locks of every kind under a prefix.
func list(t *testing.T, tg target) {
	p := "list:" + t.Name() + ":"
	c := client(t, tg)
	m, err := c.Acquire(t.Context(), p+"m", xsync.WithTTL(30*time.Second))
	require.NoError(t, err)
	s, err := c.Semaphore(p+"s", 3).Acquire(t.Context(), xsync.WithTTL(30*time.Second))
	require.NoError(t, err)
	r := runCLI(t, tg.url, "list", "--json", p)
	require.Equal(t, exitOK, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 2, r.stdout)
	assert.Contains(t, r.stdout, `"kind":"mutex","key":"`+p+`m"`)
	assert.Contains(t, r.stdout, `"kind":"semaphore","key":"`+p+`s"`)
	r = runCLI(t, tg.url, "list", "--limit", "1", p)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Len(t, strings.Split(strings.TrimSpace(r.stdout), "\n"), 1)
	assert.Contains(t, r.stderr, "more than 1")
	mustRelease(t, m)
	mustRelease(t, s)
	r = runCLI(t, tg.url, "list", p)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Empty(t, strings.TrimSpace(r.stdout))
}

// lead: of two `xsync lead` processes one runs its command; leader shows
// it; killing the leader's xsync (SIGKILL) stops its command, and the
// standby runs its own within the TTL and a moment; a command that ends
// on its own ends xsync lead with its code, resigned.
func lead(t *testing.T, tg target) {
	name := "lead:" + t.Name()
	log := filepath.Join(t.TempDir(), "log")
	script := `echo "$XSYNC_TOKEN" >> "$1"; exec sleep 60`
	start := func() *exec.Cmd {
		c := xsyncCmd(t, tg.url, "lead", "--ttl", "2s", "--kill-after", "1s", "--owner", "replica", name, "--", "sh", "-c", script, "sh", log)
		require.NoError(t, c.Start())
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		return c
	}
	lines := func() []string {
		b, _ := os.ReadFile(log)
		return strings.Fields(string(b))
	}
	a, b := start(), start()
	require.Eventually(t, func() bool { return len(lines()) == 1 }, 20*time.Second, 20*time.Millisecond, "nobody led")
	r := runCLI(t, tg.url, "leader", "--json", name)
	require.Equal(t, exitOK, r.code, r.stderr)
	var l struct {
		Held     bool   `json:"held"`
		Epoch    int64  `json:"epoch"`
		Identity string `json:"identity"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &l), r.stdout)
	assert.True(t, l.Held)
	assert.Equal(t, lines()[0], strconv.FormatInt(l.Epoch, 10), "XSYNC_TOKEN is the epoch")
	if tg.name != "redlock" {
		assert.Contains(t, l.Identity, "replica")
	}
	// Which process leads: the one whose command runs. Kill that xsync.
	leaderCmd, standby := a, b
	if !processHasChild(leaderCmd.Process.Pid) {
		leaderCmd, standby = b, a
	}
	require.True(t, processHasChild(leaderCmd.Process.Pid), "the leader's command runs under it")
	killed := time.Now()
	require.NoError(t, leaderCmd.Process.Signal(syscall.SIGKILL))
	require.Eventually(t, func() bool { return len(lines()) == 2 }, 20*time.Second, 20*time.Millisecond, "the standby never led")
	took := time.Since(killed)
	t.Logf("SIGKILL of the leader to the standby's command running: %v (TTL 2s)", took.Round(time.Millisecond))
	assert.Less(t, took, 2*time.Second+3*time.Second, "within the TTL and a few seconds")
	if tg.fencing {
		e1, _ := strconv.ParseInt(lines()[0], 10, 64)
		e2, _ := strconv.ParseInt(lines()[1], 10, 64)
		assert.Greater(t, e2, e1, "epochs grow")
	}
	require.NoError(t, standby.Process.Signal(syscall.SIGTERM)) // to its command's group: it ends
	err := standby.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 128+int(syscall.SIGTERM), ee.ExitCode(), "xsync lead exits with its command's code")
	assert.Equal(t, exitFree, runCLI(t, tg.url, "leader", name).code, "it resigned: nobody leads")
}

// processHasChild reports whether the process pid has a child process
// (started from any of its threads).
func processHasChild(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		if b, err := os.ReadFile(f); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return true
		}
	}
	return false
}

func mustRelease(t *testing.T, l *xsync.Lease) {
	t.Helper()
	ok, err := l.Release(context.Background())
	require.NoError(t, err)
	require.True(t, ok)
}

// Bad usage exits 64 before any backend is reached; a command that cannot
// start exits 127.
func TestUsage(t *testing.T) {
	assert.Equal(t, exitUsage, runCLI(t, "", "ping").code, "no URL")
	assert.Equal(t, exitUsage, runCLI(t, "mem://", "lock", "k").code, "no command")
	assert.Equal(t, exitUsage, runCLI(t, "mem://", "lock", "--ttl", "10ms", "k", "--", "true").code, "TTL under 1s")
	r := runCLI(t, "mem://", "lock", "--wait", "-1s", "k", "--", "true")
	assert.Equal(t, exitUsage, r.code, "negative wait")
	assert.Contains(t, r.stderr, "forever", "the message says how to wait until stopped")
	assert.Equal(t, exitUsage, runCLI(t, "mem://", "lock", "--permits", "2", "--read", "k", "--", "true").code, "two kinds")
	assert.Equal(t, exitUsage, runCLI(t, "mem://", "inspect", "--kind", "queue", "k").code, "unknown kind")
	assert.Equal(t, exitUsage, runCLI(t, "mem://", "ping", "--timeout", "0s").code, "no time to answer")
	assert.Equal(t, exitOK, runCLI(t, "mem://", "lock", "k", "--ttl", "2s", "--", "true").code, "flags after KEY")
	v := runCLI(t, "", "version")
	assert.Equal(t, exitOK, v.code)
	assert.True(t, strings.HasPrefix(v.stdout, "xsync "), v.stdout)
	assert.Equal(t, exitUsage, runCLI(t, "mem://", "frobnicate").code, "unknown command")
	assert.Equal(t, exitUsage, runCLI(t, "nope://x", "ping").code, "unknown scheme")
	assert.Equal(t, exitUsage, runCLI(t, "mem://", "unlock", "k").code, "unlock without --force")
	assert.Equal(t, exitNoStart, runCLI(t, "mem://", "lock", "k", "--", "/nonexistent/command").code)
}

// A frozen server (a frozen majority of Redlock's nodes): lock exits 69
// by the end of the wait plus the TTL at the latest. A stopped one: lock
// and ping exit 69, with one line naming the key and the backend and no
// password.
func TestUnavailable(t *testing.T) {
	for _, d := range deploy(t) {
		t.Run(d.name, func(t *testing.T) {
			url := d.url
			if d.name == "redis" { // a password in the URL never reaches the message
				url = strings.Replace(url, "redis://", "redis://:s3cret-password@", 1)
			}
			for _, s := range d.faulted {
				s.Pause()
			}
			r := runCLI(t, url, "lock", "--ttl", "2s", "k", "--", "sh", "-c", "echo ran")
			t.Logf("frozen: exit %d after %v: %s", r.code, r.took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
			assert.Equal(t, exitUnavailable, r.code, r.stderr)
			assert.NotContains(t, r.stdout, "ran")
			assert.NotContains(t, r.stderr, "s3cret")
			for _, s := range d.faulted {
				s.Unpause()
				s.Stop()
			}
			r = runCLI(t, url, "lock", "k", "--", "sh", "-c", "echo ran")
			t.Logf("stopped: exit %d after %v: %s", r.code, r.took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
			assert.Equal(t, exitUnavailable, r.code, r.stderr)
			assert.NotContains(t, r.stdout, "ran")
			assert.Equal(t, 1, strings.Count(strings.TrimSpace(r.stderr), "\n")+1, "one line: %q", r.stderr)
			assert.Contains(t, r.stderr, `"k"`, "the message names the key")
			assert.Contains(t, r.stderr, d.faulted[0].Endpoint())
			assert.NotContains(t, r.stderr, "s3cret")
			r = runCLI(t, url, "ping")
			assert.Equal(t, exitUnavailable, r.code, r.stderr)
			assert.NotContains(t, r.stderr, "s3cret")
		})
	}
}

// A lock lost while the command runs (the servers frozen past the TTL)
// stops the command, and xsync exits with the lost code.
func TestLostLockStopsCommand(t *testing.T) {
	for _, d := range deploy(t) {
		t.Run(d.name, func(t *testing.T) {
			mark := filepath.Join(t.TempDir(), "mark")
			cmd := xsyncCmd(t, d.url, "lock", "--ttl", "2s", "--kill-after", "2s", "k", "--",
				"sh", "-c", `trap 'echo stopped > "$1"; exit 0' TERM; echo started > "$1"; sleep 60 & wait`, "sh", mark)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Start())
			require.Eventually(t, func() bool { b, _ := os.ReadFile(mark); return string(b) == "started\n" }, 20*time.Second, 20*time.Millisecond)
			for _, s := range d.faulted {
				s.Pause()
			}
			paused := time.Now()
			err := cmd.Wait()
			t.Logf("xsync exited %v after the pause: %s", time.Since(paused).Round(time.Millisecond), strings.TrimSpace(stderr.String()))
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, exitLost, ee.ExitCode())
			for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
				assert.True(t, strings.HasPrefix(line, "xsync: "), "a message of its own on each line: %q", line)
			}
			b, _ := os.ReadFile(mark)
			assert.Equal(t, "stopped\n", string(b), "the command got SIGTERM")
		})
	}
}

// SIGTERM to xsync reaches the command (its process group); xsync exits
// with the command's code and releases the lock.
func signalReaches(t *testing.T, tg target) {
	mark := filepath.Join(t.TempDir(), "mark")
	key := "signal:" + t.Name()
	cmd := xsyncCmd(t, tg.url, "lock", "--ttl", "30s", key, "--",
		"sh", "-c", `trap 'echo got-term > "$1"; exit 7' TERM; echo started > "$1"; sleep 60 & wait`, "sh", mark)
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool { b, _ := os.ReadFile(mark); return string(b) == "started\n" }, 20*time.Second, 20*time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	err := cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 7, ee.ExitCode(), "the command's own code")
	b, _ := os.ReadFile(mark)
	assert.Equal(t, "got-term\n", string(b))
	r := runCLI(t, tg.url, "inspect", key)
	assert.Equal(t, key+": free\n", r.stdout, "the lock was released (its TTL is 30s)")
}

// xsync killed with SIGKILL while its command runs: nobody renews the
// lock any more, so the command, and what it started, must stop before
// the lock's validity ends (at least two thirds of the TTL are left, as
// the lock was renewed every third), not go on without the lock.
func killedStopsCommand(t *testing.T, tg target) {
	key := "killed:" + t.Name()
	const ttl = 3 * time.Second
	cmd := xsyncCmd(t, tg.url, "lock", "--ttl", ttl.String(), key, "--",
		"sh", "-c", `sleep 60 & echo $!; wait`) // the child of the command prints its pid
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, "the command's child's pid")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err)
	child, err := unix.PidfdOpen(pid, 0)
	require.NoError(t, err, "pidfd of the command's child")
	defer unix.Close(child)

	require.NoError(t, cmd.Process.Kill())
	killed := time.Now()
	_ = cmd.Wait()
	// The child's pidfd becomes readable when it exits.
	fds := []unix.PollFd{{Fd: int32(child), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int((ttl * 2 / 3).Milliseconds()))
	require.NoError(t, err)
	if n == 0 {
		_ = unix.Kill(pid, syscall.SIGKILL)
		t.Fatalf("the command's child still ran %v after xsync was killed: it would outlive the lock", ttl*2/3)
	}
	t.Logf("the command's child ended %v after xsync was killed", time.Since(killed).Round(time.Millisecond))
}

// xsync stopped (SIGSTOP) past its TTL: the lock expires, as any lease
// whose holder stalls, and another holder can take it while the command
// runs on; once xsync runs again it sees the loss, stops the command and
// exits 79. (The README's table says so.)
func TestStoppedXsyncLosesLock(t *testing.T) {
	url := "redis://" + itest.StartRedis(t).Endpoint()
	key := "stopped:" + t.Name()
	cmd := xsyncCmd(t, url, "lock", "--ttl", "2s", key, "--",
		"sh", "-c", `trap 'echo got-term; exit 3' TERM; echo started; sleep 60 & wait`)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := bufio.NewReader(out)
	line, err := lines.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "started\n", line)
	require.NoError(t, cmd.Process.Signal(syscall.SIGSTOP))
	stopped := time.Now()
	r := runCLI(t, url, "lock", "--wait", "10s", key, "--", "true")
	assert.Equal(t, 0, r.code, "another holder takes the lock once the stopped holder's TTL ran out: %s", r.stderr)
	t.Logf("another holder got the lock %v after xsync was stopped (TTL 2s)", time.Since(stopped).Round(time.Millisecond))
	require.NoError(t, cmd.Process.Signal(syscall.SIGCONT))
	line, _ = lines.ReadString('\n')
	assert.Equal(t, "got-term\n", line, "the command is stopped once xsync runs again")
	err = cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, exitLost, ee.ExitCode())
}
