#!/usr/bin/env bash
# Runs the Criterion test binaries given as arguments against a throwaway Postgres server:
# initdb into a temp directory, a server listening only on a Unix socket in that directory
# (no TCP port, nothing shared with other runs), MYLOWARE_TEST_DATABASE_URL pointing at it,
# then scripts/run-tests.sh, then the server is stopped and the directory removed (also on
# failure or ^C). Postgres refuses to run as root: as root the server runs as 'nobody'.
# Needs the Debian package postgresql (scripts/bootstrap.sh installs it).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || { echo "pg-test: no Postgres server binaries under /usr/lib/postgresql (install postgresql)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/myloware-pg-XXXXXX)
chmod 755 "$tmp"
as=()
if [ "$(id -u)" -eq 0 ]; then
  chown nobody "$tmp"
  as=(runuser -u nobody --)
fi
stop() {
  "${as[@]}" "$pgbin/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap stop EXIT

t0=$(date +%s%N)
"${as[@]}" "$pgbin/initdb" -D "$tmp/data" -U postgres --auth=trust -E UTF8 --no-sync >"$tmp/initdb.log" 2>&1 ||
  { cat "$tmp/initdb.log" >&2; exit 1; }
# Durability off: a throwaway cluster (the tests kill our processes, never the server).
"${as[@]}" "$pgbin/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 60 \
  -o "-c listen_addresses= -k $tmp -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=32MB" \
  start >/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
echo "pg-test: Postgres $("$pgbin/postgres" --version | awk '{print $3}') up in $(( ($(date +%s%N) - t0) / 1000000 )) ms (socket in $tmp)"

export MYLOWARE_TEST_DATABASE_URL="postgresql://postgres@/postgres?host=$tmp"
set +e
bash "$here/scripts/run-tests.sh" "$@"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  echo "--- Postgres server log (last 40 lines)"
  tail -40 "$tmp/server.log"
fi
exit $rc
