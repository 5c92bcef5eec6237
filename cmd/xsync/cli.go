package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"

	"github.com/xsync-go/xsync"
	_ "github.com/xsync-go/xsync/backend/etcd"     // etcd://
	_ "github.com/xsync-go/xsync/backend/memory"   // mem://
	_ "github.com/xsync-go/xsync/backend/postgres" // postgres://, postgresql://
	_ "github.com/xsync-go/xsync/backend/redis"    // redis://, rediss://, redis+cluster://, redis+sentinel://
	_ "github.com/xsync-go/xsync/backend/redlock"  // redlock://
	"github.com/xsync-go/xsync/internal/keys"
)

// Exit codes. The command's own code passes through when it ran.
const (
	exitOK          = 0
	exitFree        = 1   // inspect: the lock is free
	exitUsage       = 64  // EX_USAGE: bad flags, arguments or URL
	exitUnavailable = 69  // EX_UNAVAILABLE: the backend could not be reached
	exitBusy        = 75  // EX_TEMPFAIL: the lock was held for the whole wait
	exitLost        = 79  // the lock was lost while the command ran; the command was stopped
	exitNoStart     = 127 // the command could not be started
)

const usage = `xsync: a distributed flock for shell scripts and cron jobs, on Redis,
Redlock, etcd, PostgreSQL or memory.

Usage:
  xsync lock [flags] KEY [flags] -- COMMAND [ARGS...]
      Take the lock on KEY, run COMMAND while holding it (the lock is
      renewed while it runs), release it when COMMAND exits, and exit
      with COMMAND's code. COMMAND gets XSYNC_KEY and XSYNC_TOKEN (the
      fencing token: pass it with the writes it protects). SIGINT and
      SIGTERM go to COMMAND's process group. If the lock is lost while
      COMMAND runs, or xsync itself is killed, COMMAND's process group
      gets SIGTERM, then SIGKILL after --kill-after.
        --url URL            backend (default $XSYNC_URL)
        --ttl DURATION       lock TTL, renewed every TTL/3 (default 30s)
        --wait DURATION      how long to wait for the lock; 0 fails at once,
                             like flock -n (default 0); "forever" waits
                             until xsync is stopped; an attempt still
                             unanswered after the wait plus the TTL exits 69
        --permits N          take one of N permits of KEY's semaphore (at
                             most N commands at once) instead of its mutex
        --read, --write      take KEY's read-write lock: shared by readers,
                             or alone as its writer
        --owner TEXT         shown by inspect after host/pid
        --hold-at-least D    keep the lock until D after it was taken, even
                             if COMMAND ends earlier (once-per-period jobs)
        --kill-after D       SIGKILL this long after SIGTERM (default 10s)
        --verbose            say when the wait changes: held by someone
                             else, the backend failing, the lock taken
  xsync lead [flags] NAME [flags] -- COMMAND [ARGS...]
      Run COMMAND only while this process leads the election NAME: it
      campaigns (waiting as long as it takes), runs COMMAND with
      XSYNC_KEY=NAME and XSYNC_TOKEN (the term's epoch) while it leads,
      and if leadership is lost, stops COMMAND (SIGTERM to its group,
      SIGKILL after --kill-after) and campaigns again. When COMMAND ends
      on its own, xsync resigns and exits with its code.
        --url, --ttl (default 30s), --owner, --kill-after, --verbose
  xsync leader [--url URL] [--json] NAME
      Who leads the election NAME: identity, epoch, time left. Exits 0
      if somebody leads, 1 if nobody does.
  xsync inspect [--url URL] [--json] [--kind K] [--permits N] KEY
      Who holds KEY's lock of kind K (mutex, the default; semaphore;
      rwlock): tokens, time left on the server, owners, waiters; with
      --permits, a semaphore's free permits. Exits 0 if held, 1 if free
      (as test(1) would).
  xsync list [--url URL] [--json] [--limit N] [PREFIX]
      The locks of every kind held (or waited for) whose keys begin with
      PREFIX, at most --limit of them (default 100).
  xsync unlock --force [--url URL] [--kind K] [--yes] KEY
      Release KEY's lock of kind K (mutex, semaphore, rwlock, election)
      whoever holds it (an operator's
      action); waiters wake, and tokens keep growing. Asks first, unless
      --yes or stdin is not a terminal.
  xsync ping [--url URL] [--timeout D]
      Exit 0 if the backend can serve locks now (waits D, default 5s).
  xsync migrate [--url URL] [--timeout D]
      Create what the backend keeps its locks in, if it needs that
      (PostgreSQL: the lock table and its sequence; idempotent); other
      backends need nothing.
  xsync version
      The version of xsync.

Flags may come before or after KEY (before --).

URLs: mem://, redis://[[user]:pass@]host:6379[/db], rediss://...,
redis+cluster://h1:6379,h2:6379, redis+sentinel://s1:26379,s2:26379/primary,
redlock://h1:6379,h2:6379,h3:6379, etcd://h1:2379[,h2:2379...],
postgres://user:pass@host:5432/db (run xsync migrate once first)
(see the backend packages' documentation for options).

Exit codes:
  COMMAND's own code   lock: COMMAND ran (128+N if a signal N killed it)
  0                    inspect: held; leader: led; list, unlock, ping, version: done
  1                    inspect: free; leader: nobody leads
  64                   bad flags, arguments or URL
  69                   the backend could not be reached, did not answer,
                       or cannot do it
  75                   lock: the key was held for the whole wait
  79                   lock: the lock was lost while COMMAND ran; COMMAND was stopped
  127                  lock: COMMAND could not be started
`

// errNoAnswer ends a lock attempt that the backend left unanswered for
// the whole wait and a TTL.
var errNoAnswer = errors.New("no answer from the backend within the wait and the TTL")

// env is the process's surroundings, replaceable in tests.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	goredis.SetLogger(quiet{}) // its dial retries would print; errors say it all, in one line
	e := env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "lock":
		return e.lock(args[1:])
	case "inspect":
		return e.inspect(args[1:])
	case "unlock":
		return e.unlock(args[1:])
	case "ping":
		return e.ping(args[1:])
	case "migrate":
		return e.migrate(args[1:])
	case "list":
		return e.list(args[1:])
	case "lead":
		return e.lead(args[1:])
	case "leader":
		return e.leader(args[1:])
	case "version":
		fmt.Fprintln(stdout, "xsync", version())
		return exitOK
	case guardCommand:
		return e.guard(args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "xsync: unknown command %q (want lock, lead, leader, inspect, list, unlock, ping, migrate or version; see xsync help)\n", args[0])
	return exitUsage
}

// flags returns a flag set for cmd with the shared --url flag.
func (e env) flags(cmd string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("xsync "+cmd, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprintf(e.stderr, "usage: see xsync help\n") }
	u := fs.String("url", os.Getenv("XSYNC_URL"), "backend URL (default $XSYNC_URL)")
	return fs, u
}

// backend opens the backend of rawURL and names it for messages (the URL
// without its password or options).
func (e env) backend(ctx context.Context, rawURL string) (*xsync.Client, func(), string, int) {
	if rawURL == "" {
		fmt.Fprintln(e.stderr, "xsync: no backend: give --url or set XSYNC_URL (for example redis://localhost:6379)")
		return nil, nil, "", exitUsage
	}
	name := rawURL
	if u, err := url.Parse(rawURL); err == nil {
		u.User, u.RawQuery, u.Fragment = nil, "", ""
		if name = u.String(); u.Host == "" && u.Path == "" {
			name = u.Scheme + "://" // mem://, not "mem:"
		}
	} else {
		name = "(unparsable URL)"
	}
	l, closer, err := xsync.Open(ctx, rawURL)
	if err != nil {
		return nil, nil, "", e.failed(err) // matches ErrInvalid: a usage error
	}
	return xsync.NewClient(l, xsync.WithName(name)), func() { closer.Close() }, name, exitOK
}

// failed reports err (which names the key and the backend) in one line
// and returns the exit code for it.
func (e env) failed(err error) int {
	fmt.Fprintf(e.stderr, "xsync: %s\n", oneLine(err))
	if errors.Is(err, xsync.ErrInvalid) {
		return exitUsage
	}
	return exitUnavailable
}

func (e env) lock(args []string) int {
	fs, rawURL := e.flags("lock")
	ttl := fs.Duration("ttl", 30*time.Second, "lock TTL")
	var wait waitFlag
	fs.Var(&wait, "wait", "how long to wait for the lock, or forever")
	owner := fs.String("owner", "", "owner text shown by inspect")
	atLeast := fs.Duration("hold-at-least", 0, "keep the lock at least this long")
	killAfter := fs.Duration("kill-after", 10*time.Second, "SIGKILL this long after SIGTERM")
	verbose := fs.Bool("verbose", false, "say when the wait changes")
	kf := kindFlags{permits: fs.Int("permits", 0, "take a permit of a semaphore of N"),
		read: fs.Bool("read", false, "take the read lock"), write: fs.Bool("write", false, "take the write lock")}
	pos, argv, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 || len(argv) == 0 {
		fmt.Fprintln(e.stderr, "xsync lock: want KEY -- COMMAND [ARGS...]")
		return exitUsage
	}
	key := pos[0]
	kind, err := kf.choose("xsync lock")
	if err != nil {
		fmt.Fprintf(e.stderr, "xsync lock: %v\n", err)
		return exitUsage
	}
	if *ttl < time.Second || *atLeast < 0 || *killAfter < 0 {
		fmt.Fprintln(e.stderr, "xsync lock: --ttl must be at least 1s; --hold-at-least and --kill-after must be >= 0")
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, closeBackend, name, code := e.backend(ctx, *rawURL)
	if code != exitOK {
		return code
	}
	defer closeBackend()
	opts := []xsync.AcquireOption{xsync.WithTTL(*ttl), xsync.WithWait(wait.d), xsync.WithAutoExtend(0), xsync.WithHoldAtLeast(*atLeast)}
	if *owner != "" {
		opts = append(opts, xsync.WithOwner(*owner))
	}
	if *verbose {
		c = e.verboseClient(c, name, key)
	}
	// An attempt that has not answered by the end of the wait plus a TTL
	// would grant nothing usable: a frozen server must not keep a cron
	// job waiting for ever (an etcd client waits as long as it is let).
	actx, cancel := ctx, context.CancelFunc(func() {})
	if wait.d != xsync.WaitForever {
		actx, cancel = context.WithTimeoutCause(ctx, wait.d+*ttl, errNoAnswer)
	}
	lease, err := acquire(actx, c, kind, key, opts)
	cancel()
	switch {
	case err == nil:
	case errors.Is(context.Cause(actx), errNoAnswer) && ctx.Err() == nil:
		fmt.Fprintf(e.stderr, "xsync: lock %s on %s: %v (%v)\n", keys.Short(key), name, errNoAnswer, wait.d+*ttl)
		return exitUnavailable
	case xsync.IsMissingLockErr(err):
		fmt.Fprintf(e.stderr, "xsync: lock %s on %s: %s held by someone else (waited %v)\n", keys.Short(key), name, kind, &wait)
		return exitBusy
	default:
		return e.failed(err)
	}
	stop() // from here on, signals go to the command
	if *verbose {
		fmt.Fprintf(e.stderr, "xsync: took %s of %s on %s, token %d\n", kind, keys.Short(key), name, lease.Token())
	}
	code = e.runLocked(lease, key, argv, *killAfter)
	rctx, cancel := context.WithTimeout(context.Background(), min(*ttl, 5*time.Second))
	defer cancel()
	if _, err := lease.Release(rctx); err != nil {
		fmt.Fprintf(e.stderr, "xsync: %s (it expires after its TTL)\n", oneLine(err))
	}
	return code
}

// acquire takes key's lock of kind on c.
func acquire(ctx context.Context, c *xsync.Client, kind lockKind, key string, opts []xsync.AcquireOption) (*xsync.Lease, error) {
	switch {
	case kind.name == "semaphore":
		return c.Semaphore(key, kind.permits).Acquire(ctx, opts...)
	case kind.name == "rwlock" && kind.write:
		return c.RWLock(key).AcquireWrite(ctx, opts...)
	case kind.name == "rwlock":
		return c.RWLock(key).AcquireRead(ctx, opts...)
	}
	return c.Acquire(ctx, key, opts...)
}

// runLocked runs argv in a process group of its own while the lease holds,
// forwards SIGINT and SIGTERM to it, and stops it if the lease is lost.
// The group's leader is a guard (see guard.go) that stops the group if
// this process dies.
func (e env) runLocked(lease *xsync.Lease, key string, argv []string, killAfter time.Duration) int {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	cmd, err := guarded(argv, killAfter)
	if err != nil {
		fmt.Fprintf(e.stderr, "xsync: start %s: %v\n", argv[0], err)
		return exitNoStart
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "XSYNC_KEY="+key, "XSYNC_TOKEN="+strconv.FormatInt(int64(lease.Token()), 10))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	dieWithParent(cmd.SysProcAttr, syscall.SIGTERM) // the guard stops the group, then itself
	exited, err := startLocked(cmd)
	if err != nil {
		fmt.Fprintf(e.stderr, "xsync: start %s: %v\n", argv[0], err)
		return exitNoStart
	}
	group := func(sig syscall.Signal) { _ = syscall.Kill(-cmd.Process.Pid, sig) }
	var lost atomic.Bool
	var kill <-chan time.Time
	for {
		select {
		case err := <-exited:
			if lost.Load() {
				return exitLost
			}
			return exitCode(err)
		case s := <-sigs:
			group(s.(syscall.Signal))
		case <-lease.Done():
			if lost.Swap(true) {
				continue
			}
			fmt.Fprintf(e.stderr, "xsync: lock %s lost while the command ran (%s): stopping it\n", keys.Short(key), oneLine(lease.Err()))
			group(syscall.SIGTERM)
			kill = time.After(killAfter)
		case <-kill:
			group(syscall.SIGKILL)
		}
	}
}

// oneLine is err's message on one line, even where errors were joined
// (Redlock's nodes), without a leading "xsync: ".
func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimPrefix(err.Error(), "xsync: "), "\n", "; ")
}

// exitCode is the shell's view of how the command ended.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return exitNoStart
}

// verboseClient is c with an observer that reports the wait's changes:
// the lock held by someone else, the backend failing (and what it said),
// an attempt that ctx ended; one line each time the state changes, not
// one per attempt.
func (e env) verboseClient(c *xsync.Client, name, key string) *xsync.Client {
	start := time.Now()
	var mu sync.Mutex
	var last string
	return xsync.NewClient(c.Locker(), xsync.WithName(name), xsync.WithObserver(observerFunc(func(ev xsync.Event) {
		if ev.Kind != xsync.KindAttempt || ev.Outcome == xsync.OutcomeAcquired {
			return
		}
		state := "waiting: held by someone else"
		switch ev.Outcome {
		case xsync.OutcomeFailed:
			state = "waiting: the backend fails: " + oneLine(ev.Err)
		case xsync.OutcomeCtxEnded:
			state = "giving up"
		}
		mu.Lock()
		defer mu.Unlock()
		if state == last {
			return
		}
		last = state
		fmt.Fprintf(e.stderr, "xsync: %s on %s after %v: %s\n", keys.Short(key), name, time.Since(start).Round(time.Millisecond), state)
	})))
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

type observerFunc func(xsync.Event)

func (f observerFunc) Observe(_ context.Context, ev xsync.Event) { f(ev) }

func (e env) inspect(args []string) int {
	fs, rawURL := e.flags("inspect")
	asJSON := fs.Bool("json", false, "print JSON")
	kf := kindFlags{kind: fs.String("kind", "", "mutex, semaphore or rwlock"), permits: fs.Int("permits", 0, "a semaphore's limit, for its free permits")}
	pos, after, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 || after != nil {
		fmt.Fprintln(e.stderr, "xsync inspect: want one KEY")
		return exitUsage
	}
	kind, err := kf.choose("xsync inspect")
	if err != nil {
		fmt.Fprintf(e.stderr, "xsync inspect: %v\n", err)
		return exitUsage
	}
	key := pos[0]
	return e.oneShot(*rawURL, 10*time.Second, func(ctx context.Context, c *xsync.Client, _ string) int {
		info, err := inspectKind(ctx, c, kind, key)
		if err != nil {
			return e.failed(err)
		}
		if *asJSON {
			b, _ := json.Marshal(jsonInfo(info, kf.permits != nil && *kf.permits > 0))
			fmt.Fprintln(e.stdout, string(b))
		} else {
			e.printInfo(info, *kf.permits > 0)
		}
		if !info.Held {
			return exitFree
		}
		return exitOK
	})
}

// infoJSON is an Info as inspect --json and list --json print it.
type infoJSON struct {
	Kind    string       `json:"kind"`
	Key     string       `json:"key"`
	Held    bool         `json:"held"`
	Token   int64        `json:"token,omitempty"`
	TTL     float64      `json:"ttl_seconds,omitempty"`
	Owner   string       `json:"owner,omitempty"`
	Holders []holderJSON `json:"holders,omitempty"`
	Waiting int          `json:"waiting,omitempty"`
	Free    *int         `json:"free,omitempty"`
}

type holderJSON struct {
	Token int64   `json:"token"`
	TTL   float64 `json:"ttl_seconds"`
	Owner string  `json:"owner,omitempty"`
	Write bool    `json:"write,omitempty"`
}

func jsonInfo(in xsync.Info, free bool) infoJSON {
	out := infoJSON{Kind: in.Kind, Key: in.Key, Held: in.Held, Token: int64(in.Token), TTL: in.TTL.Seconds(), Owner: in.Owner, Waiting: in.Waiting}
	for _, h := range in.Holders {
		out.Holders = append(out.Holders, holderJSON{int64(h.Token), h.TTL.Seconds(), h.Owner, h.Write})
	}
	if free {
		out.Free = &in.Free
	}
	return out
}

// printInfo prints in for a person.
func (e env) printInfo(in xsync.Info, free bool) {
	what := in.Key
	if in.Kind != "mutex" {
		what = in.Kind + " " + in.Key
	}
	if !in.Held {
		fmt.Fprintf(e.stdout, "%s: free", what)
	} else {
		fmt.Fprintf(e.stdout, "%s: held", what)
	}
	if in.Waiting > 0 {
		fmt.Fprintf(e.stdout, ", %d waiting", in.Waiting)
	}
	if free {
		fmt.Fprintf(e.stdout, ", %d permits free", in.Free)
	}
	fmt.Fprintln(e.stdout)
	if in.Kind == "mutex" && in.Held {
		fmt.Fprintf(e.stdout, "token: %d\nttl: %v\nowner: %s\n", in.Token, in.TTL, in.Owner)
		return
	}
	for _, h := range in.Holders {
		role := "holder"
		switch {
		case in.Kind == "semaphore":
			role = "permit"
		case h.Write:
			role = "writer"
		case in.Kind == "rwlock":
			role = "reader"
		}
		fmt.Fprintf(e.stdout, "%s: token %d, ttl %v, owner %s\n", role, h.Token, h.TTL, h.Owner)
	}
}

func (e env) list(args []string) int {
	fs, rawURL := e.flags("list")
	asJSON := fs.Bool("json", false, "print JSON, one lock per line")
	limit := fs.Int("limit", 100, "list at most this many locks")
	pos, after, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) > 1 || after != nil || *limit < 1 {
		fmt.Fprintln(e.stderr, "xsync list: want at most one PREFIX, and --limit of at least 1")
		return exitUsage
	}
	prefix := ""
	if len(pos) == 1 {
		prefix = pos[0]
	}
	return e.oneShot(*rawURL, 30*time.Second, func(ctx context.Context, c *xsync.Client, name string) int {
		cursor, n := "", 0
		for {
			locks, next, err := c.List(ctx, prefix, cursor, min(*limit-n, xsync.MaxList))
			if err != nil {
				return e.failed(err)
			}
			for _, in := range locks {
				if *asJSON {
					b, _ := json.Marshal(jsonInfo(in, false))
					fmt.Fprintln(e.stdout, string(b))
					continue
				}
				e.printListed(in)
			}
			n += len(locks)
			if next == "" {
				return exitOK
			}
			if n >= *limit {
				fmt.Fprintf(e.stderr, "xsync: list on %s: more than %d locks; raise --limit to see them\n", name, *limit)
				return exitOK
			}
			cursor = next
		}
	})
}

// printListed prints one line per lock.
func (e env) printListed(in xsync.Info) {
	var holders []string
	for _, h := range in.Holders {
		s := fmt.Sprintf("%d (%v", h.Token, h.TTL.Round(time.Millisecond))
		if h.Write {
			s += ", writer"
		}
		if h.Owner != "" {
			s += ", " + h.Owner
		}
		holders = append(holders, s+")")
	}
	line := fmt.Sprintf("%-9s %s", in.Kind, strconv.Quote(in.Key))
	if len(holders) > 0 {
		line += " held by " + strings.Join(holders, ", ")
	}
	if in.Waiting > 0 {
		line += fmt.Sprintf("; %d waiting", in.Waiting)
	}
	fmt.Fprintln(e.stdout, line)
}

func (e env) unlock(args []string) int {
	fs, rawURL := e.flags("unlock")
	force := fs.Bool("force", false, "release whoever holds the lock (required)")
	yes := fs.Bool("yes", false, "do not ask")
	kf := kindFlags{kind: fs.String("kind", "", "mutex, semaphore or rwlock")}
	pos, after, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 || after != nil || !*force {
		fmt.Fprintln(e.stderr, "xsync unlock: want --force and one KEY (only an operator's forced release exists)")
		return exitUsage
	}
	kind, err := kf.choose("xsync unlock")
	if err != nil {
		fmt.Fprintf(e.stderr, "xsync unlock: %v\n", err)
		return exitUsage
	}
	key := pos[0]
	// No overall timeout: an operator may take time to answer. Each
	// call has its own.
	return e.oneShot(*rawURL, 0, func(ctx context.Context, c *xsync.Client, name string) int {
		call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 10*time.Second) }
		if !*yes && isTerminal(e.stdin) {
			cctx, cancel := call()
			info, err := inspectKind(cctx, c, kind, key)
			cancel()
			if err == nil && !info.Held {
				e.printInfo(info, false)
				return exitOK
			}
			fmt.Fprintf(e.stdout, "force-release %s %s on %s (%d holders, first token %d, owner %q)? [y/N] ", kind.name, key, name, len(info.Holders), info.Token, info.Owner)
			answer, _ := bufio.NewReader(e.stdin).ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
				fmt.Fprintln(e.stdout, "not released")
				return exitOK
			}
		}
		cctx, cancel := call()
		defer cancel()
		var freed bool
		var err error
		switch kind.name {
		case "election":
			freed, err = c.Election(key).ForceRelease(cctx)
		case "semaphore":
			freed, err = c.Semaphore(key, 1).ForceRelease(cctx)
		case "rwlock":
			freed, err = c.RWLock(key).ForceRelease(cctx)
		default:
			freed, err = c.ForceRelease(cctx, key)
		}
		if err != nil {
			return e.failed(err)
		}
		if freed {
			fmt.Fprintf(e.stdout, "%s: released\n", key)
		} else {
			fmt.Fprintf(e.stdout, "%s: was not held\n", key)
		}
		return exitOK
	})
}

// inspectKind inspects key's lock of kind.
func inspectKind(ctx context.Context, c *xsync.Client, kind lockKind, key string) (xsync.Info, error) {
	switch kind.name {
	case "election":
		l, err := c.Election(key).Leader(ctx)
		in := xsync.Info{Kind: "election", Key: key, Held: l.Held, Token: l.Epoch, TTL: l.TTL, Owner: l.Identity}
		if l.Held {
			in.Holders = []xsync.Holder{{Token: l.Epoch, TTL: l.TTL, Owner: l.Identity}}
		}
		return in, err
	case "semaphore":
		return c.Semaphore(key, max(kind.permits, 1)).Inspect(ctx)
	case "rwlock":
		return c.RWLock(key).Inspect(ctx)
	}
	return c.Inspect(ctx, key)
}

// oneShot runs f with a client of rawURL (and its name for messages),
// under a context that ends on SIGINT or SIGTERM or after timeout (0:
// no timeout).
func (e env) oneShot(rawURL string, timeout time.Duration, f func(ctx context.Context, c *xsync.Client, name string) int) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, closeBackend, name, code := e.backend(ctx, rawURL)
	if code != exitOK {
		return code
	}
	defer closeBackend()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return f(ctx, c, name)
}

// isTerminal reports whether r is a terminal (not merely a character
// device: /dev/null is one too).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), ioctlReadTermios)
	return err == nil
}

// migrate creates what the backend keeps its locks in, where it needs
// that (PostgreSQL's table); elsewhere it says there is nothing to do.
func (e env) migrate(args []string) int {
	fs, rawURL := e.flags("migrate")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the migration")
	pos, after, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 0 || after != nil || *timeout <= 0 {
		fmt.Fprintln(e.stderr, "xsync migrate: takes no arguments, and a --timeout > 0")
		return exitUsage
	}
	return e.oneShot(*rawURL, *timeout, func(ctx context.Context, c *xsync.Client, name string) int {
		m, ok := c.Locker().(interface{ Migrate(context.Context) error })
		if !ok {
			fmt.Fprintf(e.stdout, "%s: nothing to migrate\n", name)
			return exitOK
		}
		if err := m.Migrate(ctx); err != nil {
			return e.failed(err)
		}
		fmt.Fprintf(e.stdout, "%s: migrated\n", name)
		return exitOK
	})
}

func (e env) ping(args []string) int {
	fs, rawURL := e.flags("ping")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for an answer")
	pos, after, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 0 || after != nil || *timeout <= 0 {
		fmt.Fprintln(e.stderr, "xsync ping: takes no arguments, and a --timeout > 0")
		return exitUsage
	}
	return e.oneShot(*rawURL, *timeout, func(ctx context.Context, c *xsync.Client, name string) int {
		if err := c.Ping(ctx); err != nil {
			return e.failed(err)
		}
		fmt.Fprintf(e.stdout, "%s: ok\n", name)
		return exitOK
	})
}
