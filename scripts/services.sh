#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis are installed and answering on 127.0.0.1, installing them
# from the distribution's packages when they are missing and we may (root, or passwordless
# sudo). Used by the demo, the tests and CI. Prints what it does; changes nothing if both run.
set -euo pipefail

PG_HOST=127.0.0.1 PG_PORT=5432 REDIS_PORT=6379

say() { printf '\033[1m[services]\033[0m %s\n' "$*"; }
. "$(dirname "$0")/packages.sh"

postgres_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

if ! postgres_up; then
  command -v pg_ctlcluster >/dev/null || install_packages postgresql postgresql-client
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  [ -n "$version" ] || { say "PostgreSQL is installed but has no cluster"; exit 1; }
  say "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 50); do postgres_up && break; sleep 0.2; done
  postgres_up || { say "PostgreSQL does not answer on $PG_HOST:$PG_PORT"; exit 1; }
fi

if ! redis_up; then
  command -v redis-server >/dev/null || install_packages redis-server
  say "starting Redis"
  mkdir -p /tmp/menus-redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
    --appendonly no --dir /tmp/menus-redis --logfile /tmp/menus-redis/redis.log
  for _ in $(seq 1 50); do redis_up && break; sleep 0.1; done
  redis_up || { say "Redis does not answer on 127.0.0.1:$REDIS_PORT"; exit 1; }
fi

# The tests connect as `postgres` without a password (trust on loopback, as Debian's packages
# set up for local sockets; see README if your server asks for a password).
psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null \
  || { say "cannot connect to PostgreSQL as postgres on $PG_HOST:$PG_PORT without a password"; exit 1; }
say "PostgreSQL and Redis are up"
