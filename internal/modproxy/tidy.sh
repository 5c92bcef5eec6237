#!/usr/bin/env bash
# tidy.sh - go mod tidy in the submodules that require this tree's modules
# at a version not tagged yet (go mod tidy ignores go.work).
#
#   internal/modproxy/tidy.sh           # tidy benchmarks, xotel, examples/otel
#   internal/modproxy/tidy.sh --check   # fail if one of them is not tidy
#
# It serves the library and xotel from this tree at the versions the
# submodules require, from a proxy directory, with the module cache's
# copies of those versions removed first (they would be a stale tree).
# The go.sum lines of our own modules are dropped: their hashes exist
# only once the version is tagged, and builds go through go.work.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
check=0
[ "${1:-}" = --check ] && check=1
ours='github.com/xsync-go/xsync'
proxy=$(mktemp -d)
saved=$(mktemp -d)
trap 'rm -rf "$proxy" "$saved"' EXIT
version=$(grep -o "$ours v[^ ]*" xotel/go.mod | head -1 | cut -d' ' -f2)
go run ./internal/modproxy -out "$proxy" -version "$version" . xotel
cache=$(go env GOMODCACHE)
chmod -R u+w "$cache/$ours@$version" "$cache/$ours/xotel@$version" 2>/dev/null || true
rm -rf "$cache/$ours@$version" "$cache/$ours/xotel@$version" "$cache/cache/download/$ours"
status=0
for mod in benchmarks xotel examples/otel; do
  mkdir -p "$saved/$mod"
  cp "$mod/go.mod" "$mod/go.sum" "$saved/$mod/"
  (cd "$mod" && GOWORK=off GOFLAGS= GOPROXY="file://$proxy,$(go env GOPROXY)" GONOSUMDB="$ours" go mod tidy)
  sed -i "\\#^$ours[/ ]#d" "$mod/go.sum"
  if [ "$check" = 1 ]; then
    if ! diff -u "$saved/$mod/go.mod" "$mod/go.mod" || ! diff -u "$saved/$mod/go.sum" "$mod/go.sum"; then
      echo "$mod/go.mod is not tidy: run internal/modproxy/tidy.sh"
      status=1
    fi
    cp "$saved/$mod/go.mod" "$saved/$mod/go.sum" "$mod/"
  fi
done
exit "$status"
