#!/usr/bin/env bash
# The login's figures, from outside, against a release API on a database of its own: how the
# per-account throttle answers one email's wrong passwords (and the right one while locked),
# and how long a wrong login takes with and without an account (41 of each, percentiles).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh >/dev/null
cargo build --release --locked -p api --bin api 2>&1 | tail -n 1
db="menus_login_$$" port=28180 b="http://127.0.0.1:28180"
psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $db"
pid=
serve() { # extra environment for the API → starts it
  [ -n "$pid" ] && { kill "$pid"; wait "$pid" 2>/dev/null || true; }
  env "$@" DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" JWT_SECRET="$(openssl rand -hex 32)" \
    API_BIND="127.0.0.1:$port" REDIS_PREFIX="login-$$-$RANDOM" RUST_LOG=warn \
    LOGIN_RATE_PER_MINUTE=100000 target/release/api serve --migrate >/dev/null 2>&1 & pid=$!
  for _ in $(seq 50); do curl -fsS "$b/healthz" >/dev/null 2>&1 && return; sleep 0.2; done
}
trap '[ -n "$pid" ] && kill "$pid"; sleep 1; psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE $db WITH (FORCE)"' EXIT
login() { curl -s -D - -o /dev/null -w '%{time_total}\n' -H 'content-type: application/json' \
  -d "{\"email\":\"$1\",\"password\":\"$2\"}" "$b/v1/auth/login"; }

serve LOGIN_FAILURES_PER_ACCOUNT=5
curl -fsS -o /dev/null -H 'content-type: application/json' \
  -d '{"email":"ann@example.com","password":"correct horse battery"}' "$b/v1/auth/register"
echo "one account, wrong passwords in a row (LOGIN_FAILURES_PER_ACCOUNT=5):"
for i in 1 2 3 4 5 6 7; do
  echo "  $i: $(login ann@example.com 'a wrong guess' | grep -iE '^HTTP|^retry-after' | tr -d '\r' | paste -sd' ')"
done
echo "  the right password while locked: $(login ann@example.com 'correct horse battery' | grep -iE '^HTTP|^retry-after' | tr -d '\r' | paste -sd' ')"

serve LOGIN_FAILURES_PER_ACCOUNT=100000
pct() { sort -n | awk '{a[NR]=$1} END {printf "p10 %.1f  median %.1f  p90 %.1f ms\n", a[5]*1000, a[21]*1000, a[37]*1000}'; }
for _ in 1 2 3; do login ann@example.com 'a wrong guess' >/dev/null; done
echo "a wrong login, email with an account:    $(for _ in $(seq 41); do login ann@example.com 'a wrong guess' | tail -n 1; done | pct)"
echo "a wrong login, email without an account: $(for i in $(seq 41); do login "nobody-$i@example.com" 'a wrong guess' | tail -n 1; done | pct)"
