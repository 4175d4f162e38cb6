#!/usr/bin/env bash
# The chaos suite: the API and three workers as separate processes, on a PostgreSQL and a Redis
# of the run's own, through kill -9, a Redis restart without persistence, a PostgreSQL restart,
# a SIGTERM and cancels, with 10 % transient provider faults throughout; prints what held and
# exits non-zero when anything did not.
#
#   scripts/chaos.sh            the full form: release build, 1,000 jobs (a few minutes)
#   scripts/chaos.sh --reduced  what CI runs: debug build, 200 jobs, each kind of fault once
set -euo pipefail
cd "$(dirname "$0")/.."

# The private servers are started from the installed PostgreSQL and Redis binaries.
scripts/services.sh

if [ "${1:-}" = "--reduced" ]; then
  profile=debug
  cargo build --locked -p api -p worker -p e2e --bin api --bin worker --bin chaos
else
  profile=release
  cargo build --locked --release -p api -p worker -p e2e --bin api --bin worker --bin chaos
fi
exec "target/$profile/chaos" --bin-dir "target/$profile" "$@"
