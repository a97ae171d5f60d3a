#!/usr/bin/env bash
# scripts/bench/media.sh: file serving of the media routes (api.md §7) against nginx, with the
# server's memory and the loop's responsiveness while it streams.
#
# In one run (about a minute on 2 cores):
#   1. a SIZE_MIB file of random bytes (read once, so both servers serve it from the page cache)
#      is put in a fresh media dir; ./myloware serves it at /v1/media/transcoded/big.mp4 on a free
#      loopback port, nginx (1 worker, sendfile on, access_log off) at /transcoded/big.mp4.
#   2. RUNS rounds, alternating nginx / myloware: one curl downloads the whole file; the median
#      throughput (MiB/s) of each and the ratio myloware/nginx are reported.
#   3. SLOW clients download the file at RATE each (curl --limit-rate) for HOLD_S seconds; during
#      that, myloware's VmRSS is sampled (peak reported against idle) and wrk measures GET /health
#      (-t1 -c4, latency p50/p99, against the same wrk run just before without the clients): the loop is not blocked by file I/O and memory does not grow
#      with the file size (at most one 64 KiB read plus the stream high-water mark per client).
# Traffic goes to 127.0.0.1 only; every process and the temporary dir go on exit.
# Knobs: SIZE_MIB=512 RUNS=3 SLOW=32 RATE=2M HOLD_S=6 NGINX=/usr/sbin/nginx WRK=wrk MYLOWARE=./myloware
# Exit: 0 measured (the figures are informational: no target is set for them), 2 setup failure.
set -uo pipefail

SIZE_MIB=${SIZE_MIB:-512}
RUNS=${RUNS:-3}
SLOW=${SLOW:-32}
RATE=${RATE:-2M}
HOLD_S=${HOLD_S:-6}
NGINX=${NGINX:-/usr/sbin/nginx}
WRK=${WRK:-wrk}
MYLOWARE=${MYLOWARE:-./myloware}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
TMP=""
PIDS=()
log() { printf '%s\n' "$*" >&2; }
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    [[ -n $TMP && -d $TMP ]] && rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { log "bench: $1"; [[ -n ${2:-} && -f $2 ]] && tail -n 20 "$2" >&2; exit 2; }

for tool in "$WRK" "$NGINX" curl awk sort; do command -v "$tool" >/dev/null 2>&1 || die "$tool not found"; done
TMP=$(mktemp -d "${TMPDIR:-/tmp}/myloware-mbench.XXXXXX") || die "mktemp failed"
if [[ $MYLOWARE == ./myloware && ! -x ./myloware ]]; then
    make -s >"$TMP/make.log" 2>&1 || die "make failed" "$TMP/make.log"
fi

mkdir -p "$TMP/media/transcoded" "$TMP/nginx/logs" "$TMP/nginx/temp"
head -c $((SIZE_MIB << 20)) /dev/urandom >"$TMP/media/transcoded/big.mp4" || die "cannot write the file"
cat "$TMP/media/transcoded/big.mp4" >/dev/null
chmod a+x "$TMP" && chmod -R a+rX "$TMP/media" # nginx workers may run as another user

port_accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# myloware on port 0: the port comes from its "listening" log line
setsid env -i PATH="$PATH" HOME="${HOME:-/root}" "$MYLOWARE" serve --port 0 \
    --database-url "sqlite:$TMP/db.sqlite" --media-dir "$TMP/media" 2>"$TMP/myloware.log" &
MPID=$!
PIDS+=("$MPID")
MPORT=""
for _ in $(seq 100); do
    MPORT=$(grep -o '"port":[0-9]*' "$TMP/myloware.log" 2>/dev/null | head -1 | cut -d: -f2)
    [[ -n $MPORT ]] && break
    sleep 0.1
done
[[ -n $MPORT ]] || die "myloware did not start" "$TMP/myloware.log"
START=$(rss_kib "$MPID")

NPORT=""
for _ in 1 2 3 4 5 6; do
    port=$((20000 + RANDOM % 40000))
    port_accepts "$port" && continue
    cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    client_body_temp_path $TMP/nginx/temp/body;
    server { listen 127.0.0.1:$port; root $TMP/media; }
}
EOF
    setsid "$NGINX" -p "$TMP/nginx/" -e "$TMP/nginx/logs/error.log" -c "$TMP/nginx/nginx.conf" 2>>"$TMP/nginx/logs/error.log" &
    NPID=$!
    for _ in $(seq 50); do port_accepts "$port" && break; sleep 0.1; done
    if port_accepts "$port"; then PIDS+=("$NPID"); NPORT=$port; break; fi
    kill "$NPID" 2>/dev/null
done
[[ -n $NPORT ]] || die "nginx did not start" "$TMP/nginx/logs/error.log"

# one download: prints MiB/s; fails when the size is wrong
download() {
    local out
    out=$(curl -s -o /dev/null -w '%{size_download} %{speed_download}' "$1") || return 1
    local size=${out% *} speed=${out#* }
    ((size == SIZE_MIB << 20)) || { log "short download from $1: $size bytes"; return 1; }
    awk -v s="$speed" 'BEGIN {printf "%.0f", s / 1048576}'
}
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

NG=() MY=()
for ((r = 1; r <= RUNS; r++)); do
    n=$(download "http://127.0.0.1:$NPORT/transcoded/big.mp4") || die "nginx download failed"
    m=$(download "http://127.0.0.1:$MPORT/v1/media/transcoded/big.mp4") || die "myloware download failed" "$TMP/myloware.log"
    NG+=("$n")
    MY+=("$m")
    log "round $r: nginx $n MiB/s, myloware $m MiB/s"
done
NMED=$(printf '%s\n' "${NG[@]}" | median)
MMED=$(printf '%s\n' "${MY[@]}" | median)

IDLE=$(rss_kib "$MPID")
# the baseline: /health alone, same wrk settings
"$WRK" -t1 -c4 -d$((HOLD_S - 2))s --latency "http://127.0.0.1:$MPORT/health" >"$TMP/wrk0.txt" 2>&1
B50=$(awk '$1 == "50%" {print $2}' "$TMP/wrk0.txt")
B99=$(awk '$1 == "99%" {print $2}' "$TMP/wrk0.txt")
CPIDS=()
for ((i = 0; i < SLOW; i++)); do
    curl -s -o /dev/null --limit-rate "$RATE" --max-time "$HOLD_S" "http://127.0.0.1:$MPORT/v1/media/transcoded/big.mp4" &
    CPIDS+=("$!")
done
sleep 0.5
"$WRK" -t1 -c4 -d$((HOLD_S - 2))s --latency "http://127.0.0.1:$MPORT/health" >"$TMP/wrk.txt" 2>&1 &
WPID=$!
PEAK=$IDLE
while kill -0 "$WPID" 2>/dev/null; do
    k=$(rss_kib "$MPID")
    [[ -n $k ]] && ((k > PEAK)) && PEAK=$k
    sleep 0.1
done
wait "$WPID"
for pid in "${CPIDS[@]}"; do wait "$pid" 2>/dev/null; done
P50=$(awk '$1 == "50%" {print $2}' "$TMP/wrk.txt")
P99=$(awk '$1 == "99%" {print $2}' "$TMP/wrk.txt")
RPS=$(awk '/Requests\/sec/ {print $2}' "$TMP/wrk.txt")
kill -0 "$MPID" 2>/dev/null || die "myloware died" "$TMP/myloware.log"

printf '\n== media serving (%s MiB file, %s rounds, medians) ==\n' "$SIZE_MIB" "$RUNS"
printf 'single download: nginx %s MiB/s, myloware %s MiB/s, ratio %s\n' "$NMED" "$MMED" \
    "$(awk -v a="$MMED" -v b="$NMED" 'BEGIN {printf "%.2f", a / b}')"
printf 'myloware RSS: %.1f MiB at start, %.1f MiB idle after the downloads, peak %.1f MiB with %s clients at %s/s each\n' \
    "$(awk -v k="$START" 'BEGIN {print k / 1024}')" "$(awk -v k="$IDLE" 'BEGIN {print k / 1024}')" \
    "$(awk -v k="$PEAK" 'BEGIN {print k / 1024}')" "$SLOW" "$RATE"
printf 'GET /health meanwhile (wrk -t1 -c4): %s req/s, p50 %s, p99 %s (alone just before: p50 %s, p99 %s)\n' \
    "$RPS" "$P50" "$P99" "$B50" "$B99"
