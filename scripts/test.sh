#!/usr/bin/env bash
# The test command: what CI runs. Services up, formatting, lints with warnings denied, and the
# whole test suite against the real PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-always}"

# The dashboard's browser test drives Debian's Chromium through its chromedriver; without them
# that test fails, saying how to install them.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  say() { printf '\033[1m[test]\033[0m %s\n' "$*"; }
  . scripts/packages.sh
  install_packages chromium chromium-driver || say "could not install chromium and chromium-driver"
fi

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  # nextest fails when it finds no test to run, so an empty suite cannot pass.
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
echo "== chaos suite, reduced (scripts/chaos.sh runs the full form)"
scripts/chaos.sh --reduced
