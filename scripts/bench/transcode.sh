#!/usr/bin/env bash
# scripts/bench/transcode.sh: MyloWare's in-process transcode against the ffmpeg command line,
# and GET /health latency while transcodes run inside the server.
#
# In one run (a few minutes on 2 cores):
#   1. generates a 10 s 720x1280 30 fps H.264/AAC clip with `myloware media synth`.
#   2. RUNS rounds, alternating which goes first: transcodes it to 1080x1920 at 30 fps with
#      `myloware media transcode` (the libraries in-process, the code of the media.transcode job,
#      with the server's settings: TRANSCODE_PRESET, TRANSCODE_CRF, TRANSCODE_X264_PARAMS) and
#      with the `ffmpeg` CLI doing the same encode: libx264 with the same preset, CRF and x264
#      options (-x264-params), yuv420p, fps then scale (bicubic, aspect kept) then pad then
#      setsar, AAC 128 kb/s 48 kHz stereo, +faststart; the same decoder and encoder thread count
#      on both sides (THREADS: by default what a media job gets in the server, the cores divided
#      by TRANSCODE_MAX_CONCURRENCY, at least 1). That both encodes used the same x264 settings
#      is checked, not assumed: x264 writes its whole option string into every stream, and the
#      two strings must be equal.
#      Each transcode is a fresh process doing exactly one transcode; its wall time, CPU time
#      and peak RSS come from wait4(2) (python3): ru_maxrss is the process's VmHWM, the peak of
#      its resident set (the libraries' mapped pages included). Reports every run, the medians,
#      the ratio of the medians and the median of the per-round ratios (the target is checked
#      on the latter: each round's two encodes ran back to back under the same machine load).
#   3. starts `myloware serve` (ENVIRONMENT=test, fresh temporary database and media dir, default
#      settings otherwise: TRANSCODE_MAX_CONCURRENCY 2, TRANSCODE_PRIORITY idle (PRIORITY
#      overrides), access log on), measures GET /health latency on one keep-alive connection (a
#      request every 2 ms) idle for IDLE_S seconds, then HEALTH_ROUNDS times enqueues two
#      media.transcode jobs of the same clip (through POST /_test/jobs, job type
#      test.media.transcode) and measures for as long as both run; reports p50/p99/max of each
#      round and the median of the rounds' p99 (checked against the target).
#   4. prints a summary with the targets (ratio <= 1.05, peak RSS < 150 MiB, /health p99 < 5 ms
#      while two transcodes run) and PASS/FAIL.
# The machine may be shared: each run also prints the load average; figures are medians.
# Traffic goes to 127.0.0.1 only. Every process and the temporary dir are removed on exit.
# Exit status: 0 all targets met, 1 a target missed, 2 setup failure.
#
# Knobs (environment): RUNS=7 THREADS=(cores / TRANSCODE_MAX_CONCURRENCY) HEALTH_ROUNDS=3
#   IDLE_S=5 PRIORITY=(TRANSCODE_PRIORITY of the server) KEEP_TMP=1 MYLOWARE=./myloware
#   FFMPEG=ffmpeg; the TRANSCODE_* settings may be given in the environment too (both sides
#   follow them).
set -uo pipefail

RUNS=${RUNS:-7}
HEALTH_ROUNDS=${HEALTH_ROUNDS:-3}
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

setting() { "$bin" config show 2>/dev/null | sed -n "s/^$1=\([^ ]*\).*/\1/p"; }
preset=$(setting TRANSCODE_PRESET)
crf=$(setting TRANSCODE_CRF)
x264=$(setting TRANSCODE_X264_PARAMS)
cap=$(setting TRANSCODE_MAX_CONCURRENCY)
[ -n "$preset" ] && [ -n "$crf" ] && [ -n "$cap" ] || { echo "cannot read the settings (myloware config show)" >&2; exit 2; }
THREADS=${THREADS:-$(( $(nproc) / cap > 1 ? $(nproc) / cap : 1 ))}
W=1080 H=1920 FPS=30
in=$tmp/in.mp4
echo "input: generating a 10 s 720x1280 30 fps H.264/AAC clip"
"$bin" media synth "$in" --size 720x1280 --seconds 10 --fps 30 --number 1 || exit 2
"$bin" media probe "$in"

vf="fps=$FPS,scale=w=$W:h=$H:force_original_aspect_ratio=decrease:flags=bicubic,pad=width=$W:height=$H:x=(ow-iw)/2:y=(oh-ih)/2:color=black,setsar=sar=1,format=pix_fmts=yuv420p"
ff_cmd=("$FFMPEG" -nostdin -hide_banner -loglevel error -y -threads "$THREADS" -i "$in" -map 0:v:0 -map 0:a:0
  -vf "$vf" -c:v libx264 -preset "$preset" -crf "$crf" -pix_fmt yuv420p -threads "$THREADS" ${x264:+-x264-params "$x264"}
  -c:a aac -b:a 128k -ar 48000 -ac 2 -movflags +faststart "$tmp/ff.mp4")
my_cmd=("$bin" media transcode "$in" "$tmp/my.mp4" --size ${W}x$H --fps $FPS --threads "$THREADS")
echo "ffmpeg:   ${ff_cmd[*]}"
echo "myloware: ${my_cmd[*]} (TRANSCODE_PRESET=$preset TRANSCODE_CRF=$crf TRANSCODE_X264_PARAMS=$x264)"
echo "cores: $(nproc), threads: $THREADS (TRANSCODE_MAX_CONCURRENCY=$cap)"

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

# the x264 option string each encoder wrote into its stream (an SEI message)
x264_opts() { python3 - "$1" <<'EOF'
import sys
d = open(sys.argv[1], "rb").read()
i = d.find(b"x264 - core")
print(d[i:d.index(b"\0", i)].decode(errors="replace").split(" options: ", 1)[-1] if i >= 0 else "none")
EOF
}
ff_opts=$(x264_opts "$tmp/ff.mp4"); my_opts=$(x264_opts "$tmp/my.mp4")
echo "x264 options ffmpeg:   $ff_opts"
echo "x264 options myloware: $my_opts"
[ "$ff_opts" = "$my_opts" ] || { echo "the two encodes did not use the same x264 settings" >&2; exit 2; }
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
senv=(PATH="$PATH" HOME="$tmp" ENVIRONMENT=test)
while IFS= read -r kv; do senv+=("$kv"); done < <(env | grep -E '^TRANSCODE_[A-Z0-9_]+=')
[ -n "${PRIORITY:-}" ] && senv+=(TRANSCODE_PRIORITY="$PRIORITY")
echo "server: ${senv[*]:3}"
env -i "${senv[@]}" "$bin" serve --host=127.0.0.1 --port=0 \
  --database-url="sqlite:$tmp/db.sqlite" --media-dir="$tmp/media" 2>"$log" &
server_pid=$!
port=
for _ in $(seq 1 300); do
  port=$(sed -n 's/.*"msg":"listening".*"port":\([0-9]*\).*/\1/p' "$log" | head -1)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "server did not start:"; cat "$log"; exit 2; }

health=$(python3 - "$port" "$IDLE_S" "$W" "$H" "$FPS" "$HEALTH_ROUNDS" <<'EOF'
import http.client, json, sys, time
port, idle_s, w, h, fps = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rounds = int(sys.argv[6])
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
print("idle_n=%d idle_p50=%.3f idle_p99=%.3f idle_max=%.3f" % (len(idle), pct(idle, 50), pct(idle, 99), max(idle)))
p99s, all_ok, all_both, tooks = [], 1, 1, []
for rnd in range(rounds):
    ids = []
    for i in range(2):
        body = {"type": "test.media.transcode", "payload": {"input": "in.mp4", "output": "out%d_%d.mp4" % (rnd, i),
                "thumbnail": "out%d_%d.jpg" % (rnd, i), "width": w, "height": h, "fps": fps}}
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
    print("round=%d busy_n=%d busy_p50=%.3f busy_p99=%.3f busy_max=%.3f busy_s=%.1f both_running=%d jobs_ok=%d" % (
        rnd + 1, len(busy), pct(busy, 50), pct(busy, 99), max(busy), took, seen_both[0], ok))
    if not ok:
        print("jobs: " + json.dumps(states))
    p99s.append(pct(busy, 99))
    tooks.append(took)
    all_ok &= ok
    all_both &= seen_both[0]
print("busy_p99_median=%.3f busy_p99_max=%.3f busy_s_median=%.1f both_running=%d jobs_ok=%d" % (
    sorted(p99s)[len(p99s) // 2], max(p99s), sorted(tooks)[len(tooks) // 2], all_both, all_ok))
EOF
) || { echo "health measurement failed: $health"; exit 2; }
echo "$health" | sed 's/^/health: /'
eval "$(echo "$health" | grep -E '^(idle_|busy_p99_median)' | tr ' ' '\n' | grep =)"
kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; server_pid=

# ---- summary ----
verdict() { if python3 -c "import sys; sys.exit(0 if $1 else 1)"; then echo PASS; else echo FAIL; fi; }
v_ratio=$(verdict "$ratio_paired <= 1.05")
v_rss=$(verdict "$rss_max < 150 * 1024")
v_health=$(verdict "$busy_p99_median < 5 and $jobs_ok == 1 and $both_running == 1")
pass=0
[[ "$v_ratio$v_rss$v_health" == *FAIL* ]] && pass=1
echo
echo "summary ($RUNS runs, medians; 10 s 720x1280 H.264 -> 1080x1920 30 fps, preset $preset, crf $crf, x264 $x264, threads $THREADS):"
printf '  wall time   ffmpeg %s s, myloware %s s: ratio of the medians %s, median of per-run ratios %s, target <= 1.05  %s\n' \
  "$ff_med" "$my_med" "$ratio" "$ratio_paired" "$v_ratio"
printf '  CPU time    myloware/ffmpeg (medians) %s\n' "$cpu_ratio"
printf '  peak RSS    (VmHWM of a process doing one transcode) myloware median %d MiB, max %d MiB; ffmpeg median %d MiB; target < 150 MiB  %s\n' \
  $((${rss_med%.*} / 1024)) $((rss_max / 1024)) $((${ff_rss_med%.*} / 1024)) "$v_rss"
printf '  GET /health idle p50 %s ms p99 %s ms; during two transcodes (%s rounds of %s s median, both running in each: %s) p99 per round %s ms, median %s ms (max %s ms), target p99 < 5 ms  %s\n' \
  "$idle_p50" "$idle_p99" "$HEALTH_ROUNDS" "$busy_s_median" "$both_running" \
  "$(echo "$health" | sed -n 's/.* busy_p99=\([0-9.]*\) .*/\1/p' | paste -sd, -)" "$busy_p99_median" "$busy_p99_max" "$v_health"
exit $pass
