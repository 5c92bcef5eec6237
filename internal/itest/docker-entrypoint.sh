#!/bin/sh
# docker-entrypoint.sh of the locally built PostgreSQL image: the part of
# the official image's entrypoint the tests use. On a first start it makes
# a cluster in $PGDATA whose superuser ($POSTGRES_USER, default postgres)
# has the password $POSTGRES_PASSWORD, reached over TCP from anywhere with
# SCRAM; then it runs the command (postgres and its -c flags). Any other
# command (pgbouncer, psql) runs as it is; flags alone go to postgres.
set -e
case "$1" in -*) set -- postgres "$@" ;; esac
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	mkdir -p "$PGDATA"
	chmod 700 "$PGDATA"
	printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}" > /tmp/pwfile
	initdb --username="${POSTGRES_USER:-postgres}" --pwfile=/tmp/pwfile --auth-local=trust \
		--auth-host=scram-sha-256 --encoding=UTF8 --locale=C --no-sync >/dev/null
	rm -f /tmp/pwfile
	echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
	echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
fi
exec "$@"
