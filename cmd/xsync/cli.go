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
	"sync/atomic"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"

	"github.com/xsync-go/xsync"
	_ "github.com/xsync-go/xsync/backend/etcd"    // etcd://
	_ "github.com/xsync-go/xsync/backend/memory"  // mem://
	_ "github.com/xsync-go/xsync/backend/redis"   // redis://, rediss://, redis+cluster://, redis+sentinel://
	_ "github.com/xsync-go/xsync/backend/redlock" // redlock://
	"github.com/xsync-go/xsync/internal/keys"
)

// Exit codes. The command's own code passes through when it ran.
const (
	exitOK          = 0
	exitUsage       = 64  // EX_USAGE: bad flags, arguments or URL
	exitUnavailable = 69  // EX_UNAVAILABLE: the backend could not be reached
	exitBusy        = 75  // EX_TEMPFAIL: the lock was held for the whole wait
	exitLost        = 79  // the lock was lost while the command ran; the command was stopped
	exitNoStart     = 127 // the command could not be started
)

const usage = `xsync: a distributed flock for shell scripts and cron jobs, on Redis,
Redlock, etcd or memory.

Usage:
  xsync lock [flags] KEY -- COMMAND [ARGS...]
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
                             like flock -n (default 0); an attempt still
                             unanswered after the wait plus the TTL exits 69
        --owner TEXT         shown by inspect after host/pid
        --hold-at-least D    keep the lock until D after it was taken, even
                             if COMMAND ends earlier (once-per-period jobs)
        --kill-after D       SIGKILL this long after SIGTERM (default 10s)
        --verbose            say what happens while waiting
  xsync inspect [--url URL] [--json] KEY
      Whether KEY is held, its token, time left on the server, owner.
  xsync unlock --force [--url URL] [--yes] KEY
      Release KEY whoever holds it (an operator's action); waiters wake,
      and tokens keep growing. Asks first, unless --yes or stdin is not a
      terminal.
  xsync ping [--url URL]
      Exit 0 if the backend can serve locks now.

URLs: mem://, redis://[[user]:pass@]host:6379[/db], rediss://...,
redis+cluster://h1:6379,h2:6379, redis+sentinel://s1:26379,s2:26379/primary,
redlock://h1:6379,h2:6379,h3:6379, etcd://h1:2379[,h2:2379...]
(see the backend packages' documentation for options).

Exit codes:
  COMMAND's own code   lock: COMMAND ran (128+N if a signal N killed it)
  0                    inspect, unlock, ping: done
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
	case guardCommand:
		return e.guard(args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "xsync: unknown command %q (want lock, inspect, unlock or ping; see xsync help)\n", args[0])
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
	wait := fs.Duration("wait", 0, "how long to wait for the lock")
	owner := fs.String("owner", "", "owner text shown by inspect")
	atLeast := fs.Duration("hold-at-least", 0, "keep the lock at least this long")
	killAfter := fs.Duration("kill-after", 10*time.Second, "SIGKILL this long after SIGTERM")
	verbose := fs.Bool("verbose", false, "say what happens while waiting")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) < 3 || rest[1] != "--" {
		fmt.Fprintln(e.stderr, "xsync lock: want KEY -- COMMAND [ARGS...]")
		return exitUsage
	}
	key, argv := rest[0], rest[2:]
	if *ttl < time.Second || *wait < 0 || *atLeast < 0 || *killAfter < 0 {
		fmt.Fprintln(e.stderr, "xsync lock: --ttl must be at least 1s; --wait, --hold-at-least and --kill-after must be >= 0")
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, closeBackend, name, code := e.backend(ctx, *rawURL)
	if code != exitOK {
		return code
	}
	defer closeBackend()
	opts := []xsync.AcquireOption{xsync.WithTTL(*ttl), xsync.WithWait(*wait), xsync.WithAutoExtend(0), xsync.WithHoldAtLeast(*atLeast)}
	if *owner != "" {
		opts = append(opts, xsync.WithOwner(*owner))
	}
	if *verbose {
		c = e.verboseClient(c, name, key)
	}
	// An attempt that has not answered by the end of the wait plus a TTL
	// would grant nothing usable: a frozen server must not keep a cron
	// job waiting for ever (an etcd client waits as long as it is let).
	actx, cancel := context.WithTimeoutCause(ctx, *wait+*ttl, errNoAnswer)
	lease, err := c.Acquire(actx, key, opts...)
	cancel()
	switch {
	case err == nil:
	case errors.Is(context.Cause(actx), errNoAnswer) && ctx.Err() == nil:
		fmt.Fprintf(e.stderr, "xsync: lock %s on %s: %v (%v)\n", keys.Short(key), name, errNoAnswer, *wait+*ttl)
		return exitUnavailable
	case xsync.IsMissingLockErr(err):
		fmt.Fprintf(e.stderr, "xsync: lock %s on %s: held by someone else (waited %v)\n", keys.Short(key), name, *wait)
		return exitBusy
	default:
		return e.failed(err)
	}
	stop() // from here on, signals go to the command
	if *verbose {
		fmt.Fprintf(e.stderr, "xsync: locked %s on %s, token %d\n", keys.Short(key), name, lease.Token())
	}
	code = e.runLocked(lease, key, argv, *killAfter)
	rctx, cancel := context.WithTimeout(context.Background(), min(*ttl, 5*time.Second))
	defer cancel()
	if _, err := lease.Release(rctx); err != nil {
		fmt.Fprintf(e.stderr, "xsync: release %s on %s: %s (it expires after its TTL)\n", keys.Short(key), name, oneLine(err))
	}
	return code
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

// verboseClient is c with an observer that reports the wait.
func (e env) verboseClient(c *xsync.Client, name, key string) *xsync.Client {
	start := time.Now()
	var n atomic.Int32
	return xsync.NewClient(c.Locker(), xsync.WithName(name), xsync.WithObserver(observerFunc(func(ev xsync.Event) {
		if ev.Kind != xsync.KindAttempt {
			return
		}
		k := n.Add(1)
		fmt.Fprintf(e.stderr, "xsync: %s on %s: attempt %d after %v: %s\n", keys.Short(key), name, k,
			time.Since(start).Round(time.Millisecond), ev.Outcome)
	})))
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

type observerFunc func(xsync.Event)

func (f observerFunc) Observe(_ context.Context, ev xsync.Event) { f(ev) }

func (e env) inspect(args []string) int {
	fs, rawURL := e.flags("inspect")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(e.stderr, "xsync inspect: want one KEY")
		return exitUsage
	}
	key := fs.Arg(0)
	return e.oneShot(*rawURL, 10*time.Second, func(ctx context.Context, c *xsync.Client, _ string) int {
		info, err := c.Inspect(ctx, key)
		if err != nil {
			return e.failed(err)
		}
		if *asJSON {
			out := struct {
				Key   string  `json:"key"`
				Held  bool    `json:"held"`
				Token int64   `json:"token,omitempty"`
				TTL   float64 `json:"ttl_seconds,omitempty"`
				Owner string  `json:"owner,omitempty"`
			}{key, info.Held, int64(info.Token), info.TTL.Seconds(), info.Owner}
			b, _ := json.Marshal(out)
			fmt.Fprintln(e.stdout, string(b))
			return exitOK
		}
		if !info.Held {
			fmt.Fprintf(e.stdout, "%s: free\n", key)
			return exitOK
		}
		fmt.Fprintf(e.stdout, "%s: held\ntoken: %d\nttl: %v\nowner: %s\n", key, info.Token, info.TTL, info.Owner)
		return exitOK
	})
}

func (e env) unlock(args []string) int {
	fs, rawURL := e.flags("unlock")
	force := fs.Bool("force", false, "release whoever holds the lock (required)")
	yes := fs.Bool("yes", false, "do not ask")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 || !*force {
		fmt.Fprintln(e.stderr, "xsync unlock: want --force and one KEY (only an operator's forced release exists)")
		return exitUsage
	}
	key := fs.Arg(0)
	// No overall timeout: an operator may take time to answer. Each
	// call has its own.
	return e.oneShot(*rawURL, 0, func(ctx context.Context, c *xsync.Client, name string) int {
		call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 10*time.Second) }
		if !*yes && isTerminal(e.stdin) {
			cctx, cancel := call()
			info, err := c.Inspect(cctx, key)
			cancel()
			if err == nil && !info.Held {
				fmt.Fprintf(e.stdout, "%s: free\n", key)
				return exitOK
			}
			fmt.Fprintf(e.stdout, "force-release %s on %s (token %d, owner %q)? [y/N] ", key, name, info.Token, info.Owner)
			answer, _ := bufio.NewReader(e.stdin).ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
				fmt.Fprintln(e.stdout, "not released")
				return exitOK
			}
		}
		cctx, cancel := call()
		defer cancel()
		freed, err := c.ForceRelease(cctx, key)
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

func (e env) ping(args []string) int {
	fs, rawURL := e.flags("ping")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(e.stderr, "xsync ping: takes no arguments")
		return exitUsage
	}
	return e.oneShot(*rawURL, 5*time.Second, func(ctx context.Context, c *xsync.Client, name string) int {
		if err := c.Ping(ctx); err != nil {
			return e.failed(err)
		}
		fmt.Fprintf(e.stdout, "%s: ok\n", name)
		return exitOK
	})
}
