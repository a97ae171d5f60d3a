#!/usr/bin/env bash
# fuzz.sh: builds the libFuzzer target tests/fuzz/fuzz_http.c (the whole HTTP request path:
# parse, route, auth, JSON body, handlers) with ASan+UBSan into build/fuzz/, writes the seed
# inputs, and runs it. Exits non-zero on a crash, a sanitizer report, a leak (LeakSanitizer
# stays on), a timeout, or a broken answer (the target's oracle; see tests/fuzz/fuzz_http.c).
# tests/fuzz/regress/ holds the inputs of bugs found before: every run replays them first.
#
#   bash scripts/fuzz.sh                 # FUZZ_SECONDS=60
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh
#   FUZZ_BUILD_ONLY=1 bash scripts/fuzz.sh
#   bash scripts/fuzz.sh -- crash-abc    # extra arguments go to the fuzzer (e.g. a reproducer)
#
# Settings: FUZZ_SECONDS (60), FUZZ_TIMEOUT (30: seconds per input before it is a hang),
# FUZZ_JOBS (1: parallel fuzzing processes), FUZZ_CORPUS (tests/fuzz/corpus, git-ignored; new
# inputs are kept there), FUZZ_ARTIFACTS (build/fuzz/artifacts: crash-/leak-/timeout- files),
# CLANG (clang, else clang-14).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

CLANG=${CLANG:-$(command -v clang || command -v clang-14 || true)}
if [[ -z $CLANG ]]; then
    echo "fuzz.sh: clang not found (apt-get install clang libclang-rt-14-dev)" >&2
    exit 1
fi
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-30}
FUZZ_JOBS=${FUZZ_JOBS:-1}
CORPUS=${FUZZ_CORPUS:-tests/fuzz/corpus}
ARTIFACTS=${FUZZ_ARTIFACTS:-build/fuzz/artifacts}
OUT=build/fuzz
BIN=$OUT/fuzz_http
LLHTTP_SRC=${LLHTTP_SRC:-/usr/share/llhttp}
LLHTTP_INC=${LLHTTP_INC:-/usr/share/include/llhttp}
PKGS=(libuv sqlite3 jansson libavformat libavcodec libavutil libswscale libswresample libavfilter libcurl) # as the Makefile

# ---- build --------------------------------------------------------------------------------

mkdir -p "$OUT/obj" "$ARTIFACTS" "$CORPUS"
# shellcheck disable=SC2054 # -fsanitize takes a comma list
CFLAGS=(-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
        -fno-sanitize-recover=undefined -std=gnu11 -D_GNU_SOURCE
        "-DMYLOWARE_VERSION=\"fuzz\"" "-DMYLOWARE_SRCDIR=\"$ROOT\"" -Isrc "-I$LLHTTP_INC")
read -ra PKG_CFLAGS <<<"$(pkg-config --cflags "${PKGS[@]}")"
read -ra PKG_LIBS <<<"$(pkg-config --libs "${PKGS[@]}")"

# Every source of src/ (src/app.c too: the handlers call into it); main.c is outside src/.
SRCS=()
for f in src/*.c src/*/*.c; do
    SRCS+=("$f")
done
LLHTTP=("$LLHTTP_SRC/llhttp.c" "$LLHTTP_SRC/api.c" "$LLHTTP_SRC/http.c")

# One object per source, rebuilt when the source, a header of src/ or this script is newer;
# compiled in parallel (one job per CPU).
# shellcheck disable=SC2012 # our own file names
newest_dep=$(ls -t src/*.h src/*/*.h scripts/fuzz.sh schema.sql openapi.json 2>/dev/null | head -1)
NPROC=$(nproc 2>/dev/null || echo 2)
rm -f "$OUT/build-failed"
OBJS=()
compile() { # src obj [extra flags]
    local src=$1 obj=$2
    shift 2
    if [[ ! -f $obj || $src -nt $obj || $newest_dep -nt $obj ]]; then
        echo "  CC      $src"
        "$CLANG" "${CFLAGS[@]}" "${PKG_CFLAGS[@]}" "$@" -c -o "$obj" "$src" || touch "$OUT/build-failed"
    fi
}
spawn() {
    while (($(jobs -rp | wc -l) >= NPROC)); do
        wait -n || true
    done
    compile "$@" &
}
for src in "${SRCS[@]}" tests/fuzz/fuzz_http.c; do
    obj=$OUT/obj/$(echo "${src%.c}" | tr / _).o
    OBJS+=("$obj")
    spawn "$src" "$obj" -Wall -Wextra -Wno-unused-parameter
done
for src in "${LLHTTP[@]}"; do
    obj=$OUT/obj/llhttp_$(basename "${src%.c}").o
    OBJS+=("$obj")
    spawn "$src" "$obj" -w
done
wait
if [[ -e $OUT/build-failed ]]; then
    echo "fuzz.sh: compilation failed" >&2
    exit 1
fi
echo "  LINK    $BIN"
"$CLANG" "${CFLAGS[@]}" -o "$BIN" "${OBJS[@]}" "${PKG_LIBS[@]}" -lmbedcrypto -lpthread -lm

if [[ ${FUZZ_BUILD_ONLY:-0} == 1 ]]; then
    exit 0
fi

# ---- seeds ----------------------------------------------------------------------------------

# Written (again) into the corpus directory at every run, as seed-NAME: the corpus keeps them.
RUNTMP=$(mktemp -d "${TMPDIR:-/tmp}/myloware-fuzz-run.XXXXXX")
trap 'rm -rf "$RUNTMP"' EXIT
seed() { printf '%b' "$2" >"$CORPUS/seed-$1"; }
repeat() { # n text
    local i out=
    for ((i = 0; i < $1; i++)); do out+=$2; done
    printf '%s' "$out"
}
K='X-API-Key: dev-api-key\r\n'
J='Content-Type: application/json\r\n'
seed get_health 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n'
seed get_health_db 'GET /health/db HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc-123\r\n\r\n'
seed head_openapi 'HEAD /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n'
seed get_metrics 'GET /metrics HTTP/1.1\r\nAuthorization: Bearer fuzz-metrics-token\r\n\r\n'
seed get_metrics_noauth 'GET /metrics HTTP/1.1\r\n\r\n'
seed pipelined 'GET /health HTTP/1.1\r\n\r\nGET /openapi.json HTTP/1.1\r\n\r\nGET /admin/log-level HTTP/1.1\r\n'"$K"'\r\nGET /nope?x=1 HTTP/1.1\r\n\r\nDELETE /health HTTP/1.1\r\n\r\nGET /health/db HTTP/1.0\r\n\r\n'
seed http10_keepalive 'GET /openapi.json HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /health HTTP/1.0\r\n\r\n'
seed put_level 'PUT /admin/log-level HTTP/1.1\r\n'"$K$J"'Content-Length: 17\r\n\r\n{"level":"debug"}GET /admin/log-level HTTP/1.1\r\n'"$K"'\r\n'
seed put_level_bad 'PUT /admin/log-level HTTP/1.1\r\n'"$K$J"'Content-Length: 15\r\n\r\n{"level":"xxx"}PUT /admin/log-level HTTP/1.1\r\n'"$K$J"'Content-Length: 13\r\n\r\n{"level":3.5}PUT /admin/log-level HTTP/1.1\r\n'"$K$J"'Content-Length: 2\r\n\r\n{}PUT /admin/log-level HTTP/1.1\r\n'"$K"'Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}PUT /admin/log-level HTTP/1.1\r\n'"$K$J"'Content-Length: 3\r\n\r\n[1]PUT /admin/log-level HTTP/1.1\r\n'"$K$J"'Content-Length: 26\r\n\r\n{"level":"warn","level":1}'
seed put_level_nokey 'PUT /admin/log-level HTTP/1.1\r\n'"$J"'Content-Length: 16\r\n\r\n{"level":"info"}PUT /admin/log-level HTTP/1.1\r\nX-API-Key: wrong\r\n'"$J"'Content-Length: 16\r\n\r\n{"level":"info"}'
seed chunked 'PUT /admin/log-level HTTP/1.1\r\n'"$K$J"'Transfer-Encoding: chunked\r\n\r\n9\r\n{"level":\r\n8;ext=1\r\n"error"}\r\n0\r\nTrailer: x\r\n\r\nGET /health HTTP/1.1\r\n\r\n'
seed chunked_big "PUT /admin/log-level HTTP/1.1\r\n$K${J}Transfer-Encoding: chunked\r\n\r\n400\r\n$(head -c 1024 /dev/zero | tr '\0' ' ')\r\n10\r\n{\"level\":\"info\"}\r\n0\r\n\r\n"
seed oversize_cl 'PUT /admin/log-level HTTP/1.1\r\n'"$K$J"'Content-Length: 99999999\r\n\r\n{"level":"info"}'
seed expect_100 'PUT /admin/log-level HTTP/1.1\r\n'"$K$J"'Expect: 100-continue\r\nContent-Length: 16\r\n\r\n{"level":"warn"}'
seed bad_headers 'GET /health HTTP/1.1\r\nBad Header: x\r\n\r\n'
seed bad_cl 'PUT /admin/log-level HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'
seed bad_te 'PUT /admin/log-level HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n'
seed absolute_uri 'GET http://example.com/health HTTP/1.1\r\n\r\n'
seed asterisk 'OPTIONS * HTTP/1.1\r\n\r\n'
seed connect 'CONNECT example.com:443 HTTP/1.1\r\n\r\n'
seed upgrade 'GET /health HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nrest'
seed partial 'GET /health HTTP/1.1\r\nHost: x\r\n'
seed garbage '\x00\x01\xff GARBAGE\r\n\r\n'
seed request_id 'GET /admin/log-level?x=%41&y HTTP/1.1\r\nX-API-Key: dev-api-key\r\nX-Request-ID: '"$(head -c 129 /dev/zero | tr '\0' a)"'\r\n\r\n'
seed media_ranges 'GET /v1/media/transcoded/f.mp4 HTTP/1.1\r\nRange: bytes=100-70000\r\n\r\nHEAD /v1/media/transcoded/f.mp4 HTTP/1.1\r\n\r\nGET /v1/media/transcoded/f.mp4 HTTP/1.1\r\nRange: bytes=-5\r\n\r\nGET /v1/media/transcoded/f.mp4 HTTP/1.1\r\nRange: bytes=999999-\r\n\r\nGET /v1/media/thumbnails/t.jpg HTTP/1.1\r\nIf-None-Match: *\r\n\r\nGET /v1/media/transcoded/..%2ff.mp4 HTTP/1.1\r\n\r\nGET /v1/media/video/x HTTP/1.1\r\n\r\n'
seed media_whole 'GET /v1/media/transcoded/f.mp4 HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\n\r\n'
seed many_headers "GET /health HTTP/1.1\r\n$(for i in $(seq 1 101); do printf 'H%d: v\\r\\n' "$i"; done)\r\n"
seed long_header "GET /health HTTP/1.1\r\nX-Long: $(head -c 17000 /dev/zero | tr '\0' a)\r\n\r\n"
seed head_all 'HEAD /health HTTP/1.1\r\n\r\nHEAD /admin/log-level HTTP/1.1\r\n'"$K"'\r\nHEAD /metrics HTTP/1.1\r\n\r\nPOST /openapi.json HTTP/1.1\r\nContent-Length: 0\r\n\r\n'
seed pipelined_openapi "$(repeat 250 'GET /openapi.json HTTP/1.1\r\n\r\n')"
seed pipelined_metrics "$(repeat 120 'GET /metrics HTTP/1.1\r\nAuthorization: Bearer fuzz-metrics-token\r\n\r\n')"
seed pipelined_puts "$(repeat 100 'PUT /admin/log-level HTTP/1.1\r\n'"$K$J"'Content-Length: 16\r\n\r\n{"level":"info"}')"
seed hundred_headers "GET /health HTTP/1.1\r\n$(for i in $(seq 1 100); do printf 'H%d: v\\r\\n' "$i"; done)\r\nGET /health HTTP/1.1\r\n\r\n"
seed body_at_cap "PUT /admin/log-level HTTP/1.1\r\n$K${J}Content-Length: 1024\r\n\r\n{\"level\":\"info\"$(repeat 1008 ' ')}"
seed body_over_cap "PUT /admin/log-level HTTP/1.1\r\n$K${J}Content-Length: 1025\r\n\r\n{\"level\":\"info\"$(repeat 1009 ' ')}"
U=0f8fad5b-d9cb-469f-a165-70867728950e
seed jobs "GET /v1/jobs/$U HTTP/1.1\r\n${K}\r\nGET /v1/jobs/nope HTTP/1.1\r\n${K}\r\nGET /admin/jobs?limit=5&state=dead&type=test.x&run_id=$U HTTP/1.1\r\n${K}\r\nGET /admin/jobs?limit=0 HTTP/1.1\r\n${K}\r\n"
seed dlq "GET /admin/dlq?unresolved_only=false&source=x HTTP/1.1\r\n${K}\r\nGET /admin/dlq/$U HTTP/1.1\r\n${K}\r\nPOST /admin/dlq/$U/replay HTTP/1.1\r\n${K}Content-Length: 0\r\n\r\nPOST /admin/dlq/$U/resolve HTTP/1.1\r\n${K}\r\n"
seed test_jobs 'POST /_test/jobs HTTP/1.1\r\n'"$K$J"'Content-Length: 44\r\n\r\n{"type":"test.ok","count":1,"payload":{}}   '
seed close 'GET /openapi.json HTTP/1.1\r\nConnection: close\r\n\r\nGET /health HTTP/1.1\r\n\r\n'

# ---- run ------------------------------------------------------------------------------------

# tests/fuzz/regress/: inputs of bugs found before (committed); read as a second corpus
# directory, so every run replays them first (new inputs go to the first directory only).
REGRESS=()
if [[ -d tests/fuzz/regress ]]; then
    REGRESS=(tests/fuzz/regress)
fi
DICT=()
if [[ -f tests/fuzz/http.dict ]]; then
    DICT=(-dict=tests/fuzz/http.dict)
fi
EXTRA=()
if [[ ${1:-} == -- ]]; then
    shift
    EXTRA=("$@")
fi
LOG=$OUT/fuzz.log
# LeakSanitizer stays on (detect_leaks=1 is the default; said here so nobody turns it off).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TMPDIR=$RUNTMP # the target's SQLite file and media directory

ARGS=(-max_len=65536 -timeout="$FUZZ_TIMEOUT" -detect_leaks=1 -print_final_stats=1
      -artifact_prefix="$ARTIFACTS/" "${DICT[@]}")
if ((${#EXTRA[@]} == 0)); then
    # The server's own log lines (PUT /admin/log-level can turn them on) would flood the output:
    # libFuzzer sends them to /dev/null and keeps its own and the sanitizers' reports.
    ARGS+=(-close_fd_mask=2)
fi
if ((${#EXTRA[@]} > 0)); then
    CMD=("$BIN" "${ARGS[@]}" "${EXTRA[@]}")
elif ((FUZZ_JOBS > 1)); then
    CMD=("$BIN" "${ARGS[@]}" -max_total_time="$FUZZ_SECONDS" -jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS"
         "$CORPUS" "${REGRESS[@]}")
else
    CMD=("$BIN" "${ARGS[@]}" -max_total_time="$FUZZ_SECONDS" "$CORPUS" "${REGRESS[@]}")
fi
echo "  FUZZ    ${CMD[*]}"
set +e
"${CMD[@]}" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e
if ((FUZZ_JOBS > 1)) && ((${#EXTRA[@]} == 0)); then
    cat fuzz-*.log >>"$LOG" 2>/dev/null && rm -f fuzz-*.log
fi

# Belt and braces: a report from a thread-pool thread or a non-fatal warning also fails the run.
if grep -qE '(ERROR|WARNING): (Address|Leak|Undefined|Memory)Sanitizer|runtime error:|fuzz_http: ' "$LOG"; then
    echo "fuzz.sh: sanitizer report in $LOG" >&2
    if ((rc == 0)); then rc=1; fi
fi
if ((rc != 0)); then
    echo "fuzz.sh: the fuzzer failed (exit $rc); artifacts in $ARTIFACTS/, log in $LOG" >&2
    exit "$rc"
fi
echo "fuzz.sh: no crash, sanitizer report or leak in ${FUZZ_SECONDS}s; log in $LOG"
