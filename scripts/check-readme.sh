#!/usr/bin/env bash
# Fails when README.md's settings table differs from the one the code generates
# (`myloware config table`). The table sits between the two marker lines.
#   scripts/check-readme.sh [--fix] [BIN]     --fix rewrites the table in place
set -euo pipefail
fix=0
if [ "${1:-}" = "--fix" ]; then fix=1; shift; fi
bin=${1:-./myloware}
want=$(mktemp); have=$(mktemp)
trap 'rm -f "$want" "$have"' EXIT
"$bin" config table >"$want"
sed -n '/<!-- settings:begin -->/,/<!-- settings:end -->/p' README.md | sed '1d;$d' >"$have"
if diff -u "$have" "$want" >/dev/null; then
  echo "README settings table matches the code"
  exit 0
fi
if [ $fix -eq 1 ]; then
  awk -v f="$want" '
    /<!-- settings:begin -->/ { print; while ((getline l < f) > 0) print l; skip=1; next }
    /<!-- settings:end -->/ { skip=0 }
    !skip' README.md >README.md.new && mv README.md.new README.md
  echo "README settings table rewritten"
  exit 0
fi
echo "README.md settings table is out of date; regenerate it with: scripts/check-readme.sh --fix" >&2
diff -u "$have" "$want" | head -40 >&2
exit 1
