#!/usr/bin/env bash
# run-soak.sh - soak every history cell (backend × fault) and write
# docs/safety.md from the checked histories.
#
#   docs/run-soak.sh            # 60s per cell (about 12 minutes on 2 cores)
#   DURATION=5m docs/run-soak.sh
#
# Each backend package's TestHistory (and redis's TestHistoryFailover, on
# Cluster and Sentinel) runs its cells with
# XSYNC_HISTORY_DURATION per cell and appends one JSON report per cell to
# XSYNC_HISTORY_REPORT; internal/safetyreport renders them. Without the
# race detector: the soak measures the histories, CI checks the races.
# Needs Docker; builds the test images if missing. A cell that breaks its
# documented claims fails its test and is marked BREACH in the report.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DURATION=${DURATION:-60s}
set -a; eval "$(internal/itest/build-images.sh)"; set +a
export TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1
reports=$(mktemp)
trap 'rm -f "$reports"' EXIT
cmd="XSYNC_HISTORY_DURATION=$DURATION go test -count=1 -timeout 3h -run 'TestHistory(Failover)?\$' ./backend/..."
status=0
XSYNC_HISTORY_DURATION=$DURATION XSYNC_HISTORY_REPORT=$reports \
  go test -count=1 -timeout 3h -run 'TestHistory(Failover)?$' ./backend/... || status=$?
go run ./internal/safetyreport -in "$reports" -cmd "$cmd" \
  -machine "$(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(go version | cut -d' ' -f3)" > docs/safety.md
echo "wrote docs/safety.md ($(grep -c . "$reports") cells)"
exit "$status"
