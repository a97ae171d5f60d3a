#!/usr/bin/env bash
# `make demo`: one whole run with the fakes, in-process (`myloware demo --yes`): a brief becomes
# ideas, two clips (rendered by the fake video provider, delivered by signed webhooks,
# transcoded), a final render and a fake publish. Prints the progress, the final MP4's path and
# a probe of it. Small sizes (RENDER_SCALE) keep it to seconds; set DEMO_FULL=1 for 1080x1920.
#   scripts/demo.sh [BIN] [BRIEF]
set -euo pipefail
bin=${1:-./myloware}
brief=${2:-"Morning discipline: small wins before sunrise"}
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d /tmp/myloware-demo-XXXXXX)
echo "demo directory: $dir (kept: the video is in it)"
"$bin" version
echo
scale=0.25
[ "${DEMO_FULL:-0}" = 1 ] && scale=1.0
set +e
"$bin" demo "$brief" --project motivational --yes \
  --database-url "sqlite:$dir/db.sqlite" --media-dir "$dir/media" --projects-dir "$here/projects" \
  --render-scale "$scale" --fake-video-delay-ms 100 \
  --openai-webhook-secret "whsec_$(head -c 24 /dev/urandom | base64)" 2>"$dir/log" | tee "$dir/out"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
  echo "demo failed (exit $rc); its log:" >&2
  tail -40 "$dir/log" >&2
  exit "$rc"
fi
video=$(sed -n 's/^final video: //p' "$dir/out")
[ -s "$video" ] || { echo "no video at '$video'" >&2; exit 1; }
echo
echo "probe of $video:"
"$bin" media probe "$video" 2>/dev/null || ls -l "$video"
