#!/usr/bin/env bash
# `make demo`: starts ./myloware serve on a free port with a fresh database, shows what it
# answers (health, database, metrics), and stops it with SIGTERM (a graceful drain).
# When the workflow lands, this becomes `myloware demo --yes`: a whole run with the fakes.
set -euo pipefail
bin=${1:-./myloware}
dir=$(mktemp -d /tmp/myloware-demo-XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT INT TERM

"$bin" version
echo
"$bin" serve --port 0 --database-url "sqlite:$dir/db.sqlite" --media-dir "$dir/media" 2>"$dir/log" &
pid=$!
port=""
for _ in $(seq 1 500); do   # up to 5 s for the "listening" line
  port=$(grep -o '"msg":"listening".*"port":[0-9]*' "$dir/log" 2>/dev/null | grep -o '[0-9]*$' || true)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/log"; exit 1; }
  sleep 0.01
done
[ -n "$port" ] || { echo "server did not start" >&2; cat "$dir/log"; exit 1; }
echo "serving on http://127.0.0.1:$port"
for path in /health /health/db; do
  echo "GET $path"
  curl -fsS "http://127.0.0.1:$port$path"; echo
done
echo "GET /metrics (excerpt)"
curl -fsS "http://127.0.0.1:$port/metrics" | grep -E '^myloware_http_requests_total|^process_resident' || true
kill -TERM "$pid"
wait "$pid"; rc=$?
pid=""
echo "server stopped (exit $rc); its log:"
cat "$dir/log"
