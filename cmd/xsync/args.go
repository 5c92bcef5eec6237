package main

import (
	"errors"
	"flag"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/xsync-go/xsync"
)

// parse parses args with fs, also where flags follow the positional
// arguments (xsync lock KEY --ttl 1m -- CMD); everything after "--" is
// left alone. It returns the positional arguments before "--" and the
// words after it (nil if there is no "--").
func parse(fs *flag.FlagSet, args []string) (positional, after []string, err error) {
	before := args
	for i, a := range args {
		if a == "--" {
			before, after = args[:i], append([]string{}, args[i+1:]...)
			break
		}
	}
	for {
		if err := fs.Parse(before); err != nil {
			return nil, nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, after, nil
		}
		positional = append(positional, rest[0])
		before = rest[1:]
	}
}

// waitFlag is --wait: a duration >= 0, or "forever".
type waitFlag struct{ d time.Duration }

func (w *waitFlag) String() string {
	if w.d == xsync.WaitForever {
		return "forever"
	}
	return w.d.String()
}

func (w *waitFlag) Set(s string) error {
	if s == "forever" {
		w.d = xsync.WaitForever
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as 10s, or forever")
	}
	if d < 0 {
		return errors.New(`a negative wait: to wait until stopped, say "forever"`)
	}
	w.d = d
	return nil
}

// kindFlags are the flags that choose the kind of lock.
type kindFlags struct {
	kind        *string
	permits     *int
	read, write *bool
}

// lockKind is a kind of lock as the command takes and shows it.
type lockKind struct {
	name    string // mutex, semaphore, rwlock
	permits int    // a semaphore's
	write   bool   // a read-write lock's side
}

// choose is the kind the flags ask for; what says which command asks.
func (k kindFlags) choose(what string) (lockKind, error) {
	n := 0
	var lk lockKind
	if k.permits != nil && *k.permits != 0 {
		if *k.permits < 1 || *k.permits > xsync.MaxPermits {
			return lockKind{}, fmt.Errorf("--permits %d: want 1 to %d", *k.permits, xsync.MaxPermits)
		}
		n, lk = n+1, lockKind{name: "semaphore", permits: *k.permits}
	}
	if k.read != nil && *k.read {
		n, lk = n+1, lockKind{name: "rwlock"}
	}
	if k.write != nil && *k.write {
		n, lk = n+1, lockKind{name: "rwlock", write: true}
	}
	if k.kind != nil && *k.kind != "" {
		switch *k.kind {
		case "mutex", "semaphore", "rwlock", "election":
		default:
			return lockKind{}, fmt.Errorf("--kind %q: want mutex, semaphore, rwlock or election", *k.kind)
		}
		if n > 0 && lk.name != *k.kind {
			return lockKind{}, fmt.Errorf("--kind %s contradicts the other flags", *k.kind)
		}
		if n == 0 {
			lk = lockKind{name: *k.kind, permits: 1}
			n = 1
		}
	}
	if n > 1 {
		return lockKind{}, fmt.Errorf("%s: give one of --permits, --read and --write", what)
	}
	if n == 0 {
		lk.name = "mutex"
	}
	return lk, nil
}

// String is the kind as messages show it.
func (k lockKind) String() string {
	switch {
	case k.name == "semaphore":
		return fmt.Sprintf("a permit of %d", k.permits)
	case k.name == "rwlock" && k.write:
		return "the write lock"
	case k.name == "rwlock":
		return "a read lock"
	}
	return "the lock"
}

// version is the module's version as the build recorded it.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && (v == "" || v == "(devel)") {
			v = "(devel) " + s.Value
		}
	}
	if v == "" {
		v = "(devel)"
	}
	return strings.TrimSpace(v + " " + info.GoVersion)
}
