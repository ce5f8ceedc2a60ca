#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for `make bench` when DATABASE_URL is not set, with the
# settings of the peers harness (../shared/peers/pg.sh) so figures compare.
# Usage: bench/cluster.sh start|stop|url      (data in $BENCH_PGDATA, default /tmp/docket-benchpg)
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PGDATA=${BENCH_PGDATA:-/tmp/docket-benchpg}
PGPORT=${BENCH_PGPORT:-55433}
LOG=$PGDATA.log

as_pg() { # initdb refuses root: run the cluster as the postgres OS user then
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA" && chmod 700 "$PGDATA"
    [ "$(id -u)" = 0 ] && chown postgres "$PGDATA"
    as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$PGDATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '/tmp'
max_connections = 200
shared_buffers = 1GB
synchronous_commit = on
fsync = on
wal_level = replica
max_wal_size = 4GB
checkpoint_timeout = 15min
CONF
  fi
  touch "$LOG" && { [ "$(id -u)" != 0 ] || chown postgres "$LOG"; }
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1 ||
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$LOG" -w -t 60 start >/dev/null
  "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -Atqc "select 1 from pg_database where datname = 'docket_bench'" | grep -q 1 ||
    "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qc "create database docket_bench"
}

stop() {
  if [ -f "$PGDATA/PG_VERSION" ]; then as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null || true; fi
  rm -rf "$PGDATA" "$LOG"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) echo "postgres://postgres@127.0.0.1:$PGPORT/docket_bench" ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
