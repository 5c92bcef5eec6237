#!/usr/bin/env bash
# build-images.sh - build the Redis and etcd images the integration tests
# start, on a Docker engine that cannot pull from a registry.
#
#   Redis: Debian's redis server binary (package redis-tools: the server is
#          the same multi-call binary as redis-check-rdb) and its shared
#          libraries, in a scratch image.
#   etcd:  go.etcd.io/etcd/server/v3's etcdmain, built statically from the
#          module in etcd-server/ beside this script, in a scratch image.
#   PostgreSQL: Debian's postgresql-15 server and pgbouncer with their
#          shared libraries, a shell, and docker-entrypoint.sh beside this
#          script (the official image's variables POSTGRES_PASSWORD and
#          POSTGRES_USER), in a scratch image run as user postgres. The
#          same image runs pgbouncer (no official image exists).
#
# Like the official images, they have no entrypoint and the server on PATH:
# the tests give the whole command line (redis-server ..., etcd ...), so
# they start a local image and an official one the same way. An image that exists is left alone (FORCE=1 rebuilds).
#
# Prints lines to eval:  XSYNC_REDIS_IMAGE=...  XSYNC_ETCD_IMAGE=...  XSYNC_POSTGRES_IMAGE=...
#   set -a; eval "$(internal/itest/build-images.sh)"; set +a
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REDIS_IMAGE=${XSYNC_REDIS_IMAGE:-xsync-test/redis:7}
ETCD_IMAGE=${XSYNC_ETCD_IMAGE:-xsync-test/etcd:3.6}
POSTGRES_IMAGE=${XSYNC_POSTGRES_IMAGE:-xsync-test/postgres:15}
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
  (cd "$HERE/etcd-server" && GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$r/usr/local/bin/etcd" .)
  # Flags, not ETCD_* variables: etcd refuses a flag that shadows a set variable.
  import "$ETCD_IMAGE" "$r" \
    'ENV PATH=/usr/local/bin:/usr/bin:/bin' 'WORKDIR /var/lib/etcd' 'EXPOSE 2379 2380' \
    'CMD ["etcd"]'
  local v; v=$(docker run --rm --network none "$ETCD_IMAGE" etcd --version)
  log "etcd: built $ETCD_IMAGE: ${v%%$'\n'*}"
}

# closure DEST FILE...: copies the shared libraries FILEs need (and the ELF
# loader) into DEST, at the same paths.
closure() {
  local dest=$1 lib; shift
  for lib in $(for f in "$@"; do ldd "$f" 2>/dev/null || true; done \
      | awk '$2=="=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u); do
    mkdir -p "$dest$(dirname "$lib")"
    cp -L "$lib" "$dest$lib"
  done
}

build_postgres() {
  if have_image "$POSTGRES_IMAGE"; then log "postgres: $POSTGRES_IMAGE present"; return; fi
  local pg=/usr/lib/postgresql/15
  if [ ! -x $pg/bin/postgres ] || [ ! -x /usr/sbin/pgbouncer ]; then
    log "postgres: installing Debian's postgresql-15 and pgbouncer (their services are not started)"
    apt-get update -qq >/dev/null
    # A policy that refuses to start services, for the install only.
    local policy=/usr/sbin/policy-rc.d had=0
    [ -e $policy ] && had=1
    [ $had = 1 ] || printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 pgbouncer >/dev/null
    [ $had = 1 ] || rm -f $policy
  fi
  local r=$TMP/postgres f
  mkdir -p "$r$pg/bin" "$r$pg/lib" "$r/usr/share/postgresql" "$r/usr/share/zoneinfo" "$r/usr/sbin" \
    "$r/bin" "$r/etc" "$r/tmp" "$r/var/run/postgresql" "$r/var/lib/postgresql/data" "$r/usr/local/bin"
  chmod 1777 "$r/tmp"
  for f in postgres initdb pg_ctl pg_isready psql; do cp -L "$pg/bin/$f" "$r$pg/bin/"; done
  # Server modules (plpgsql and the encodings initdb needs), without JIT.
  find "$pg/lib" -maxdepth 1 -name '*.so' ! -name 'llvmjit*' -exec cp -L {} "$r$pg/lib/" \;
  cp -a /usr/share/postgresql/15 "$r/usr/share/postgresql/"
  cp -a /usr/share/zoneinfo/. "$r/usr/share/zoneinfo/"
  cp -L /usr/sbin/pgbouncer "$r/usr/sbin/"
  cp -L /bin/dash "$r/bin/sh"
  for f in cat mkdir chmod rm; do cp -L "/bin/$f" "$r/bin/"; done
  closure "$r" "$r$pg"/bin/* "$r$pg"/lib/*.so /usr/sbin/pgbouncer /bin/dash /bin/cat /bin/mkdir /bin/chmod /bin/rm
  cp "$HERE/docker-entrypoint.sh" "$r/usr/local/bin/docker-entrypoint.sh"
  chmod 755 "$r/usr/local/bin/docker-entrypoint.sh"
  printf 'root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh\n' > "$r/etc/passwd"
  printf 'root:x:0:\npostgres:x:999:\n' > "$r/etc/group"
  chown -R 999:999 "$r/var/lib/postgresql" "$r/var/run/postgresql"
  import "$POSTGRES_IMAGE" "$r" \
    "ENV PATH=/usr/local/bin:$pg/bin:/usr/sbin:/usr/bin:/bin" 'ENV PGDATA=/var/lib/postgresql/data' \
    'ENV LANG=C' 'USER postgres' 'WORKDIR /var/lib/postgresql' 'EXPOSE 5432' \
    'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["postgres"]'
  local v; v=$(docker run --rm --network none --entrypoint postgres "$POSTGRES_IMAGE" --version)
  docker run --rm --network none --entrypoint pgbouncer "$POSTGRES_IMAGE" --version >/dev/null
  log "postgres: built $POSTGRES_IMAGE: $v (and pgbouncer)"
}

case "${1:-all}" in
  redis) build_redis ;;
  etcd) build_etcd ;;
  postgres) build_postgres ;;
  all) build_redis; build_etcd; build_postgres ;;
  *) log "usage: $0 [redis|etcd|postgres|all]"; exit 2 ;;
esac
echo "XSYNC_REDIS_IMAGE=$REDIS_IMAGE"
echo "XSYNC_ETCD_IMAGE=$ETCD_IMAGE"
echo "XSYNC_POSTGRES_IMAGE=$POSTGRES_IMAGE"
