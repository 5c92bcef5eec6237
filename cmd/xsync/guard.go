package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/xsync-go/xsync/internal/keys"
)

// The command that xsync lock runs must not outlive the xsync process
// that holds its lock: once that process is gone nobody renews the lock,
// and another holder can take it while the command still runs. flock(1)
// never has this problem, since the kernel drops its lock with the last
// process that holds the file open; a distributed lock needs help.
//
// So xsync lock starts the command through a guard: xsync itself, run
// again as "xsync _guard", the leader of the command's process group. The
// guard starts the command in its group and waits for it. When the xsync
// process that started the guard dies (even by SIGKILL), the guard stops
// the whole group: SIGTERM, then SIGKILL after --kill-after, as for a
// lost lock. On Linux the kernel tells the guard at once (a parent-death
// signal); elsewhere the guard notices within guardPoll that its parent
// changed. Signals that xsync sends to the group (passed on, or for a
// lost lock) reach the command directly; the guard ignores them while its
// parent lives.
//
// A parent-death signal is sent when the thread that started the child
// ends, not the process: Go may end a thread while the process goes on.
// Each start therefore happens on a goroutine locked to its thread, which
// stays locked until the child is waited for (startLocked).

// guardCommand is the hidden subcommand of the guard.
const guardCommand = "_guard"

// guardPoll is how often the guard checks that its parent lives, where
// the kernel does not signal the parent's death.
const guardPoll = 250 * time.Millisecond

// guarded returns the command that runs argv through a guard for the
// xsync process calling it.
func guarded(argv []string, killAfter time.Duration) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the xsync executable for the command's guard: %w", err)
	}
	args := append([]string{guardCommand, strconv.Itoa(os.Getpid()), killAfter.String(), "--"}, argv...)
	return exec.Command(self, args...), nil
}

// startLocked starts cmd on a goroutine locked to its OS thread, which
// stays so until cmd has exited, so that a parent-death signal set on
// cmd fires only when this process ends. The channel gets cmd.Wait's
// result.
func startLocked(cmd *exec.Cmd) (<-chan error, error) {
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			runtime.UnlockOSThread()
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
		runtime.UnlockOSThread()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}

// guard is "xsync _guard PARENT KILL-AFTER -- COMMAND [ARGS...]": it runs
// COMMAND in its own process group and stops the group if PARENT dies.
// It exits with COMMAND's code (128+N if a signal N killed it), or 127 if
// COMMAND could not be started.
func (e env) guard(args []string) int {
	if len(args) < 4 || args[2] != "--" {
		fmt.Fprintln(e.stderr, "xsync _guard: for xsync lock's own use")
		return exitUsage
	}
	parent, err := strconv.Atoi(args[0])
	killAfter, err2 := time.ParseDuration(args[1])
	if err != nil || err2 != nil {
		fmt.Fprintln(e.stderr, "xsync _guard: for xsync lock's own use")
		return exitUsage
	}
	argv := args[3:]
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if os.Getppid() != parent {
		return exitLost // gone before the command could start
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	dieWithParent(cmd.SysProcAttr, syscall.SIGKILL) // should the guard itself be killed
	exited, err := startLocked(cmd)
	if err != nil {
		fmt.Fprintf(e.stderr, "xsync: start %s: %v\n", argv[0], err)
		return exitNoStart
	}
	poll := time.NewTicker(guardPoll)
	defer poll.Stop()
	orphaned := false
	var kill <-chan time.Time
	for {
		select {
		case err := <-exited:
			return exitCode(err)
		case <-sigs:
		case <-poll.C:
		case <-kill:
			_ = syscall.Kill(0, syscall.SIGKILL) // the group, this guard included
		}
		if !orphaned && os.Getppid() != parent {
			orphaned = true
			fmt.Fprintf(e.stderr, "xsync: the xsync process that held the lock on %s is gone: stopping the command\n",
				keys.Short(os.Getenv("XSYNC_KEY")))
			_ = syscall.Kill(0, syscall.SIGTERM) // the group; this guard ignores it
			kill = time.After(killAfter)
		}
	}
}
