#!/usr/bin/env bash
# The test command: what CI runs. Services up, the dependency policy (cargo-deny), formatting,
# lints with warnings denied, and the whole test suite against the real PostgreSQL and Redis.
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

# The dependency policy (deny.toml): licenses, duplicate versions, sources. Offline, about a
# second. A fresh machine gets cargo-deny from crates.io once (a few minutes of building).
# (`cargo deny check advisories` needs the RustSec database from GitHub: see README.)
if ! cargo deny --version >/dev/null 2>&1; then
  echo "== installing cargo-deny (cargo install cargo-deny --locked)"
  cargo install cargo-deny --locked || {
    echo "test: cargo-deny is missing and could not be installed; install it with" >&2
    echo "      'cargo install cargo-deny --locked' and run again" >&2
    exit 1
  }
fi
echo "== cargo deny check licenses bans sources"
cargo deny --locked check licenses bans sources

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
echo "== fuzzing against the OpenAPI document, reduced (scripts/fuzz.sh runs the full form)"
scripts/fuzz.sh --reduced
