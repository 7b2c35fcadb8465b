#!/usr/bin/env bash
# make loadtest: locust, headless, against the local stack (started here) or HOST=https://...
# Writes reports/locust_*.csv and reports/locust.html, then judges them (tests/load/gate.py).
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-20}          # ~2 requests/s each: ~40 req/s, under the 50 rps stage throttle
# P99_MS (default 100, the specification's total budget) and RUN_TIME (default 60s) are settable.
RUN_TIME=${RUN_TIME:-60s}
REPORTS=${REPORTS:-reports}
UV="python3 -m uv"
mkdir -p "$REPORTS"
rm -f "$REPORTS"/locust_*.csv "$REPORTS"/accepted.jsonl

stack_pid=""
stop_stack() {
  if [ -n "$stack_pid" ] && kill -0 "$stack_pid" 2>/dev/null; then
    kill -INT "$stack_pid"; wait "$stack_pid" || true
  fi
}
trap stop_stack EXIT

if [ -z "${HOST:-}" ]; then
  export KYPERIAN_API_KEY=${KYPERIAN_API_KEY:-loadtest-$(python3 -c 'import secrets; print(secrets.token_hex(16))')}
  export KYPERIAN_ENGINE_TOKEN=${KYPERIAN_ENGINE_TOKEN:-loadtest-$(python3 -c 'import secrets; print(secrets.token_hex(16))')}
  export KYPERIAN_LOCAL_STATE_DIR="$REPORTS/stack-state"   # leave the user's .kyperian/ alone
  export POWERTOOLS_METRICS_DISABLED=true   # keep EMF lines out of the local logs under load
  $UV run --frozen kyperian up --log-dir "$REPORTS/stack-logs" > "$REPORTS/stack.log" 2>&1 &
  stack_pid=$!
  for _ in $(seq 1 120); do
    grep -q "ready; Ctrl-C" "$REPORTS/stack.log" 2>/dev/null && break
    kill -0 "$stack_pid" 2>/dev/null || { cat "$REPORTS/stack.log"; exit 1; }
    sleep 0.5
  done
  HOST=http://127.0.0.1:8080
  ENGINE_URL=${ENGINE_URL:-http://127.0.0.1:8000}
fi

$UV run --frozen locust -f tests/load/locustfile.py --headless \
  --host "$HOST" -u "$USERS" -r "$USERS" -t "$RUN_TIME" --only-summary \
  --csv "$REPORTS/locust" --html "$REPORTS/locust.html" --exit-code-on-error 0
$UV run --frozen python -m tests.load.gate --reports "$REPORTS" --p99-ms "${P99_MS:-100}" ${ENGINE_URL:+--engine "$ENGINE_URL"}
