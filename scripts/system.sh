# Sourced by the scripts that run the whole system on loopback (demo.sh, fuzz.sh): the stand-in
# LLM, the API and a worker on free ports, against a Redis prefix of the run's own. The sourcing
# script starts the processes, appending their ids to `pids`.

pids=()

# Prints $1 bytes of /dev/urandom as hex (secrets and passwords of one run).
random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# Prints the first free loopback port from $1 up.
free_port() {
  local p=$1
  while (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

# Picks the ports (the stand-in from $3+90, the API from $3+80, metrics from $3+1091 up) and
# exports what the stand-in, the API and the worker read: the database $2, a Redis prefix and
# secrets named for the run $1 and the process.
system_env() {
  local run=$1 database_url=$2 base=$3
  STANDIN_PORT=$(free_port $((base + 90)))
  API_PORT=$(free_port $((base + 80)))
  METRICS_PORT=$(free_port $((base + 1091)))
  export DATABASE_URL=$database_url
  export REDIS_URL=redis://127.0.0.1:6379
  export REDIS_PREFIX="menus-$run-$$"
  export JWT_SECRET="$run-$(random_hex 32)"
  export LLM_BASE_URL="http://127.0.0.1:$STANDIN_PORT/v1"
  export LLM_API_KEY="sk-$run-$(random_hex 8)"
  export API_BIND="127.0.0.1:$API_PORT"
  export METRICS_BIND="127.0.0.1:$METRICS_PORT"
}

# Stops the processes in `pids` and waits for them.
stop_processes() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

# Deletes the run's Redis keys (those under `REDIS_PREFIX`).
clear_redis_prefix() {
  redis-cli -h 127.0.0.1 --scan --pattern "{$REDIS_PREFIX}:*" | xargs -r redis-cli -h 127.0.0.1 del >/dev/null
}

# Stops the processes, then deletes the run's Redis keys.
stop_system() {
  stop_processes
  clear_redis_prefix
}
