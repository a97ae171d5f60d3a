#!/usr/bin/env bash
# scripts/bench/transcode.sh: MyloWare's in-process transcode against the ffmpeg command line,
# and GET /health latency while transcodes run inside the server.
#
# In one run (a few minutes on 2 cores):
#   1. generates a 10 s 720x1280 30 fps H.264/AAC clip with `myloware media synth`.
#   2. RUNS rounds, alternating which goes first: transcodes it to 1080x1920 at 30 fps with
#      `myloware media transcode` (the libraries in-process, the code of the media.transcode job)
#      and with the `ffmpeg` CLI doing the same encode: libx264 preset TRANSCODE_PRESET, CRF
#      TRANSCODE_CRF, yuv420p, fps then scale (bicubic, aspect kept) then pad then setsar,
#      AAC 128 kb/s 48 kHz stereo, +faststart; decoder, filter and encoder threads automatic on
#      both sides (-threads N / --threads N, N = THREADS; with 0 the x264 thread count is then
#      x264's own automatic choice on both sides).
#      Wall time and peak RSS of each process come from wait4(2) (python3). Reports every run,
#      the medians, the ratio of the medians and the median of the per-round ratios.
#   3. starts `myloware serve` (ENVIRONMENT=test, fresh temporary database and media dir, default
#      settings otherwise: TRANSCODE_MAX_CONCURRENCY 2, access log on), measures GET /health
#      latency on one keep-alive connection (a request every 2 ms) idle for IDLE_S seconds, then
#      enqueues two media.transcode jobs of the same clip (through POST /_test/jobs, job type
#      test.media.transcode) and measures again for as long as both run; reports p50/p99/max.
#   4. prints a summary with the targets (ratio <= 1.05, peak RSS < 150 MiB, /health p99 < 5 ms
#      while two transcodes run) and PASS/FAIL.
# The machine may be shared: each run also prints the load average; figures are medians.
# Traffic goes to 127.0.0.1 only. Every process and the temporary dir are removed on exit.
# Exit status: 0 all targets met, 1 a target missed, 2 setup failure.
#
# Knobs (environment): RUNS=5 THREADS=0 (decoder and encoder threads of the timed transcodes, both
#   sides; 0 automatic: x264 takes 1.5 x cores frame threads; 1 is the low-memory setting) IDLE_S=5 KEEP_TMP=1 MYLOWARE=./myloware FFMPEG=ffmpeg
set -uo pipefail

RUNS=${RUNS:-5}
THREADS=${THREADS:-0}
IDLE_S=${IDLE_S:-5}
KEEP_TMP=${KEEP_TMP:-0}
FFMPEG=${FFMPEG:-ffmpeg}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2
bin=${MYLOWARE:-./myloware}
if [ ! -x "$bin" ]; then
  make -s myloware >/dev/null || { echo "cannot build ./myloware" >&2; exit 2; }
fi
command -v "$FFMPEG" >/dev/null || { echo "no ffmpeg command line (apt-get install ffmpeg)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is needed to time the processes" >&2; exit 2; }

tmp=$(mktemp -d /tmp/myloware-bench-transcode-XXXXXX)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  [ "$KEEP_TMP" = 1 ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

preset=$("$bin" config show 2>/dev/null | sed -n 's/^TRANSCODE_PRESET=\([^ ]*\).*/\1/p')
crf=$("$bin" config show 2>/dev/null | sed -n 's/^TRANSCODE_CRF=\([^ ]*\).*/\1/p')
preset=${preset:-veryfast}
crf=${crf:-23}
W=1080 H=1920 FPS=30
in=$tmp/in.mp4
echo "input: generating a 10 s 720x1280 30 fps H.264/AAC clip"
"$bin" media synth "$in" --size 720x1280 --seconds 10 --fps 30 --number 1 || exit 2
"$bin" media probe "$in"

vf="fps=$FPS,scale=w=$W:h=$H:force_original_aspect_ratio=decrease:flags=bicubic,pad=width=$W:height=$H:x=(ow-iw)/2:y=(oh-ih)/2:color=black,setsar=sar=1,format=pix_fmts=yuv420p"
ff_cmd=("$FFMPEG" -nostdin -hide_banner -loglevel error -y -threads "$THREADS" -i "$in" -map 0:v:0 -map 0:a:0
  -vf "$vf" -c:v libx264 -preset "$preset" -crf "$crf" -pix_fmt yuv420p -threads "$THREADS"
  -c:a aac -b:a 128k -ar 48000 -ac 2 -movflags +faststart "$tmp/ff.mp4")
my_cmd=("$bin" media transcode "$in" "$tmp/my.mp4" --size ${W}x$H --fps $FPS --threads "$THREADS")
echo "ffmpeg:   ${ff_cmd[*]}"
echo "myloware: ${my_cmd[*]} (TRANSCODE_PRESET=$preset TRANSCODE_CRF=$crf)"
echo "cores: $(nproc), threads: $THREADS"

# prints "<wall seconds> <peak RSS KiB> <CPU seconds (user+sys)> <exit status>" for the command
measure() {
  python3 - "$@" <<'EOF'
import os, subprocess, sys, time
t = time.perf_counter()
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
_, status, ru = os.wait4(p.pid, 0)
print("%.3f %d %.3f %d" % (time.perf_counter() - t, ru.ru_maxrss, ru.ru_utime + ru.ru_stime,
                          os.waitstatus_to_exitcode(status)))
EOF
}

ff_t=() my_t=() ff_m=() my_m=() ff_c=() my_c=() ratios=()
for ((i = 1; i <= RUNS; i++)); do
  if ((i % 2)); then order="ffmpeg myloware"; else order="myloware ffmpeg"; fi
  for who in $order; do
    if [ "$who" = ffmpeg ]; then
      rm -f "$tmp/ff.mp4"
      read -r t m c rc < <(measure "${ff_cmd[@]}")
    else
      rm -f "$tmp/my.mp4"
      read -r t m c rc < <(measure "${my_cmd[@]}")
    fi
    [ "$rc" = 0 ] || { echo "$who failed (exit $rc)" >&2; exit 2; }
    if [ "$who" = ffmpeg ]; then ff_t+=("$t"); ff_m+=("$m"); ff_c+=("$c"); else my_t+=("$t"); my_m+=("$m"); my_c+=("$c"); fi
  done
  r=$(python3 -c "print('%.3f' % (${my_t[-1]} / ${ff_t[-1]}))")
  ratios+=("$r")
  printf 'run %d: ffmpeg %6.2f s (cpu %6.2f s) %4d MiB | myloware %6.2f s (cpu %6.2f s) %4d MiB | ratio %s | load %s\n' \
    "$i" "${ff_t[-1]}" "${ff_c[-1]}" $((ff_m[-1] / 1024)) "${my_t[-1]}" "${my_c[-1]}" $((my_m[-1] / 1024)) "$r" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
done

echo "outputs of the last run:"
ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=codec_name,width,height,avg_frame_rate,nb_read_packets -of csv=p=0 "$tmp/ff.mp4" | sed 's/^/  ffmpeg   video: /'
"$bin" media probe "$tmp/my.mp4" | sed 's/^/  myloware: /'
ls -l "$tmp/ff.mp4" "$tmp/my.mp4" | awk '{print "  " $5 " bytes " $9}'

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
ff_med=$(median "${ff_t[@]}"); my_med=$(median "${my_t[@]}")
ratio=$(python3 -c "print('%.3f' % ($my_med / $ff_med))")
ratio_paired=$(median "${ratios[@]}")
cpu_ratio=$(python3 -c "print('%.3f' % ($(median "${my_c[@]}") / $(median "${ff_c[@]}")))")
rss_max=0
for m in "${my_m[@]}"; do ((m > rss_max)) && rss_max=$m; done
rss_med=$(median "${my_m[@]}")
ff_rss_med=$(median "${ff_m[@]}")

# ---- GET /health while two transcodes run in the server ----
mkdir -p "$tmp/media"
cp "$in" "$tmp/media/in.mp4"
log=$tmp/server.log
env -i PATH="$PATH" HOME="$tmp" ENVIRONMENT=test "$bin" serve --host=127.0.0.1 --port=0 \
  --database-url="sqlite:$tmp/db.sqlite" --media-dir="$tmp/media" 2>"$log" &
server_pid=$!
port=
for _ in $(seq 1 300); do
  port=$(sed -n 's/.*"msg":"listening".*"port":\([0-9]*\).*/\1/p' "$log" | head -1)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "server did not start:"; cat "$log"; exit 2; }

health=$(python3 - "$port" "$IDLE_S" "$W" "$H" "$FPS" <<'EOF'
import http.client, json, sys, time
port, idle_s, w, h, fps = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
key = {"X-API-Key": "dev-api-key", "Content-Type": "application/json"}
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
ctl = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

def health():
    t = time.perf_counter()
    c.request("GET", "/health")
    r = c.getresponse()
    r.read()
    return (time.perf_counter() - t) * 1000, r.status

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

def sample(until):
    lat = []
    while not until():
        ms, st = health()
        if st not in (200, 503):
            raise SystemExit("GET /health answered %d" % st)
        lat.append(ms)
        time.sleep(0.002)
    return lat

end = time.time() + idle_s
idle = sample(lambda: time.time() > end)
ids = []
for i in range(2):
    body = {"type": "test.media.transcode", "payload": {"input": "in.mp4", "output": "out%d.mp4" % i,
            "thumbnail": "out%d.jpg" % i, "width": w, "height": h, "fps": fps}}
    ctl.request("POST", "/_test/jobs", json.dumps(body), key)
    r = ctl.getresponse()
    ids.append(json.loads(r.read())["first_id"])
states = {}
seen_both = [False]
last = [0.0]
def jobs_done():
    if time.time() - last[0] < 0.2:
        return False
    last[0] = time.time()
    for i in ids:
        ctl.request("GET", "/v1/jobs/" + i, headers=key)
        states[i] = json.loads(ctl.getresponse().read())
    run = [s["state"] for s in states.values()]
    if run.count("running") == 2:
        seen_both[0] = True
    return all(s not in ("queued", "running") for s in run)
t0 = time.time()
busy = sample(jobs_done)
took = time.time() - t0
ok = all(s["state"] == "succeeded" for s in states.values())
print("idle_n=%d idle_p50=%.3f idle_p99=%.3f idle_max=%.3f" % (len(idle), pct(idle, 50), pct(idle, 99), max(idle)))
print("busy_n=%d busy_p50=%.3f busy_p99=%.3f busy_max=%.3f busy_s=%.1f both_running=%d jobs_ok=%d" % (
    len(busy), pct(busy, 50), pct(busy, 99), max(busy), took, seen_both[0], ok))
if not ok:
    print("jobs: " + json.dumps(states))
EOF
) || { echo "health measurement failed: $health"; exit 2; }
echo "$health" | sed 's/^/health: /'
eval "$(echo "$health" | grep -E '^(idle|busy)_' | tr ' ' '\n' | grep =)"
kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; server_pid=

# ---- summary ----
verdict() { if python3 -c "import sys; sys.exit(0 if $1 else 1)"; then echo PASS; else echo FAIL; fi; }
v_ratio=$(verdict "$ratio <= 1.05")
v_rss=$(verdict "$rss_max < 150 * 1024")
v_health=$(verdict "$busy_p99 < 5 and $jobs_ok == 1 and $both_running == 1")
pass=0
[[ "$v_ratio$v_rss$v_health" == *FAIL* ]] && pass=1
echo
echo "summary ($RUNS runs, medians; 10 s 720x1280 H.264 -> 1080x1920 30 fps, preset $preset, crf $crf):"
printf '  wall time   ffmpeg %s s, myloware %s s: ratio %s (median of per-run ratios %s), target <= 1.05  %s\n' \
  "$ff_med" "$my_med" "$ratio" "$ratio_paired" "$v_ratio"
printf '  CPU time    myloware/ffmpeg (medians) %s\n' "$cpu_ratio"
printf '  peak RSS    myloware median %d MiB, max %d MiB (ffmpeg median %d MiB), target < 150 MiB  %s\n' \
  $((${rss_med%.*} / 1024)) $((rss_max / 1024)) $((${ff_rss_med%.*} / 1024)) "$v_rss"
printf '  GET /health idle p50 %s ms p99 %s ms; during two transcodes (%s s, both running: %s, %s samples) p50 %s ms p99 %s ms max %s ms, target p99 < 5 ms  %s\n' \
  "$idle_p50" "$idle_p99" "$busy_s" "$both_running" "$busy_n" "$busy_p50" "$busy_p99" "$busy_max" \
  "$v_health"
exit $pass
