#!/usr/bin/env bash
# Runs the Criterion test binaries given as arguments, one after the other, and ends with one
# summary line "N passed, N failed". Exit 1 when any test failed or crashed.
# MYLOWARE_BIN (set by make) is the server binary the integration tests start.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
export LSAN_OPTIONS="suppressions=$here/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
passed=0; failed=0; bad_bins=()
for t in "$@"; do
  [ -x "$t" ] || { echo "missing test binary: $t" >&2; failed=$((failed+1)); continue; }
  out=$(mktemp)
  t0=$(date +%s%N)
  "$t" --jobs "${TEST_JOBS:-2}" --timeout "${TEST_TIMEOUT:-120}" >"$out" 2>&1
  rc=$?
  # Criterion's closing line: [====] Synthesis: Tested: N | Passing: N | Failing: N | Crashing: N
  line=$(grep -a 'Synthesis:' "$out" | tail -1)
  p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$line"); p=${p:-0}
  f=$(sed -n 's/.*Failing: \([0-9]*\).*/\1/p' <<<"$line"); f=${f:-0}
  c=$(sed -n 's/.*Crashing: \([0-9]*\).*/\1/p' <<<"$line"); c=${c:-0}
  if [ $rc -ne 0 ] || [ "$f" != 0 ] || [ "$c" != 0 ] || [ -z "$line" ]; then
    cat "$out"
    bad_bins+=("$t")
    [ "$f" = 0 ] && [ "$c" = 0 ] && f=1   # a binary that died before its summary counts once
  else
    printf '%-50s %s (%d s)\n' "$(basename "$t")" "${line#*Synthesis: }" $(( ($(date +%s%N) - t0) / 1000000000 ))
  fi
  passed=$((passed+p)); failed=$((failed+f+c))
  rm -f "$out"
done
[ ${#bad_bins[@]} -eq 0 ] || echo "failing: ${bad_bins[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
