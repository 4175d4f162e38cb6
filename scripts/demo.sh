#!/usr/bin/env bash
# The demo: makes sure PostgreSQL and Redis run, builds, migrates a demo database, starts the
# stand-in LLM, the API and a worker, generates a 3-day menu through the whole system and
# prints it; then stops what it started. Logs are kept in .demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/system.sh

scripts/services.sh

echo "== building (release; the first build takes a few minutes)"
cargo build --release --locked -p api -p worker -p standin --bins --example demo_client
bin=target/release

started=$(date +%s.%N)
mkdir -p .demo
system_env demo postgres://postgres@127.0.0.1:5432/menus_demo 18000
export RUST_LOG=${RUST_LOG:-info}

psql -h 127.0.0.1 -U postgres -d postgres -Atqc \
  "SELECT 1 FROM pg_database WHERE datname = 'menus_demo'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE menus_demo"

names=()
trap stop_system EXIT

echo "== starting the stand-in LLM on :$STANDIN_PORT, the API on :$API_PORT and a worker (metrics on :$METRICS_PORT)"
STANDIN_BIND="127.0.0.1:$STANDIN_PORT" STANDIN_API_KEY="$LLM_API_KEY" \
  STANDIN_LATENCY_MS=300 STANDIN_LATENCY_JITTER_MS=200 \
  "$bin/standin" >.demo/standin.log 2>&1 & pids+=($!) names+=(standin)
"$bin/api" serve --migrate >.demo/api.log 2>&1 & pids+=($!) names+=(api)
"$bin/worker" >.demo/worker.log 2>&1 & pids+=($!) names+=(worker)

# The client follows the job; if a server stops first, say which and why instead of waiting.
"$bin/examples/demo_client" "http://127.0.0.1:$API_PORT" & client=$!
status=0
wait -n -p ended "$client" "${pids[@]}" || status=$?
if [ "$ended" != "$client" ]; then
  kill -TERM "$client" 2>/dev/null || true
  for i in "${!pids[@]}"; do
    if [ "${pids[$i]}" = "$ended" ]; then
      echo "the ${names[$i]} stopped (exit $status) before the menu was done; the end of .demo/${names[$i]}.log:"
      tail -n 15 ".demo/${names[$i]}.log"
    fi
  done
  exit 1
fi
[ "$status" = 0 ] || { echo "the demo failed; logs are in .demo/"; exit 1; }
awk -v s="$started" -v e="$(date +%s.%N)" \
  'BEGIN { printf "\ndemo finished in %.1f s (build excluded); logs in .demo/\n", e - s }'
