#!/usr/bin/env bash
# Fuzzes the JSON API against its own OpenAPI document with schemathesis: the stand-in LLM, the
# API and a worker on free loopback ports, against a database and a Redis prefix of the run's
# own; a user registered through the API and an admin made with `api admin create-user`; then
# every operation (authentication included), every check (server errors, status codes, response
# schemas, content types, headers, refusal of data the document refuses and acceptance of data
# it allows) and the stateful phase, which follows the document's links from a submission to
# its job and menu. Once as a user, a coach and an admin each, then logout and the password change
# (which end the session they run in) as an account of their own. Exits non-zero on any
# failure.
#
#   scripts/fuzz.sh            the full form: 100 cases per operation and phase for each caller
#   scripts/fuzz.sh --reduced  what CI runs: 12 per operation (a couple of minutes)
#
# schemathesis is installed from PyPI into a venv under target/fuzz-venv; its reports (with a
# curl command per failure) go to target/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
. scripts/system.sh

examples=100
if [ "${1:-}" = "--reduced" ]; then examples=12; fi

say() { printf '\033[1m[fuzz]\033[0m %s\n' "$*"; }
scripts/services.sh

venv=target/fuzz-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  say "installing schemathesis into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4.3,<5'
fi

say "building the API, the worker and the stand-in (debug)"
cargo build --locked -p api -p worker -p standin --bin api --bin worker --bin standin
bin="${CARGO_TARGET_DIR:-target}/debug"

out=target/fuzz
rm -rf "$out" && mkdir -p "$out"
database="menus_fuzz_$$"
system_env fuzz "postgres://postgres@127.0.0.1:5432/$database" 28000
# The fuzzer registers, logs in and submits far faster than a person: the limits (whose 429 the
# document states) would answer most of its requests.
export LOGIN_RATE_PER_MINUTE=1000000 SUBMIT_RATE_PER_MINUTE=1000000 WAITING_JOBS_PER_USER=0
# Its guesses at the login must not lock the accounts it runs as, nor its token expire mid-run.
export LOGIN_FAILURES_PER_ACCOUNT=1000000 TOKEN_TTL_SECS=86400
export RUST_LOG=${RUST_LOG:-warn}

psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $database"
cleanup() {
  stop_processes
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
  clear_redis_prefix
}
trap cleanup EXIT

say "starting the stand-in on :$STANDIN_PORT, the API on :$API_PORT and a worker; logs in $out/"
STANDIN_BIND="127.0.0.1:$STANDIN_PORT" STANDIN_API_KEY="$LLM_API_KEY" \
  "$bin/standin" >"$out/standin.log" 2>&1 & pids+=($!)
"$bin/api" serve --migrate >"$out/api.log" 2>&1 & pids+=($!)
base="http://127.0.0.1:$API_PORT"
for _ in $(seq 1 100); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "$base/healthz" >/dev/null || { say "the API did not start:"; tail -n 20 "$out/api.log"; exit 1; }
"$bin/worker" >"$out/worker.log" 2>&1 & pids+=($!)

password="fuzz-$(random_hex 12)"
token_of() { # email → a bearer token, by logging in
  curl -fsS -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"$password\"}" "$base/v1/auth/login" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}
curl -fsS -o /dev/null -H 'content-type: application/json' \
  -d "{\"email\":\"user@fuzz.example\",\"password\":\"$password\"}" "$base/v1/auth/register"
ADMIN_PASSWORD="$password" "$bin/api" admin create-user --email admin@fuzz.example >/dev/null
curl -fsS -o /dev/null -H 'content-type: application/json' \
  -d "{\"email\":\"coach@fuzz.example\",\"password\":\"$password\",\"role\":\"coach\"}" \
  "$base/v1/auth/register"
user_token=$(token_of user@fuzz.example)
coach_token=$(token_of coach@fuzz.example)
admin_token=$(token_of admin@fuzz.example)

# Logging out and changing the password end the session a token belongs to: they run last, in
# a pass of their own as an account of their own, so the other passes keep their tokens.
curl -fsS -o /dev/null -H 'content-type: application/json' \
  -d "{\"email\":\"leaver@fuzz.example\",\"password\":\"$password\"}" "$base/v1/auth/register"
leaver_token=$(token_of leaver@fuzz.example)
session_enders=(--include-operation-id logout --include-operation-id change_password)

status=0
for who in user coach admin leaver; do
  token=${who}_token
  # Two operations have no links between them: the leaver's pass has no stateful phase.
  if [ "$who" = leaver ]; then only=("${session_enders[@]}" --phases examples,coverage,fuzzing)
  else only=(--exclude-operation-id logout --exclude-operation-id change_password); fi
  say "schemathesis as the $who: every check, $examples cases per operation"
  # Run from its report folder: schemathesis keeps a cache (.schemathesis/) where it runs.
  (cd "$out" && "$root/$venv/bin/schemathesis" --config-file "$root/scripts/fuzz.toml" \
    run "$base/openapi.json" \
    "${only[@]}" \
    --checks all \
    --max-examples "$examples" \
    --header "Authorization: Bearer ${!token}" \
    --seed "${FUZZ_SEED:-$RANDOM}" \
    --workers 2 \
    --request-timeout 40 \
    --suppress-health-check all \
    --no-color \
    --report junit,ndjson --report-dir "$who") \
    2>&1 | tee "$out/$who.txt" || status=1
done
[ "$status" = 0 ] && say "no failures" || say "failures: see $out/{user,coach,admin,leaver}.txt"
exit "$status"
