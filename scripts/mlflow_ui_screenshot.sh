#!/usr/bin/env bash
# A screenshot of what a user sees first in the MLflow UI: the page of one dagzoo experiment
# (its runs table), from a results tree's SQLite store, in headless Chromium (Debian's
# `chromium` package: apt-get install chromium). MLflow 3.17's UI picks the page by its global
# GenAI / Model training switch (URL parameter workflowType, remembered by the browser), not by
# the experiment's mlflow.experimentKind tag that dagzoo sets: the link opens "Model training".
#
#   scripts/mlflow_ui_screenshot.sh results/mlflow.db dagzoo-text out.png [port]
set -euo pipefail
db=$(realpath "$1"); experiment=$2; out=$3; port=${4:-5057}
venv="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin"   # the project's MLflow (make install)
if [ -x "$venv/mlflow" ]; then bin=$venv; else bin=$(dirname "$(command -v mlflow)"); fi
[ -f "$db" ] || { echo "no MLflow store at $db" >&2; exit 2; }
command -v chromium >/dev/null || { echo "chromium is not installed (apt-get install chromium)" >&2; exit 2; }
tmp=$(mktemp -d)
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false "$bin/mlflow" server --workers 1 --host 127.0.0.1 --port "$port" \
  --backend-store-uri "sqlite:///$db" > "$tmp/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 60); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 1
done
id=$(curl -sf "http://127.0.0.1:$port/api/2.0/mlflow/experiments/get-by-name?experiment_name=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$experiment")" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["experiment"]["experiment_id"])')
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$tmp/profile" --window-size=1600,1000 \
  --virtual-time-budget=20000 --screenshot="$(realpath -m "$out")" "http://127.0.0.1:$port/#/experiments/$id?workflowType=machine_learning" \
  > "$tmp/chromium.log" 2>&1
echo "$out: experiment $experiment (id $id)"
