#!/usr/bin/env bash
# Installs every Debian package the project needs to build, test, demo and benchmark.
# Idempotent: prints nothing and installs nothing when all is present.
set -euo pipefail

PKGS=(
  build-essential pkg-config clang libclang-rt-14-dev
  libuv1-dev node-llhttp libsqlite3-dev sqlite3 libcurl4-openssl-dev libmbedtls-dev
  libjansson-dev libpq-dev libcriterion-dev
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev libavfilter-dev
  ffmpeg fonts-dejavu-core postgresql curl wrk nginx-light prometheus openssl python3
  clang-format systemd
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js (for the OpenAPI validator and, later, S3 tests) may come from another packaging.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "bootstrap: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
