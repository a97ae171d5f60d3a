#!/usr/bin/env bash
# scripts/bench/api.sh: the run API and the video webhook under wrk (issue 5, "Measured").
#
#   1. `myloware serve --role api` on a free loopback port, fresh database, LOG_LEVEL=warn, no
#      run budget (MAX_RUNS_LAST_24H=0, ESTIMATED_COST_PER_RUN_USD=0) or rate limit in the way: every POST /v1/runs/start really creates a run and
#      queues its first job (nothing runs them: --role api); every POST /v1/webhooks/sora is a
#      Standard-Webhooks-signed delivery with a unique webhook-id, verified and stored in the
#      inbox (its task is unknown, so it is kept as an early delivery: the full ingest path).
#   2. wrk -t2 for DURATION seconds: throughput at 64 connections, latency at 8 connections
#      (a closed loop at 64 only measures queueing), RUNS rounds each; the median by req/s.
#      Every brief and every delivery id is unique across threads and rounds (the counts of
#      runs, distinct briefs, queued first jobs and stored deliveries are printed at the end);
#      each round also prints the server's CPU time per request (user + system, from /proc),
#      steadier than req/s on a shared machine.
#   3. 20 concurrent motivational runs with both approvals on `serve` (all roles, fakes,
#      RENDER_SCALE=$SCALE): the wall time until all are completed and the peak RSS (VmHWM).
# Targets: starts >= 5000/s and webhooks >= 10000/s at 64 connections; p99 < 10 ms (starts) and
# < 5 ms (webhooks) at 8. Loopback only; everything is removed on exit.
# Knobs: RUNS=3 DURATION=10 RUNS20=20 SCALE=0.25 MYLOWARE=./myloware WRK=wrk WEBHOOK_RATE_MAX=40000
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${MYLOWARE:-$here/myloware}
WRK=${WRK:-wrk}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
N20=${RUNS20:-20}
SCALE=${SCALE:-0.25}
tmp=$(mktemp -d /tmp/myloware-bench-api-XXXXXX)
# The load generator's own input (~250 MiB of signed deliveries per webhook round) goes to
# memory when /dev/shm is there: written to the disk, its writeback came during a later round
# and the server's syncs queued behind it (a 30-50 ms stall, the whole p99 of that round).
# It needs ~700 bytes per delivery (WEBHOOK_RATE_MAX x DURATION of them per round); when
# /dev/shm is missing or smaller (a container's 64 MiB), the disk it is.
WEBHOOK_RATE_MAX=${WEBHOOK_RATE_MAX:-40000}
gen=$tmp
shm_need=$((WEBHOOK_RATE_MAX * DURATION * 700))
shm_free=$(df --output=avail -B1 /dev/shm 2>/dev/null | tail -1)
if [ -n "$shm_free" ] && [ "$shm_free" -gt "$shm_need" ] 2>/dev/null; then
  gen=$(mktemp -d /dev/shm/myloware-bench-api-XXXXXX 2>/dev/null) || gen=$tmp
fi
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp" "$gen"; }
trap cleanup EXIT INT TERM
[ -x "$BIN" ] || { echo "no binary at $BIN (make first)" >&2; exit 2; }
SECRET="whsec_$(head -c 24 /dev/urandom | base64)"

start_server() { # $1: role; rest: extra flags (LOG_LEVEL=warn prints no "listening" line: pick the port)
  local role=$1; shift
  rm -rf "$tmp/db"* "$tmp/media"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  "$BIN" serve --role "$role" --port "$port" --database-url "sqlite:$tmp/db.sqlite" --media-dir "$tmp/media" \
    --projects-dir "$here/projects" --log-level warn --max-runs-last-24h 0 --estimated-cost-per-run-usd 0 \
    --run-rate-limit 1000000000/second --openai-webhook-secret "$SECRET" "$@" 2>"$tmp/log" &
  pid=$!
  for _ in $(seq 1 500); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  echo "server did not start" >&2; cat "$tmp/log" >&2; exit 2
}
stop_server() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=""; }

# Every request is unique, across wrk's threads and across rounds: wrk passes the round's tag
# (after --) to init(), and each thread has its own id (thread:set makes a global: a chunk
# local of the same name would hide it from the thread's functions).
cat >"$tmp/start.lua" <<'EOF'
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n, round = 0, "0"
function init(args) round = args[1] or "0" end
function request()
  n = n + 1
  return wrk.format("POST", "/v1/runs/start",
    {["X-API-Key"] = "dev-api-key", ["Content-Type"] = "application/json"},
    '{"project":"motivational","brief":"bench run ' .. round .. '-' .. tostring(tid) .. '-' .. n .. '"}')
end
EOF

# Signed deliveries (wrk's Lua has no HMAC), made before each round with ids of that round:
# one line "id<TAB>ts<TAB>sig<TAB>body" each, in one file per wrk thread (FILE.1, FILE.2), which
# each thread reads a line at a time as it sends: loading its half up front (~125 MiB of Lua
# strings) kept a CPU busy for half a second after the other thread had started sending, and
# the latencies of that start were the round's p99. There are enough for WEBHOOK_RATE_MAX/s;
# past the end a thread wraps around and repeats (answered "duplicate"): the stored count
# printed at the end shows it.
make_deliveries() { # $1 round tag, $2 count, $3 file (FILE.1 and FILE.2 are written)
  python3 - "$SECRET" "$1" "$2" "$3" <<'PY'
import base64, hmac, hashlib, sys, time, uuid
secret, tag, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
key = base64.b64decode(secret[len("whsec_"):])
ts = str(int(time.time()))
files = [open(out + ".1", "w"), open(out + ".2", "w")]
for i in range(n):
    mid = "msg_%s" % uuid.uuid4().hex
    body = ('{"id":"evt_%s_%d","object":"event","created_at":1,"type":"video.completed",'
            '"data":{"id":"video_bench_%s_%d"}}' % (tag, i, tag, i))
    sig = base64.b64encode(hmac.new(key, ("%s.%s.%s" % (mid, ts, body)).encode(), hashlib.sha256).digest()).decode()
    files[i % 2].write("%s\t%s\tv1,%s\t%s\n" % (mid, ts, sig, body))
for f in files:
    f.close()
PY
}
cat >"$tmp/webhook.lua" <<'EOF'
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local f
function init(args) f = assert(io.open(args[2] .. "." .. tostring(tid or 1), "r")) end
function request()
  local l = f:read("*l")
  if not l then f:seek("set", 0); l = f:read("*l") end
  local id, ts, sig, body = l:match("([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)")
  return wrk.format("POST", "/v1/webhooks/sora", {["Content-Type"] = "application/json",
    ["webhook-id"] = id, ["webhook-timestamp"] = ts, ["webhook-signature"] = sig}, body)
end
EOF

# wrk output -> "req/s p50_ms p99_ms requests not_2xx"
parse() {
  awk '/Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} / requests in / {n=$1} /Non-2xx/ {bad=$NF}
       function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
       END { printf "%.0f %.3f %.3f %d %d\n", r, ms(p50), ms(p99), n, bad }'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; } # the server's user + system time
# The server's own view (/metrics): requests of route answered within 5 and 10 ms and in all,
# database transactions within 10 ms and in all, and the units they held.
snapshot() { # $1 route
  curl -fs "http://127.0.0.1:$port/metrics" | awk -v r="$1" '
    $1 == "myloware_http_request_duration_seconds_bucket{route=\"" r "\",le=\"0.005\"}" {a=$2}
    $1 == "myloware_http_request_duration_seconds_bucket{route=\"" r "\",le=\"0.01\"}" {b=$2}
    $1 == "myloware_http_request_duration_seconds_count{route=\"" r "\"}" {c=$2}
    $1 == "myloware_db_transaction_seconds_bucket{le=\"0.01\"}" {d=$2}
    $1 == "myloware_db_transaction_seconds_count" {e=$2}
    $1 == "myloware_db_transaction_units_sum" {f=$2}
    END {printf "%d %d %d %d %d %d\n", a, b, c, d, e, f}'
}
tick_us=$((1000000 / $(getconf CLK_TCK)))

bench() { # $1 label, $2 lua, $3 conns: prints "req/s p50 p99" of the median run (by req/s)
  local label=$1 lua=$2 conns=$3 results=() args t0 t1 out rps p50 p99 n bad route=/v1/runs/start
  [ "$label" = webhooks ] && route=/v1/webhooks/sora
  for r in $(seq 1 "$RUNS"); do
    args=("c$conns.$r") # the round's tag (bench runs in a subshell: no counter survives it)
    if [ "$label" = webhooks ]; then
      make_deliveries "${args[0]}" $((WEBHOOK_RATE_MAX * DURATION)) "$gen/deliveries.txt" ||
        { echo "cannot write the deliveries to $gen" >&2; exit 2; }
      args+=("$gen/deliveries.txt")
    fi
    sync # each round starts with nothing of the last one (or of the generator) left to write back
    read -r a0 b0 c0 d0 e0 f0 <<<"$(snapshot "$route")"
    t0=$(cpu_ticks)
    out=$("$WRK" -t2 -c"$conns" -d"${DURATION}s" --latency -s "$lua" "http://127.0.0.1:$port" -- "${args[@]}" 2>&1 | parse)
    t1=$(cpu_ticks)
    read -r a1 b1 c1 d1 e1 f1 <<<"$(snapshot "$route")"
    read -r rps p50 p99 n bad <<<"$out"
    results+=("$rps $p50 $p99")
    local sn=$((c1 - c0)) tn=$((e1 - e0))
    [ "$sn" -gt 0 ] || sn=1
    [ "$tn" -gt 0 ] || tn=1
    echo "  $label c=$conns run $r: $rps req/s, p50 $p50 ms, p99 $p99 ms ($n requests, $bad not 2xx;" \
      "server CPU $(( (t1 - t0) * tick_us / (n > 0 ? n : 1) )) us per request; server-side over 5 ms" \
      "$(( (sn - (a1 - a0)) * 10000 / sn ))/10000, over 10 ms $(( (sn - (b1 - b0)) * 10000 / sn ))/10000;" \
      "$((e1 - e0)) transactions of $(( (f1 - f0) / tn )) units on average, $(( tn - (d1 - d0) )) over 10 ms)" >&2
  done
  printf '%s\n' "${results[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"
}

echo "== run starts and signed webhooks (serve --role api; $RUNS x ${DURATION}s each, median)"
start_server api
s64=$(bench starts "$tmp/start.lua" 64)
s8=$(bench starts "$tmp/start.lua" 8)
w64=$(bench webhooks "$tmp/webhook.lua" 64)
w8=$(bench webhooks "$tmp/webhook.lua" 8)
rm -f "$gen/deliveries.txt".*
stop_server
q() { sqlite3 "$tmp/db.sqlite" "$1" 2>/dev/null || echo "?"; }
runs_made=$(q "SELECT count(*) FROM runs")
briefs=$(q "SELECT count(DISTINCT brief) FROM runs")
queued=$(q "SELECT count(*) FROM jobs WHERE type = 'run.ideate' AND state = 'queued'")
inbox=$(q "SELECT count(*) FROM webhook_inbox")
read -r s64r _ _ <<<"$s64"; read -r _ _ s8p99 <<<"$s8"; read -r w64r _ _ <<<"$w64"; read -r _ _ w8p99 <<<"$w8"
echo "starts:   $s64r req/s at 64 connections; p99 $s8p99 ms at 8 (runs created: $runs_made, distinct briefs: $briefs, first jobs queued: $queued)"
echo "webhooks: $w64r req/s at 64 connections; p99 $w8p99 ms at 8 (distinct deliveries stored: $inbox)"

echo "== $N20 concurrent motivational runs with approvals (serve, fakes, RENDER_SCALE=$SCALE)"
start_server all --render-scale "$SCALE" --fake-video-delay-ms 50
t0=$(date +%s.%N)
python3 - "$port" "$N20" <<'EOF'
import json, sys, time, urllib.request
port, n = int(sys.argv[1]), int(sys.argv[2])
H = {"X-API-Key": "dev-api-key", "Content-Type": "application/json"}
def call(method, path, body=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method, headers=H,
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)
ids = [call("POST", "/v1/runs/start", {"project": "motivational", "brief": "concurrent run %d" % i})["run_id"] for i in range(n)]
done, deadline = set(), time.time() + 900
while len(done) < n and time.time() < deadline:
    for i in ids:
        if i in done: continue
        r = call("GET", "/v1/runs/" + i)
        if r["pending_gate"]:
            try: call("POST", "/v1/runs/%s/approve" % i, {"gate": r["pending_gate"]})
            except Exception: pass
        if r["status"] in ("completed", "failed", "rejected", "cancelled"):
            done.add(i)
            if r["status"] != "completed": print("run", i, r["status"], r["error"])
    time.sleep(0.2)
ok = sum(1 for i in ids if call("GET", "/v1/runs/" + i)["status"] == "completed")
print("completed %d of %d" % (ok, n))
EOF
t1=$(date +%s.%N)
rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
stop_server
printf 'wall time %.1f s, peak RSS %d MiB\n' "$(echo "$t1 - $t0" | bc)" "$((rss / 1024))"
echo "targets: starts >= 5000/s, webhooks >= 10000/s at 64; p99 < 10 ms (starts), < 5 ms (webhooks) at 8"
