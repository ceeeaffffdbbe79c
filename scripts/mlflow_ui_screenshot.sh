#!/usr/bin/env bash
# A screenshot of what a user sees first in the MLflow UI: the page of one dagzoo experiment
# (its runs table), from a results tree's SQLite store, in headless Chromium (Debian's
# `chromium` package: apt-get install chromium). MLflow 3.17's UI picks the page by its global
# GenAI / Model training switch (URL parameter workflowType, remembered by the browser), not by
# the experiment's mlflow.experimentKind tag that dagzoo sets: the link opens "Model training".
#
# With view `compare`: the compare view of the experiment's parent runs (one per dagzoo
# experiment, made by the report; their metrics are the seeds' <metric>_mean, _std and _n).
#
#   scripts/mlflow_ui_screenshot.sh results/mlflow.db dagzoo-text out.png [runs|compare] [port]
set -euo pipefail
db=$(realpath "$1"); experiment=$2; out=$3; view=${4:-runs}; port=${5:-5057}
case "$view" in runs|compare) ;; *) echo "view: runs or compare, not $view" >&2; exit 2;; esac
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
url="http://127.0.0.1:$port/#/experiments/$id?workflowType=machine_learning"
if [ "$view" = compare ]; then
  # the parents' ids, found by their tag through the REST API; the compare view takes JSON lists
  url=$(curl -sf -X POST -H 'Content-Type: application/json' "http://127.0.0.1:$port/api/2.0/mlflow/runs/search" \
    -d "{\"experiment_ids\": [\"$id\"], \"filter\": \"tags.\`dagzoo.level\` = 'experiment'\", \"max_results\": 50}" \
    | python3 -c 'import json, sys, urllib.parse
runs = [r["info"]["run_id"] for r in json.load(sys.stdin).get("runs", [])]
if not runs:
    sys.exit("no parent runs in this experiment: run the report (make run) or dagzoo mlflow-sync first")
q = lambda v: urllib.parse.quote(json.dumps(v))
print(f"http://127.0.0.1:{sys.argv[1]}/#/compare-runs?runs={q(runs)}&experiments={q([sys.argv[2]])}")' "$port" "$id")
fi
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$tmp/profile" --window-size=1600,1200 \
  --virtual-time-budget=20000 --screenshot="$(realpath -m "$out")" "$url" > "$tmp/chromium.log" 2>&1
echo "$out: experiment $experiment (id $id), $view view"
