#!/usr/bin/env bash
# build-images.sh - build the Redis and etcd images the integration tests
# start, on a Docker engine that cannot pull from a registry.
#
#   Redis: Debian's redis server binary (package redis-tools: the server is
#          the same multi-call binary as redis-check-rdb) and its shared
#          libraries, in a scratch image.
#   etcd:  go.etcd.io/etcd/server/v3's etcdmain, built statically from the
#          module in etcd-server/ beside this script, in a scratch image.
#
# Like the official images, they have no entrypoint and the server on PATH:
# the tests give the whole command line (redis-server ..., etcd ...), so
# they start a local image and an official one the same way. An image that exists is left alone (FORCE=1 rebuilds).
#
# Prints lines to eval:  XSYNC_REDIS_IMAGE=...  XSYNC_ETCD_IMAGE=...
#   set -a; eval "$(internal/itest/build-images.sh)"; set +a
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REDIS_IMAGE=${XSYNC_REDIS_IMAGE:-xsync-test/redis:7}
ETCD_IMAGE=${XSYNC_ETCD_IMAGE:-xsync-test/etcd:3.6}
FORCE=${FORCE:-0}

log() { printf '[build-images %s] %s\n' "$(date +%T)" "$*" >&2; }

docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
  || { log "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock})"; exit 1; }

have_image() { [ "$FORCE" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# import NAME ROOTFS CHANGE...: a one-layer image from a directory, with
# Dockerfile-style metadata; needs no builder (docker import).
import() {
  local name=$1 rootfs=$2; shift 2
  local changes=() c
  for c in "$@"; do changes+=(--change "$c"); done
  tar -C "$rootfs" -c . | docker import "${changes[@]}" - "$name" >/dev/null
}

build_redis() {
  if have_image "$REDIS_IMAGE"; then log "redis: $REDIS_IMAGE present"; return; fi
  if [ ! -x /usr/bin/redis-check-rdb ] || [ ! -x /usr/bin/redis-cli ]; then
    log "redis: installing Debian's redis-tools (it starts no service)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-tools >/dev/null
  fi
  local r=$TMP/redis lib
  mkdir -p "$r/usr/bin" "$r/data" "$r/tmp"
  chmod 1777 "$r/tmp"
  # Redis picks its mode from argv[0]: the copy must be named redis-server.
  cp -L /usr/bin/redis-check-rdb "$r/usr/bin/redis-server"
  cp -L /usr/bin/redis-cli "$r/usr/bin/redis-cli"
  # The shared-library closure and the ELF loader (a line without "=>").
  for lib in $( { ldd /usr/bin/redis-check-rdb; ldd /usr/bin/redis-cli; } \
      | awk '$2=="=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u); do
    mkdir -p "$r$(dirname "$lib")"
    cp -L "$lib" "$r$lib"
  done
  # Like the official image: no entrypoint, the server on PATH, and the
  # command line (redis-server and its flags) given by whoever runs it.
  import "$REDIS_IMAGE" "$r" \
    'ENV PATH=/usr/local/bin:/usr/bin:/bin' 'WORKDIR /data' 'EXPOSE 6379' \
    'CMD ["redis-server", "--protected-mode", "no", "--save", "", "--appendonly", "no"]'
  # A missing library fails here, not in a test.
  local v; v=$(docker run --rm --network none "$REDIS_IMAGE" redis-server --version)
  log "redis: built $REDIS_IMAGE: ${v%%$'\n'*}"
}

build_etcd() {
  if have_image "$ETCD_IMAGE"; then log "etcd: $ETCD_IMAGE present"; return; fi
  command -v go >/dev/null || { log "etcd: the go toolchain is needed to build etcd"; exit 1; }
  local r=$TMP/etcd
  mkdir -p "$r/usr/local/bin" "$r/var/lib/etcd" "$r/tmp"
  chmod 1777 "$r/tmp"
  log "etcd: building etcdmain (a first build compiles for about 100 s)"
  (cd "$HERE/etcd-server" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$r/usr/local/bin/etcd" .)
  # Flags, not ETCD_* variables: etcd refuses a flag that shadows a set variable.
  import "$ETCD_IMAGE" "$r" \
    'ENV PATH=/usr/local/bin:/usr/bin:/bin' 'WORKDIR /var/lib/etcd' 'EXPOSE 2379 2380' \
    'CMD ["etcd"]'
  local v; v=$(docker run --rm --network none "$ETCD_IMAGE" etcd --version)
  log "etcd: built $ETCD_IMAGE: ${v%%$'\n'*}"
}

case "${1:-all}" in
  redis) build_redis ;;
  etcd) build_etcd ;;
  all) build_redis; build_etcd ;;
  *) log "usage: $0 [redis|etcd|all]"; exit 2 ;;
esac
echo "XSYNC_REDIS_IMAGE=$REDIS_IMAGE"
echo "XSYNC_ETCD_IMAGE=$ETCD_IMAGE"
