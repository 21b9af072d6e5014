#!/usr/bin/env bash
# `make run`: the Northwind example end to end, with its APIs. Starts `lakestack example apis` on
# 127.0.0.1 (a free port unless NORTHWIND_API_PORT is set), generates the project with
# `--apis <its URL>`, runs it, and stops the server on every exit path (success, failure, Ctrl-C).
# The API key is the NORTHWIND_API_KEY secret: taken from the environment, else made up for this run.
# Usage: scripts/run-northwind.sh LAKESTACK RUN_DIR ORDERS SEED [extra example flags...]
set -euo pipefail
lakestack=$1 run_dir=$2 orders=$3 seed=$4
shift 4
if [ -z "${NORTHWIND_API_KEY:-}" ]; then
  NORTHWIND_API_KEY=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
fi
export NORTHWIND_API_KEY
url_file=$(mktemp)
rm -f "$url_file"
"$lakestack" example apis --seed "$seed" --port "${NORTHWIND_API_PORT:-0}" --url-file "$url_file" &
server=$!
stop() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -f "$url_file"
}
trap stop EXIT
trap 'exit 130' INT TERM
for _ in $(seq 100); do
  [ -s "$url_file" ] && break
  kill -0 "$server" 2>/dev/null || { echo "the Northwind APIs did not start" >&2; exit 1; }
  sleep 0.1
done
[ -s "$url_file" ] || { echo "the Northwind APIs did not answer within 10 s" >&2; exit 1; }
url=$(cat "$url_file")
rm -rf "$run_dir"
"$lakestack" example northwind "$run_dir" --orders "$orders" --seed "$seed" --apis "$url" "$@"
"$lakestack" -p "$run_dir" run
"$lakestack" -p "$run_dir" runs
"$lakestack" -p "$run_dir" tables
"$lakestack" -p "$run_dir" sla
