#!/usr/bin/env bash
# The benchmark suite (issue 9): builds the release binaries, runs each part, prints its tables
# and writes them into BENCHMARKS.md between the "suite" markers. PostgreSQL and Redis must be up
# (scripts/services.sh). Each part also runs alone:
#   bench/run.sh                  # every part
#   bench/run.sh throughput api   # some parts: throughput pipeline api waiters latency batch-lane scale-out
# Load comes from oha (`cargo install oha`, done here when missing); BullMQ's baseline needs Node
# (its packages are installed in bench/bullmq when npm is there). `scale-out` (not in the default
# run) needs PgBouncer 1.21 or later: `PGBOUNCER=/path/to/pgbouncer bench/run.sh scale-out`.
set -euo pipefail
cd "$(dirname "$0")/.."

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(throughput pipeline api waiters latency batch-lane)

cargo build --release --bins --locked
command -v oha >/dev/null || cargo install oha --locked
if command -v npm >/dev/null && [ ! -d bench/bullmq/node_modules ]; then
  (cd bench/bullmq && npm ci --no-audit --no-fund)
fi

out=$(mktemp -d)
for part in "${parts[@]}"; do
  echo "== $part" >&2
  {
    case "$part" in
      throughput) echo "### LLM-shaped throughput"; echo; target/release/throughput --seconds 3 ;;
      pipeline)
        echo "### Zero-latency pipeline (0 ms stand-in: our own cost per job)"; echo
        target/release/throughput --latency-ms 0 --days 1 --concurrency 200 --jobs 20000 ;;
      api) echo "### API under load"; echo; target/release/api_load ;;
      waiters)
        echo "### 10,000 clients waiting (long poll, Server-Sent Events)"; echo
        ulimit -n 65536 2>/dev/null || true
        target/release/waiters ;;
      latency) echo "### Latency (pick-up, submit, poll, dashboard)"; echo; echo '```'; target/release/latency; echo '```' ;;
      batch-lane)
        echo "### The weekly batch: normal lane against the batch lane (Batch API)"; echo
        target/release/batch_lane --people 1000 ;;
      scale-out)
        echo "### Scale-out: PgBouncer (transaction mode) and a 3-node Redis Cluster"; echo
        echo "1 and 3 worker processes, each at concurrency 200, 1-day jobs; first on the machine's PostgreSQL and Redis directly (the baseline), then scaled out:"; echo
        target/release/throughput --workers 1,3 --days 1 --concurrency 200 --seconds 3
        echo
        target/release/throughput --scaled-out --workers 1,3 --days 1 --concurrency 200 --seconds 3
        echo; echo "1 API process (the baseline), then 3, the same total load split over them:"; echo
        target/release/api_load --scaled-out --apis 1
        echo
        target/release/api_load --scaled-out --apis 3 ;;
      *) echo "unknown part: $part" >&2; exit 2 ;;
    esac
  } | tee "$out/$part"
done

# Into BENCHMARKS.md: each part run replaces its own block; the others stay as they were.
python3 - "$out" "${parts[@]}" <<'PY'
import datetime, pathlib, sys
out, parts = pathlib.Path(sys.argv[1]), sys.argv[2:]
path = pathlib.Path("BENCHMARKS.md")
text = path.read_text()
if "<!-- suite:begin -->" not in text:
    text = text.rstrip() + "\n\n## The suite (issue 9)\n\n<!-- suite:begin -->\n<!-- suite:end -->\n"
for part in parts:
    begin, end = f"<!-- part:{part} -->", f"<!-- /part:{part} -->"
    block = f"{begin}\nRun {datetime.date.today()} (`bench/run.sh {part}`).\n\n{(out / part).read_text()}\n{end}"
    if begin in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.replace("<!-- suite:end -->", block + "\n\n<!-- suite:end -->")
path.write_text(text)
PY
echo "BENCHMARKS.md updated" >&2
