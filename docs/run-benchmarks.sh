#!/usr/bin/env bash
# run-benchmarks.sh - run every benchmark of the module against real
# servers (containers on the host network: no docker-proxy in the round
# trip) and write raw results and benchstat tables to docs/bench/.
#
#   COUNT=6 docs/run-benchmarks.sh
#
# Ratios come from the interleaved BenchmarkPaired loops (benchutil.Interleave),
# not from comparing separate benchmarks. Needs Docker; builds the test
# images if missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
COUNT=${COUNT:-6}
out=docs/bench
mkdir -p "$out"
set -a; eval "$(internal/itest/build-images.sh)"; set +a
export TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 XSYNC_TEST_NETWORK=host
GOFLAGS= go install golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
bs="$(go env GOPATH)/bin/benchstat"
run() { # run NAME PACKAGE BENCHTIME
  go test -run '^$' -bench . -benchmem -count="$COUNT" -benchtime="$3" "$2" > "$out/$1.txt"
  "$bs" "$out/$1.txt" > "$out/$1.benchstat.txt"
  echo "== $1"; cat "$out/$1.benchstat.txt"
}
{
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(go version)"
  echo "date: $(date -u +%F)"
} > "$out/machine.txt"
run core ./ 1s
run memory ./backend/memory/ 1s
run redis ./backend/redis/ 2s
run redlock ./backend/redlock/ 2s
run etcd ./backend/etcd/ 3s
