// Command xsync is a distributed flock(1) for cron jobs and shell scripts,
// on every xsync backend: it runs a command while holding a lock, and
// inspects, force-releases and pings locks.
//
//	go install github.com/xsync-go/xsync/cmd/xsync@latest
//
//	export XSYNC_URL=redis://localhost:6379
//	xsync lock --ttl 30s --wait 0 nightly-report -- ./report.sh
//	xsync inspect nightly-report
//	xsync unlock --force nightly-report
//	xsync ping
//
// Run "xsync help" for the commands, their flags and the exit codes.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
