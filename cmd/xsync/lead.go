package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/xsync-go/xsync"
	"github.com/xsync-go/xsync/internal/keys"
)

// lead runs the command only while this process leads the election, and
// campaigns again when its term is lost.
func (e env) lead(args []string) int {
	fs, rawURL := e.flags("lead")
	ttl := fs.Duration("ttl", 30*time.Second, "term TTL, renewed every TTL/3")
	owner := fs.String("owner", "", "identity shown by xsync leader after host/pid")
	killAfter := fs.Duration("kill-after", 10*time.Second, "SIGKILL this long after SIGTERM")
	verbose := fs.Bool("verbose", false, "say when this process leads and when it lost")
	pos, argv, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 || len(argv) == 0 {
		fmt.Fprintln(e.stderr, "xsync lead: want NAME -- COMMAND [ARGS...]")
		return exitUsage
	}
	if *ttl < time.Second || *killAfter < 0 {
		fmt.Fprintln(e.stderr, "xsync lead: --ttl must be at least 1s; --kill-after must be >= 0")
		return exitUsage
	}
	name := pos[0]
	setup, stopSetup := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	c, closeBackend, backendName, code := e.backend(setup, *rawURL)
	stopSetup()
	if code != exitOK {
		return code
	}
	defer closeBackend()
	opts := []xsync.AcquireOption{xsync.WithTTL(*ttl)}
	if *owner != "" {
		opts = append(opts, xsync.WithOwner(*owner))
	}
	el := c.Election(name)
	for {
		// While campaigning, SIGINT and SIGTERM end the campaign; while the
		// command runs, they go to it.
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		term, err := el.Campaign(ctx, opts...)
		stopped := ctx.Err() != nil
		stop()
		switch {
		case stopped:
			// A standby told to stop has done nothing: a clean exit.
			fmt.Fprintf(e.stderr, "xsync: lead %s on %s: stopped while campaigning\n", keys.Short(name), backendName)
			return exitOK
		case err != nil && errors.Is(err, xsync.ErrInvalid):
			return e.failed(err)
		case err != nil:
			// The backend failed: say so, and campaign again.
			fmt.Fprintf(e.stderr, "xsync: %s (campaigning again)\n", oneLine(err))
			pause, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			select {
			case <-pause.Done():
				stop()
				return exitOK
			case <-time.After(time.Second): // the backend is down: try again soon
			}
			stop()
			continue
		}
		if *verbose {
			fmt.Fprintf(e.stderr, "xsync: leading %s on %s, epoch %d\n", keys.Short(name), backendName, term.Epoch())
		}
		code := e.runLocked(term.Lease, name, argv, *killAfter)
		rctx, cancel := context.WithTimeout(context.Background(), min(*ttl, 5*time.Second))
		term.Resign(rctx)
		cancel()
		if code != exitLost {
			return code
		}
		fmt.Fprintf(e.stderr, "xsync: lead %s on %s: leadership lost; campaigning again\n", keys.Short(name), backendName)
	}
}

// leader prints who leads the election.
func (e env) leader(args []string) int {
	fs, rawURL := e.flags("leader")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, after, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 || after != nil {
		fmt.Fprintln(e.stderr, "xsync leader: want one NAME")
		return exitUsage
	}
	name := pos[0]
	return e.oneShot(*rawURL, 10*time.Second, func(ctx context.Context, c *xsync.Client, _ string) int {
		l, err := c.Election(name).Leader(ctx)
		if err != nil {
			return e.failed(err)
		}
		if *asJSON {
			b, _ := json.Marshal(struct {
				Name     string  `json:"name"`
				Held     bool    `json:"held"`
				Epoch    int64   `json:"epoch,omitempty"`
				Identity string  `json:"identity,omitempty"`
				TTL      float64 `json:"ttl_seconds,omitempty"`
			}{name, l.Held, int64(l.Epoch), l.Identity, l.TTL.Seconds()})
			fmt.Fprintln(e.stdout, string(b))
		} else if l.Held {
			fmt.Fprintf(e.stdout, "%s: led by %s, epoch %d, ttl %v\n", name, l.Identity, l.Epoch, l.TTL)
		} else {
			fmt.Fprintf(e.stdout, "%s: no leader\n", name)
		}
		if !l.Held {
			return exitFree
		}
		return exitOK
	})
}
