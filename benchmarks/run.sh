#!/usr/bin/env bash
# run.sh - the one command behind docs/peers.md: starts the servers (through
# the benchmarks themselves, with testcontainers), runs every workload over
# ROUNDS rounds, and writes raw output, benchstat tables, docs/peers.md and
# docs/peers.svg. Needs Docker; builds the test images if missing.
#
#   ROUNDS=5 benchmarks/run.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROUNDS=${ROUNDS:-5}
out=../docs/peers
mkdir -p "$out"
set -a; eval "$(../internal/itest/build-images.sh)"; set +a
export TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 XSYNC_TEST_NETWORK=host
GOFLAGS= go install golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
bs="$(go env GOPATH)/bin/benchstat"
{
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(go version | awk '{print $3}'), $(date -u +%F)."
  echo "Libraries: $(go list -m -f '{{.Path}} {{.Version}}' github.com/go-redsync/redsync/v4 github.com/bsm/redislock go.etcd.io/etcd/client/v3 github.com/redis/go-redis/v9 github.com/jackc/pgx/v5 | paste -sd, -)."
} > "$out/machine.txt"
go test -run '^$' -bench 'Uncontended' -benchtime=2s -count="$ROUNDS" . > "$out/uncontended.txt"
go test -run '^$' -bench 'Contended8' -benchtime=400x -count="$ROUNDS" . > "$out/contended.txt"
go test -run '^$' -bench 'ParallelKeys' -benchtime=10x -count="$ROUNDS" . > "$out/parallel.txt"
go test -run '^$' -bench 'ServerCost' -benchtime=3000x -count="$ROUNDS" . > "$out/servercost.txt"
go test -run '^$' -bench 'Waiters' -benchtime=200x -count="$ROUNDS" -timeout=60m . > "$out/waiters.txt"
go test -run '^$' -bench 'RedlockTwoPaused' -benchtime=3x -count=1 . > "$out/paused.txt"
for f in uncontended contended parallel servercost waiters paused; do "$bs" "$out/$f.txt" > "$out/$f.benchstat.txt"; done
go run ./report -in "$out" -md ../docs/peers.md -svg ../docs/peers.svg
echo "wrote docs/peers.md and docs/peers.svg"
